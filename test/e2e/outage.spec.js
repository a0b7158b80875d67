'use strict';
// The broker crashes in the middle of a rollout and comes back on its port. Found: the gateway
// answered the fleet's reconnects with CONNACK 3, on which mqtt.js devices stop reconnecting (45
// of 90 never finished), and the repository kept 62 devices timed_out, 15 of them updated.
// Stock Node-RED with the "Full pipeline" example, mosquitto (persistence on, as in production:
// retained notices outlive a restart), the gateway in front, devices of every dialect.
const assert = require('assert');
const fs = require('fs');
const { startPipeline, fleetPlan, registerDevices, rollOut } = require('../../scripts/pipeline');
const servers = require('../../scripts/servers');
const { startFleet } = require('../../dist/sim');
const { tempDir } = require('../support/images');
const { eventually } = require('../support/eventually');

const PER_DIALECT = 20; // 100 devices

describe('end to end: a broker restart in the middle of a rollout', function () {
  this.timeout(120000);
  let dir, broker, port, pipeline, fleet, plan, firmware;
  const mosquitto = (p) => servers.startMosquitto({ port: p, extraConfig: ['persistence true', `persistence_location ${dir}/`, 'autosave_interval 1'] });

  before(async function () {
    if (!servers.haveMosquitto()) this.skip();
    dir = tempDir('mqtt-ota-e2e-outage-');
    port = await servers.freePort();
    broker = await mosquitto(port);
    // Node-RED's own mqtt nodes reconnect after their default 5 s: reports devices send as they
    // come back, before Node-RED has subscribed again, are lost, as they would be in production.
    pipeline = await startPipeline({ userDir: dir, brokerUrl: broker.url, progress: { timeout: 4, retries: 10, backoff: 1 } });
    plan = fleetPlan({ count: PER_DIALECT, size: 128 * 1024 + 77 });
    await registerDevices(pipeline.api, plan);
    fleet = await startFleet({ broker: pipeline.deviceUrl, groups: plan.groups, retryDelayMs: 300, reconnectMs: 300 });
  });
  after(async () => {
    if (fleet) await fleet.stop();
    if (pipeline) await pipeline.stop();
    if (broker) await broker.close();
    if (dir) fs.rmSync(dir, { recursive: true, force: true });
  });

  it('ends with every device on its new image and every record updated', async function () {
    firmware = await rollOut(pipeline.api, plan);
    // Mid-rollout: the broker goes down as soon as the first devices download (polled closely: on
    // a busy machine a coarse poll saw most of the fleet done already), with most still to finish.
    const started = (d) => d.state === 'downloading' || d.state === 'updated';
    await eventually(() => fleet.devices.some(started) || fleet.summary().map((g) => g.states), 30000, 'a first device downloading', 10);
    const pending = fleet.devices.filter((d) => d.state !== 'updated').length;
    assert.ok(pending >= 40, `the broker goes down with much of the fleet still to update (${pending} of 100)`);
    await broker.kill();
    await new Promise((r) => setTimeout(r, 3000));
    broker = await mosquitto(port);

    await fleet.waitAllUpdated(60000);
    for (const device of fleet.devices) {
      const expected = firmware.find((f) => f.tag === (device.dialect === 'sming' ? 'demo-patch' : 'demo'));
      assert.strictEqual(device.sha256, expected.record.checksums.sha256, `${device.id} runs ${expected.version}`);
    }
    // Devices timed out while Node-RED was away (its mqtt nodes reconnect after 5 s) and were
    // notified again: each record ends updated, none stays timed_out.
    await eventually(async () => {
      const { devices } = await pipeline.api.rollout();
      const behind = devices.filter((d) => d.state !== 'updated').map((d) => `${d.device}:${d.state}`);
      return (devices.length === plan.devices.length && behind.length === 0) || behind;
    }, 30000, 'records not updated', 200);
    const { devices } = await pipeline.api.rollout();
    for (const d of devices) {
      const expected = d.dialect === 'sming' ? '1.0.1' : '1.1.0';
      assert.strictEqual(d.current && d.current.version, expected, `${d.device} runs ${expected} on record`);
    }
  });
});
