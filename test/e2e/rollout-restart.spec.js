'use strict';
// kill -9 of Node-RED in the middle of a staged rollout, then a restart on the same user
// directory and ports: the rollout carries on from where it was and finishes, every device installs
// the image exactly once, and the second group starts only after the first. 100 simulated Tencent
// devices through the gateway (which dies with Node-RED: the devices reconnect by themselves).
// That no device is *released* twice across the kill is the release journal's job, proven exactly
// in test/core/rollouts/restart.spec.js. On the wire a Tencent device may see its notice again
// after the restart: one caught in flight reports its old version on reconnecting, which is how it
// asks (ota-assign answers). What a user would notice is checked here: each device installs once.
const assert = require('assert');
const fs = require('fs');
const mqtt = require('mqtt');
const { startPipeline } = require('../../scripts/pipeline');
const { startFleet } = require('../../dist/sim');
const { imageOf, tempDir } = require('../support/images');

const COUNT = 100;
const SECRET = 'ZGVtby1kZXZpY2Utc2VjcmV0';

async function eventually(check, timeoutMs, what) {
  const until = Date.now() + timeoutMs;
  let last;
  while (Date.now() < until) {
    last = await check().catch((err) => err.message);
    if (last === true) return;
    await new Promise((r) => setTimeout(r, 25));
  }
  assert.fail(`${what}: still ${JSON.stringify(last)}`);
}

describe('end to end: kill -9 of Node-RED mid-rollout, and restart', function () {
  this.timeout(120000);
  let dir, first, second, fleet, rollout, watcher;
  const notices = new Map(); // device id -> update_firmware notices seen on the broker
  const ids = Array.from({ length: COUNT }, (_, i) => `k-${i + 1}`);
  const installed = new Map(); // device id -> time of its install
  let killedAt = 0;

  before(async () => {
    dir = tempDir('mqtt-ota-rollout-kill-');
    first = await startPipeline({ userDir: dir, progress: { retries: 0 } });
    for (const id of ids) await first.api.registerDevice({ id, dialect: 'tencent', deviceSecret: SECRET, attributes: { product: 'DEMO' } });
    fleet = await startFleet({
      broker: first.deviceUrl,
      groups: [{ dialect: 'tencent', count: COUNT, idPattern: 'k-{n}', product: 'DEMO', deviceSecretPattern: SECRET, version: '1.0.0' }],
      reconnectMs: 100,
      retryDelayMs: 200,
    });
    // Watches the broker itself, not through the gateway: every notice the flow published.
    watcher = await mqtt.connectAsync(first.brokerUrl);
    watcher.on('message', (topic, payload) => {
      if (!payload.length) return;
      const device = topic.split('/').pop();
      notices.set(device, (notices.get(device) ?? 0) + 1);
    });
    await watcher.subscribeAsync('$ota/update/DEMO/+', { qos: 1 });
    fleet.on('state', (device, state) => {
      if (state === 'updated' && !installed.has(device.id)) installed.set(device.id, Date.now());
    });
  });
  after(async () => {
    if (watcher) await watcher.endAsync();
    if (fleet) await fleet.stop();
    if (second) await second.stop();
    if (first) await first.stop();
    fs.rmSync(dir, { recursive: true, force: true });
  });

  it('finishes after the restart, every device updated exactly once, groups in order', async () => {
    const fw = await first.api.storeFirmware(imageOf(64 * 1024, 11), 'demo-app', '1.1.0');
    rollout = await first.api.call('POST', '/ota/rollouts', {
      firmware: fw.id, targets: { devices: ids }, plan: { groups: [{ count: 10 }, {}], maxConcurrent: 3 }, start: true,
    });
    // Mid-rollout: the first group done, the second under way. Killed from the device's own event
    // (the simulated devices run in this process): a poll could come late on a loaded machine and
    // find all 100 done.
    const exited = new Promise((r) => first.red.child.once('exit', r));
    const killAt30 = () => { if (installed.size >= 30) first.red.child.kill('SIGKILL'); };
    fleet.on('state', killAt30);
    await eventually(async () => installed.size >= 30 || installed.size, 60000, 'devices updated before the kill');
    killAt30();
    await exited;
    fleet.off('state', killAt30);
    killedAt = installed.size;
    assert.ok(killedAt < COUNT, `killed mid-rollout (${killedAt} updated)`);

    second = await startPipeline({
      userDir: dir, progress: { retries: 0 }, brokerUrl: first.brokerUrl,
      nodeRedPort: first.red.port, devicePort: Number(new URL(first.deviceUrl).port),
    });
    await eventually(async () => {
      const r = await second.api.call('GET', `/ota/rollouts/${rollout.id}`);
      return r.state === 'finished' || `${r.state} ${JSON.stringify(r.counts)}`;
    }, 90000, 'rollout finished after the restart');
    await fleet.waitAllUpdated(30000, '1.1.0');
    for (const d of fleet.devices) assert.strictEqual(d.installs, 1, `${d.id} installed once`);
    const r = await second.api.call('GET', `/ota/rollouts/${rollout.id}`);
    assert.deepStrictEqual([r.counts.succeeded, r.counts.failed + r.counts.timed_out + r.counts.cancelled], [COUNT, 0]);
    // The second group (k-11 ..) started only once the first had all updated.
    const firstDone = Math.max(...ids.slice(0, 10).map((id) => installed.get(id)));
    const secondStart = Math.min(...ids.slice(10).map((id) => installed.get(id)));
    assert.ok(secondStart >= firstDone, 'no device of the second group before the first group was done');
    assert.strictEqual(notices.size, COUNT, 'every device notified');
    // Only devices the kill could catch ask again: a handful (at most 3 in flight, and those
    // released around the kill), never the fleet.
    const again = [...notices.values()].filter((n) => n > 1).length;
    assert.ok(again <= 10, `${again} devices got their notice again`);
  });
});
