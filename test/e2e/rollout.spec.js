'use strict';
// A staged rollout as a user runs it: stock Node-RED with the "Full pipeline" example, a real
// broker, the gateway, and 200 simulated Tencent devices. Groups 1 % / 10 % / rest, error
// threshold 10 %: 3 devices of the second group (15 %) fail their update (the simulator's
// failDevices: the image arrives corrupted; no retry). The rollout must pause on the report that
// crosses 10 %, no device of the third group may get a notice, and resume must finish it, with at
// most 10 devices updating at once as the devices themselves saw it.
const assert = require('assert');
const fs = require('fs');
const { startPipeline } = require('../../scripts/pipeline');
const { startFleet } = require('../../dist/sim');
const { imageOf, tempDir } = require('../support/images');

const COUNT = 200;
const SECRET = 'ZGVtby1kZXZpY2Utc2VjcmV0';
const FAILING = [5, 10, 15]; // r-5, r-10, r-15: all in the second group (r-3 .. r-22)

async function eventually(check, timeoutMs, what) {
  const until = Date.now() + timeoutMs;
  let last;
  while (Date.now() < until) {
    last = await check();
    if (last === true) return;
    await new Promise((r) => setTimeout(r, 100));
  }
  assert.fail(`${what}: still ${JSON.stringify(last)}`);
}

describe('end to end: a staged rollout pauses on its error threshold and resumes', function () {
  this.timeout(120000);
  let dir, pipeline, fleet, rollout;
  const ACTIVE = new Set(['notified', 'downloading', 'downloaded', 'verified', 'updating']);
  const active = new Set();
  let most = 0;
  const ids = Array.from({ length: COUNT }, (_, i) => `r-${i + 1}`);
  const third = new Set(ids.slice(22));

  before(async () => {
    dir = tempDir('mqtt-ota-rollout-');
    pipeline = await startPipeline({ userDir: dir, progress: { retries: 0 } });
    for (const id of ids) await pipeline.api.registerDevice({ id, dialect: 'tencent', deviceSecret: SECRET, attributes: { product: 'DEMO' } });
    fleet = await startFleet({
      broker: pipeline.deviceUrl,
      groups: [{ dialect: 'tencent', count: COUNT, idPattern: 'r-{n}', product: 'DEMO', deviceSecretPattern: SECRET, version: '1.0.0' }],
      failDevices: FAILING,
      maxAttempts: 1,
    });
    fleet.on('state', (device, state) => {
      if (ACTIVE.has(state)) active.add(device.id);
      else active.delete(device.id);
      most = Math.max(most, active.size);
    });
    const fw = await pipeline.api.storeFirmware(imageOf(16 * 1024, 9), 'demo-app', '1.1.0');
    rollout = await pipeline.api.call('POST', '/ota/rollouts', {
      name: 'staged', firmware: fw.id, targets: { devices: ids },
      plan: { groups: [{ percent: 1 }, { percent: 10 }, {}], error: { percent: 10 }, maxConcurrent: 10 }, start: true,
    });
  });
  after(async () => {
    if (fleet) await fleet.stop();
    if (pipeline) await pipeline.stop();
    fs.rmSync(dir, { recursive: true, force: true });
  });

  const get = () => pipeline.api.call('GET', `/ota/rollouts/${rollout.id}`);
  const noticed = (d) => d.history.some((h) => h.state === 'notified');

  it('splits 200 devices into 2, 20 and 178', () => {
    assert.deepStrictEqual(rollout.groups.map((g) => g.size), [2, 20, 178]);
  });

  it('pauses on the threshold, and no device of the third group gets a notice', async () => {
    await eventually(async () => {
      const r = await get();
      return (r.state === 'paused' && r.groupCounts[1].released === 0) || `${r.state} ${JSON.stringify(r.groupCounts[1])}`;
    }, 60000, 'rollout paused with the second group settled');
    const r = await get();
    assert.strictEqual(r.reason, 'threshold');
    assert.match(r.detail, /group 2: 3 of 20 failed, over 10 %/);
    // With 10 at once, the third failure may come before the last devices of the group were
    // released: those wait, paused, with the third group.
    const g = r.groupCounts[1];
    assert.deepStrictEqual([g.failed, g.succeeded + g.waiting], [3, 17]);
    // Give a late notice every chance to show up.
    await new Promise((res) => setTimeout(res, 1000));
    const leaked = fleet.devices.filter((d) => third.has(d.id) && noticed(d)).map((d) => d.id);
    assert.deepStrictEqual(leaked, []);
    const { devices } = await pipeline.api.rollout();
    assert.deepStrictEqual(devices.filter((s) => third.has(s.device) && s.firmware).map((s) => s.device), []);
  });

  it('finishes after resume, every device of the third group updated once', async () => {
    await pipeline.api.call('POST', `/ota/rollouts/${rollout.id}/resume`);
    await eventually(async () => {
      const r = await get();
      return r.state === 'finished' || `${r.state} ${JSON.stringify(r.counts)}`;
    }, 60000, 'rollout finished');
    const r = await get();
    assert.deepStrictEqual([r.counts.succeeded, r.counts.failed], [COUNT - FAILING.length, FAILING.length]);
    for (const d of fleet.devices.filter((x) => third.has(x.id))) {
      assert.strictEqual(d.state, 'updated', d.id);
      assert.strictEqual(d.installs, 1, d.id);
    }
  });

  it('never had more than 10 devices updating at once', () => {
    assert.ok(most <= 10, `${most} at once`);
    assert.ok(most >= 5, `the limit was used (${most} at once)`);
  });
});
