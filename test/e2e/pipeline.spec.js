'use strict';
// The whole pipeline as a user runs it: stock Node-RED with the "Full pipeline" example, a real
// broker, the gateway in front, and simulated devices of all six dialects that know nothing of
// our server but their platform's protocol. Each must end running the stored image, and the
// repository must say so.
const assert = require('assert');
const fs = require('fs');
const { startPipeline, fleetPlan, registerDevices, rollOut } = require('../../scripts/pipeline');
const { startFleet } = require('../../dist/sim');
const { tempDir } = require('../support/images');
const { eventually } = require('../support/eventually');

// Dialects whose devices report what they run; Biotz and Sming report nothing, and the gateway's
// view of them (presence.spec) stands in.
const REPORTING = new Set(['thingsboard', 'tago', 'tencent', 'tasmota']);

describe('end to end: every dialect through gateway, broker and Node-RED', function () {
  this.timeout(90000);
  let dir, pipeline, fleet, plan, firmware;

  before(async () => {
    dir = tempDir('mqtt-ota-e2e-');
    pipeline = await startPipeline({ userDir: dir });
    plan = fleetPlan({ count: 2, size: 100 * 1024 + 321 });
    await registerDevices(pipeline.api, plan);
    fleet = await startFleet({ broker: pipeline.deviceUrl, groups: plan.groups, retryDelayMs: 300 });
    firmware = await rollOut(pipeline.api, plan);
  });
  after(async () => {
    if (fleet) await fleet.stop();
    if (pipeline) await pipeline.stop();
    fs.rmSync(dir, { recursive: true, force: true });
  });

  it('brings every device to the new image, byte for byte', async () => {
    await fleet.waitAllUpdated(60000);
    for (const device of fleet.devices) {
      const expected = firmware.find((f) => f.tag === (device.dialect === 'sming' ? 'demo-patch' : 'demo'));
      assert.strictEqual(device.sha256, expected.record.checksums.sha256, `${device.id} runs ${expected.version}`);
      assert.strictEqual(device.installs, 1, `${device.id} installed once`);
    }
  });

  it('records every reporting device as updated, with the version it runs', async () => {
    await eventually(async () => {
      const { devices } = await pipeline.api.rollout();
      const behind = devices.filter((d) => REPORTING.has(d.dialect) && d.state !== 'updated').map((d) => `${d.device}:${d.state}`);
      return behind.length === 0 || behind;
    }, 20000, 'devices not yet updated in the repository');
    for (const d of plan.devices.filter((x) => REPORTING.has(x.dialect))) {
      const view = await pipeline.api.device(d.id);
      assert.strictEqual(view.rollout.current.version, '1.1.0', d.id);
      assert.strictEqual(view.rollout.percent, 100, d.id);
      assert.strictEqual(view.rollout.attempts, 1, `${d.id} needed one notice`);
    }
  });

  it('runs without a single error in Node-RED\'s log', () => {
    assert.deepStrictEqual(pipeline.red.logs.filter((l) => /\[error\]/.test(l)), []);
  });

  it('infers from the gateway that Biotz and Sming devices, which report nothing, are updated', async () => {
    await eventually(async () => {
      const { devices } = await pipeline.api.rollout();
      const silent = devices.filter((d) => !REPORTING.has(d.dialect));
      return (silent.length === 4 && silent.every((d) => d.state === 'updated' && d.inferred === true)) || silent.map((d) => `${d.device}:${d.state}`);
    }, 20000, 'biotz and sming devices');
  });
});

describe('end to end: failures on the way are survived', function () {
  this.timeout(90000);
  let dir, pipeline, fleet, plan, firmware;
  const faulty = { thingsboard: { dropAt: 0.5 }, tago: { corruptChunk: 3 }, tencent: { corruptChunk: 2 } };

  before(async () => {
    dir = tempDir('mqtt-ota-e2e-faults-');
    pipeline = await startPipeline({ userDir: dir });
    plan = fleetPlan({ count: 1, size: 64 * 1024 + 5 });
    plan.groups = plan.groups.filter((g) => faulty[g.dialect]).map((g) => ({ ...g, faults: faulty[g.dialect] }));
    plan.devices = plan.devices.filter((d) => faulty[d.dialect]);
    plan.firmware = plan.firmware.filter((f) => f.tag === 'demo');
    await registerDevices(pipeline.api, plan);
    fleet = await startFleet({ broker: pipeline.deviceUrl, groups: plan.groups, retryDelayMs: 200 });
    firmware = await rollOut(pipeline.api, plan);
  });
  after(async () => {
    if (fleet) await fleet.stop();
    if (pipeline) await pipeline.stop();
    fs.rmSync(dir, { recursive: true, force: true });
  });

  it('completes every device in spite of a dropped connection and corrupted chunks', async () => {
    await fleet.waitAllUpdated(60000);
    for (const device of fleet.devices) assert.strictEqual(device.sha256, firmware[0].record.checksums.sha256, device.id);
  });

  it('resumed the dropped ThingsBoard download instead of starting over', async () => {
    const tb = fleet.devices.find((d) => d.dialect === 'thingsboard');
    assert.strictEqual(tb.attempts, 1, 'one download attempt');
    assert.ok(tb.connects >= 2, 'the connection was cut and made again');
  });

  it('recorded the corrupted downloads as failures, then the retries that succeeded', async () => {
    await eventually(async () => {
      const states = await Promise.all(['tago-1', 'tencent-1'].map((id) => pipeline.api.device(id)));
      return states.every((s) => s.rollout.state === 'updated') || states.map((s) => s.rollout.state);
    }, 20000, 'retried devices');
    for (const id of ['tago-1', 'tencent-1']) {
      const { rollout } = await pipeline.api.device(id);
      assert.ok(rollout.lastError, `${id} has the failure on record`);
      assert.ok(rollout.attempts >= 2, `${id} was notified again (attempts ${rollout.attempts})`);
    }
    const tencent = (await pipeline.api.device('tencent-1')).rollout;
    assert.strictEqual(String(tencent.lastError.code), '-4', 'Tencent reports an MD5 mismatch as -4');
  });
});
