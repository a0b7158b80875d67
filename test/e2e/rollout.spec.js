'use strict';
// A staged rollout as a user runs it: stock Node-RED with the "Full pipeline" example, a real
// broker, the gateway, and simulated Tencent devices (200 in `npm test`; the 1,000 with
// `npm run e2e:large`, ROLLOUT_E2E_DEVICES=1000). Groups 1 % / 10 % / rest, error threshold 10 %:
// 15 % of the second group fail their update (the simulator's failDevices: the image arrives
// corrupted; no retry). The rollout must pause on the report that crosses 10 %, no device of the
// third group may get a notice; once the failing devices are fixed, retry and resume must finish
// it with every device updated, with at most 10 devices updating at once as the devices
// themselves saw it.
const assert = require('assert');
const fs = require('fs');
const { startPipeline } = require('../../scripts/pipeline');
const { startFleet } = require('../../dist/sim');
const { imageOf, tempDir } = require('../support/images');
const { eventually } = require('../support/eventually');

const COUNT = Math.max(100, Number(process.env.ROLLOUT_E2E_DEVICES) || 200);
const SECRET = 'ZGVtby1kZXZpY2Utc2VjcmV0';
const MAX_CONCURRENT = 10;
// The groups as the plan splits them (plan.ts: a percent of all targets, rounded up).
const G1 = Math.ceil(COUNT / 100);
const G2 = Math.ceil((COUNT * 10) / 100);
// 15 % of the second group (r-{G1+1} .. r-{G1+G2}), spread over it: device numbers, 1-based.
const FAILING = [];
for (let k = 0; k < G2; k++) if (Math.floor((k + 1) * 0.15) > Math.floor(k * 0.15)) FAILING.push(G1 + k + 1);
const CROSSING = Math.floor(G2 / 10) + 1; // strictly more than 10 %


describe(`end to end: a staged rollout of ${COUNT} devices pauses on its error threshold and resumes`, function () {
  this.timeout(120000 + COUNT * 300);
  let dir, pipeline, fleet, rollout;
  const ACTIVE = new Set(['notified', 'downloading', 'downloaded', 'verified', 'updating']);
  const active = new Set();
  let most = 0;
  const ids = Array.from({ length: COUNT }, (_, i) => `r-${i + 1}`);
  const third = new Set(ids.slice(G1 + G2));

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
      plan: { groups: [{ percent: 1 }, { percent: 10 }, {}], error: { percent: 10 }, maxConcurrent: MAX_CONCURRENT }, start: true,
    });
  });
  after(async () => {
    if (fleet) await fleet.stop();
    if (pipeline) await pipeline.stop();
    fs.rmSync(dir, { recursive: true, force: true });
  });

  const get = () => pipeline.api.call('GET', `/ota/rollouts/${rollout.id}`);
  const noticed = (d) => d.history.some((h) => h.state === 'notified');

  it(`splits ${COUNT} devices into ${G1}, ${G2} and ${COUNT - G1 - G2}`, () => {
    assert.deepStrictEqual(rollout.groups.map((g) => g.size), [G1, G2, COUNT - G1 - G2]);
    assert.strictEqual(FAILING.length, Math.floor(G2 * 0.15));
  });

  it('pauses on the threshold, and no device of the third group gets a notice', async () => {
    await eventually(async () => {
      const r = await get();
      return (r.state === 'paused' && r.groupCounts[1].released === 0) || `${r.state} ${JSON.stringify(r.groupCounts[1])}`;
    }, 60000 + COUNT * 60, 'rollout paused with the second group settled');
    const r = await get();
    assert.strictEqual(r.reason, 'threshold');
    assert.match(r.detail, new RegExp(`group 2: ${CROSSING} of ${G2} failed, over 10 %`));
    // With 10 at once, more failing devices may have been in flight when the crossing report
    // came (they fail too), and the last devices of the group may not have been released: those
    // wait, paused, with the third group.
    const g = r.groupCounts[1];
    assert.ok(g.failed >= CROSSING && g.failed <= FAILING.length, `${g.failed} failed`);
    assert.strictEqual(g.failed + g.succeeded + g.waiting, G2);
    // Give a late notice every chance to show up.
    await new Promise((res) => setTimeout(res, 1000));
    const leaked = fleet.devices.filter((d) => third.has(d.id) && noticed(d)).map((d) => d.id);
    assert.deepStrictEqual(leaked, []);
    const { devices } = await pipeline.api.rollout();
    assert.deepStrictEqual(devices.filter((s) => third.has(s.device) && s.firmware).map((s) => s.device), []);
  });

  it('finishes once the failing devices are fixed, after retry and resume: every device updated once', async () => {
    // The fix (a bad flash partition, say): those devices now take their update.
    for (const d of fleet.devices.filter((x) => x.broken)) d.repair();
    // Retry while paused: the failed devices go again (within maxConcurrent), then the rest.
    await pipeline.api.call('POST', `/ota/rollouts/${rollout.id}/retry`);
    await pipeline.api.call('POST', `/ota/rollouts/${rollout.id}/resume`);
    const resumed = Date.now();
    await eventually(async () => {
      const r = await get();
      return r.state === 'finished' || `${r.state} ${JSON.stringify(r.counts)}`;
    }, 60000 + COUNT * 120, 'rollout finished');
    if (process.env.ROLLOUT_E2E_DEVICES) console.log(`      finished ${Date.now() - resumed} ms after resume`);
    const r = await get();
    assert.deepStrictEqual([r.counts.succeeded, r.counts.failed], [COUNT, 0]);
    for (const d of fleet.devices) {
      assert.strictEqual(d.state, 'updated', d.id);
      assert.strictEqual(d.installs, 1, d.id);
    }
  });

  it(`never had more than ${MAX_CONCURRENT} devices updating at once`, () => {
    if (process.env.ROLLOUT_E2E_DEVICES) console.log(`      at most ${most} updating at once`);
    assert.ok(most <= MAX_CONCURRENT, `${most} at once`);
    assert.ok(most >= 5, `the limit was used (${most} at once)`);
  });
});
