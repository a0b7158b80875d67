'use strict';
// Sming's notice is one retained message per app and version line: every subscribed device takes
// it. A staged rollout over Sming devices is taken only when they connect through the gateway,
// which delivers the notice to the devices their rollout released and to no other
// (src/gateway/notice-gate.ts). Stock Node-RED with the "Full pipeline" example, aedes, the
// gateway and simulated Sming devices with Sming's own decoder (which flashes an equal patch
// again: a second copy to an updated device would show as a second install).
const assert = require('assert');
const fs = require('fs');
const { startPipeline, demoImage } = require('../../scripts/pipeline');
const { startMosquitto, haveMosquitto } = require('../../scripts/servers');
const { startFleet } = require('../../dist/sim');
const { tempDir } = require('../support/images');
const { eventually } = require('../support/eventually');


for (const brokerName of ['aedes', 'mosquitto']) describe(`end to end (${brokerName}): a staged rollout over Sming devices, the shared notice held back at the gateway`, function () {
  this.timeout(90000);
  let dir, p, fw, broker;
  const fleets = [];
  const noticed = new Set();
  const ids = ['sming-1', 'sming-2', 'sming-3', 'sming-4', 'sming-5', 'sming-6'];
  const sming = (startIndex, count) => ({ dialect: 'sming', idPattern: 'sming-{n}', app: 'demo', version: '1.0.0', smingDecoder: 'sming', startIndex, count });
  const start = async (startIndex, count) => {
    const fleet = await startFleet({ broker: p.deviceUrl, retryDelayMs: 300, groups: [sming(startIndex, count)] });
    fleet.on('state', (device, state) => {
      if (state === 'downloading') noticed.add(device.id);
    });
    fleets.push(fleet);
    return fleet;
  };
  // Groups: sming-1 and sming-2 (sming-2 never online, so the image stays retained), then 3 to 6.
  const plan = { groups: [{ count: 2 }, {}], success: { percent: 50, action: 'pause' } };

  before(async function () {
    if (brokerName === 'mosquitto' && !haveMosquitto()) this.skip();
    dir = tempDir('mqtt-ota-rollout-sming-');
    if (brokerName === 'mosquitto') broker = await startMosquitto();
    p = await startPipeline({ userDir: dir, ...(broker ? { brokerUrl: broker.url } : {}) });
    for (const id of ids) await p.api.registerDevice({ id, dialect: 'sming', attributes: { app: 'demo' } });
    fw = await p.api.storeFirmware(demoImage('demo-app', '1.0.1', 20000), 'demo-app', '1.0.1');
  });
  after(async () => {
    for (const f of fleets) await f.stop();
    if (p) await p.stop();
    if (broker) await broker.close();
    if (dir) fs.rmSync(dir, { recursive: true, force: true });
  });

  it('refuses the plan while the later group has not connected through the gateway', async () => {
    await assert.rejects(
      p.api.call('POST', '/ota/rollouts', { firmware: fw.id, targets: { devices: ids }, plan }),
      /sming-3, sming-4, sming-5 and 1 more.*Connect them through an ota-gateway.*shared_notice_split/s,
    );
  });

  let rollout, first, late;
  it('releases the first group only: online or connecting during the pause, the later group never gets the notice', async () => {
    first = await start(1, 1);
    await start(3, 3);
    // sming-6 connects once (the gateway knows it), then goes offline before the rollout starts.
    late = await start(6, 1);
    await eventually(async () => {
      try {
        rollout = await p.api.call('POST', '/ota/rollouts', { firmware: fw.id, targets: { devices: ids }, plan, start: true });
        return true;
      } catch (err) {
        return err.message;
      }
    }, 10000, 'the plan taken once every Sming device of the later group connected through the gateway');
    await late.stop();
    await eventually(async () => {
      const r = await p.api.call('GET', `/ota/rollouts/${rollout.id}`);
      return (r.state === 'paused' && r.groupCounts[0].succeeded === 1) || `${r.state} ${JSON.stringify(r.groupCounts[0])}`;
    }, 30000, 'first group succeeded (sming-1 updated), rollout paused for approval');
    assert.strictEqual(first.devices[0].installs, 1);
    // sming-6 comes back during the pause: the broker hands it the retained image on subscribe.
    late = await start(6, 1);
    await new Promise((r) => setTimeout(r, 1500));
    assert.deepStrictEqual([...noticed].sort(), ['sming-1'], 'no device of the later group received the notice');
    const states = (await p.api.rollout()).devices;
    assert.deepStrictEqual(states.filter((s) => s.firmware).map((s) => s.device).sort(), ['sming-1', 'sming-2']);
  });

  it('after resume every device of the later group updates once, and sming-1 is not sent it again', async () => {
    await p.api.call('POST', `/ota/rollouts/${rollout.id}/resume`);
    await eventually(async () => {
      const r = await p.api.call('GET', `/ota/rollouts/${rollout.id}`);
      return r.groupCounts[1].succeeded === 4 || JSON.stringify(r.groupCounts[1]);
    }, 30000, 'second group updated');
    await new Promise((r) => setTimeout(r, 1000));
    const all = fleets.flatMap((f) => f.devices);
    for (const id of ['sming-1', 'sming-3', 'sming-4', 'sming-5', 'sming-6']) {
      const installs = all.filter((d) => d.id === id).reduce((n, d) => n + d.installs, 0);
      assert.strictEqual(installs, 1, `${id} flashed ${installs} times`);
    }
  });
});
