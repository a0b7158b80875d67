'use strict';
// Home Assistant's side of the round trip, on a real broker (aedes) with the real Node-RED
// runtime running the "Full pipeline" example (repository with Home Assistant switched on) and a
// simulated ThingsBoard device behind the ota-gateway. The "Home Assistant" here is an MQTT
// client doing what HA's MQTT integration does with a discovery config (update.py, discovery.py):
// subscribe to the state and availability topics it names, and publish payload_install on its
// command_topic when the user presses Install. Every message it sees is checked against HA's
// schema (test/support/ha-update-schema.js).
const assert = require('assert');
const crypto = require('crypto');
const fs = require('fs');
const path = require('path');
const mqtt = require('mqtt');
const { pipelineFlow, AdminApi, demoImage } = require('../../scripts/pipeline');
const { startNodeRed } = require('../../scripts/node-red-runtime');
const { startAedes, freePort } = require('../../scripts/servers');
const { startFleet } = require('../../dist/sim');
const { checkDiscovery, checkState } = require('../support/ha-update-schema');
const { tempDir } = require('../support/images');

async function until(what, fn, timeoutMs = 20000) {
  const end = Date.now() + timeoutMs;
  for (;;) {
    const v = await fn();
    if (v) return v;
    if (Date.now() > end) throw new Error(`not ${what} after ${timeoutMs} ms`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

describe('end to end: Home Assistant update entity, Install to installed_version', function () {
  this.timeout(90000);
  let broker, red, ha, fleet, dir, api, deviceUrl;
  const seen = []; // every message HA's client received: {topic, payload, retain}
  const problems = [];

  before(async () => {
    dir = tempDir('mqtt-ota-ha-');
    broker = await startAedes();
    const port = await freePort();
    const devicePort = await freePort();
    const flows = pipelineFlow({ brokerUrl: broker.url, devicePort, publicUrl: `http://127.0.0.1:${port}` });
    const mqttBroker = flows.find((n) => n.type === 'mqtt-broker');
    const repository = flows.find((n) => n.type === 'ota-repository');
    Object.assign(repository, { haEnabled: true, haBroker: mqttBroker.id, haPrefix: 'homeassistant', haBase: 'mqtt-ota', haPresence: true });
    red = await startNodeRed({ userDir: path.join(dir, 'red'), port, flows });
    api = new AdminApi(red.url);
    deviceUrl = `mqtt://127.0.0.1:${devicePort}`;

    ha = await mqtt.connectAsync(broker.url, { reconnectPeriod: 0 });
    ha.on('message', (topic, payload, packet) => {
      const text = payload.toString();
      seen.push({ topic, payload: text, retain: packet.retain });
      if (topic.startsWith('homeassistant/')) problems.push(...checkDiscovery('homeassistant', topic, text).map((p) => `${topic}: ${p}`));
      else if (topic.endsWith('/state') && text !== '') problems.push(...checkState(text).map((p) => `${topic}: ${p}`));
    });
    await ha.subscribeAsync(['homeassistant/#', 'mqtt-ota/#'], { qos: 1 });
  });
  after(async () => {
    if (fleet) await fleet.stop();
    if (ha) await ha.endAsync();
    if (red) await red.stop();
    if (broker) await broker.close();
    if (dir) fs.rmSync(dir, { recursive: true, force: true });
  });

  const configOf = (object) => {
    const m = seen.filter((x) => x.topic === `homeassistant/update/mqtt-ota/${object}/config`).at(-1);
    return m && m.payload ? JSON.parse(m.payload) : m && null;
  };
  const statesOn = (topic) => seen.filter((x) => x.topic === topic && x.payload).map((x) => JSON.parse(x.payload));
  const last = (topic) => seen.filter((x) => x.topic === topic).at(-1)?.payload;
  /** What a client subscribing now (HA after a restart) gets retained on these topics. */
  const retainedOn = async (topics) => {
    const late = await mqtt.connectAsync(broker.url, { reconnectPeriod: 0 });
    const got = {};
    late.on('message', (topic, payload, packet) => {
      if (packet.retain) got[topic] = payload.toString();
    });
    await late.subscribeAsync(topics, { qos: 1 });
    await new Promise((r) => setTimeout(r, 300));
    await late.endAsync();
    return got;
  };

  it('shows the device, takes Install, shows progress, and ends with installed_version equal to latest', async () => {
    const image = demoImage('demo-app', '1.1.0', 256 * 1024);
    await api.registerDevice({ id: 'tb-1', dialect: 'thingsboard', token: 'tb-token-1', attributes: {}, tags: [] });
    await api.storeFirmware(image, 'demo-app', '1.1.0');

    const config = await until('a discovery config for tb-1', () => configOf('tb-1'));
    assert.strictEqual(config.device_class, 'firmware');
    assert.strictEqual(await until('the bridge online', () => last('mqtt-ota/bridge/availability') === 'online'), true);

    // The device connects through the gateway, running 1.0.0 (it says so at connect, as ThingsBoard devices do),
    // and stalls half way through its download for long enough that HA sees the progress bar.
    fleet = await startFleet({
      broker: deviceUrl,
      groups: [{ dialect: 'thingsboard', idPattern: 'tb-{n}', tokenPattern: 'tb-token-{n}', title: 'demo-app', version: '1.0.0', count: 1, faults: { stallAt: 0.5, stallMs: 1500 } }],
    });
    await until('tb-1 online', () => last(config.availability[1].topic) === 'online');
    const before = await until('an update offered', () => {
      const s = statesOn(config.state_topic).at(-1);
      return s && s.installed_version === '1.0.0' && s.latest_version === '1.1.0' && s;
    });
    assert.deepStrictEqual(before, { installed_version: '1.0.0', latest_version: '1.1.0', title: 'demo-app', release_summary: '', in_progress: false, update_percentage: null });

    // The user presses Install: HA publishes payload_install on command_topic (update.py async_install).
    await ha.publishAsync(config.command_topic, config.payload_install, { qos: 1 });

    const done = await until('installed_version 1.1.0', () => {
      const s = statesOn(config.state_topic).at(-1);
      return s && s.installed_version === '1.1.0' && s;
    }, 40000);
    assert.deepStrictEqual(done, { installed_version: '1.1.0', latest_version: '1.1.0', title: 'demo-app', release_summary: '', in_progress: false, update_percentage: null });
    const states = statesOn(config.state_topic);
    assert.ok(states.some((s) => s.in_progress === true), 'HA saw the update in progress');
    const percents = states.map((s) => s.update_percentage).filter((p) => typeof p === 'number');
    assert.ok(percents.some((p) => p > 0 && p < 100), `HA saw a progress bar (${JSON.stringify(percents)})`);
    assert.deepStrictEqual(percents, [...percents].sort((a, b) => a - b), 'progress never goes back');
    assert.ok(states.length < 30, `${states.length} state messages for one update`);

    const device = fleet.devices[0];
    assert.strictEqual(device.installs, 1);
    assert.strictEqual(device.sha256, crypto.createHash('sha256').update(image).digest('hex'));
    const rollout = (await api.device('tb-1')).rollout;
    assert.strictEqual(rollout.state, 'updated');

    // HA restarting finds the entity, its state and availability retained.
    const kept = await retainedOn(['homeassistant/update/mqtt-ota/tb-1/config', config.state_topic, ...config.availability.map((a) => a.topic)]);
    assert.deepStrictEqual(JSON.parse(kept['homeassistant/update/mqtt-ota/tb-1/config']), config);
    assert.deepStrictEqual(JSON.parse(kept[config.state_topic]), done);
    assert.deepStrictEqual(config.availability.map((a) => kept[a.topic]), ['online', 'online']);
  });

  it('ignores an Install for an unknown device and a wrong payload, and logs it once', async () => {
    const assigned = (await api.rollout()).devices.length;
    await ha.publishAsync('mqtt-ota/devices/ghost/install', 'install', { qos: 1 });
    await ha.publishAsync('mqtt-ota/devices/tb-1/install', 'please', { qos: 1 });
    await until('the log lines', () => red.logs.some((l) => /Install for unknown device "ghost" ignored/.test(l)) && red.logs.some((l) => /tb-1: command ignored/.test(l)));
    assert.strictEqual((await api.rollout()).devices.length, assigned);
  });

  it('removes the entity when the device is deleted: an empty retained config', async () => {
    await api.call('DELETE', '/ota/devices/tb-1');
    await until('the empty config', () => configOf('tb-1') === null);
    // A new subscriber (HA after a restart) finds nothing retained for it.
    assert.deepStrictEqual(await retainedOn(['homeassistant/update/mqtt-ota/tb-1/config', 'mqtt-ota/devices/tb-1/#']), {});
  });

  it('marks every entity unavailable when Node-RED dies: the bridge\'s last will', async () => {
    assert.strictEqual(last('mqtt-ota/bridge/availability'), 'online');
    red.child.kill('SIGKILL');
    await red.stop();
    red = null;
    await until('the bridge offline', () => last('mqtt-ota/bridge/availability') === 'offline');
    assert.deepStrictEqual(await retainedOn(['mqtt-ota/bridge/availability']), { 'mqtt-ota/bridge/availability': 'offline' });
  });

  it('every message Home Assistant received passes its schema', () => {
    assert.deepStrictEqual(problems, []);
  });
});
