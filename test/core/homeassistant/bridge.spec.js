'use strict';
// The Home Assistant bridge without Node-RED: what it publishes for a fleet (one valid update
// entity per device, state from the progress model, removal), how it bounds its rate, and which
// Install commands it refuses. Every payload is checked against HA's schema (test/support).
const assert = require('assert');
const fs = require('fs');
const { OtaRepository } = require('../../../dist/core/repository');
const { trackerFor } = require('../../../dist/core/device-updates/tracker');
const { HomeAssistantBridge, haSettings, objectIdFor, topicsFor } = require('../../../dist/core/homeassistant');
const { checkDiscovery, checkState } = require('../../support/ha-update-schema');
const { imageOf, tempDir } = require('../../support/images');

const at = () => new Date().toISOString();

describe('Home Assistant update entities (core bridge)', () => {
  let dir, repo, bridge, sent, logs, installs, now;
  const settings = haSettings({});

  function makeBridge(limits = {}) {
    bridge = new HomeAssistantBridge(repo, settings, {
      publish: (topic, payload, retain) => {
        sent.push({ topic, payload, retain });
        return true;
      },
      install: (device, firmware) => installs.push({ device: device.id, firmware: firmware.version }),
      log: (text) => logs.push(text),
      now: () => now,
    }, { tickMs: 3_600_000, sweepMs: 3_600_000, ...limits });
    bridge.start();
    return bridge;
  }
  const statesOf = (id) => sent.filter((m) => m.topic === topicsFor(settings, id).state).map((m) => JSON.parse(m.payload));
  const lastState = (id) => statesOf(id).at(-1);
  const drain = () => {
    for (let i = 0; i < 1000 && bridge.pending; i++) {
      now += 1000;
      bridge.flush();
    }
  };

  beforeEach(async () => {
    dir = tempDir('ha-bridge-');
    repo = new OtaRepository({ dir, publicUrl: 'http://127.0.0.1:1880' });
    sent = [];
    logs = [];
    installs = [];
    now = 1_000_000;
    await repo.firmware.store({ image: imageOf(1000, 'a'), title: 'app', version: '1.0.0' });
    await repo.firmware.store({ image: imageOf(1000, 'b'), title: 'app', version: '1.2.0' });
    await repo.firmware.store({ image: imageOf(1000, 'c'), title: 'app', version: '1.10.0' });
    await repo.firmware.store({ image: imageOf(1000, 'd'), title: 'other', version: '9.0.0' });
  });
  afterEach(async () => {
    bridge?.stop();
    await repo.flush();
    fs.rmSync(dir, { recursive: true, force: true });
  });

  it('publishes one retained discovery config per device that Home Assistant accepts, with distinct ids', async () => {
    for (const id of ['tb-1', 'a.b', 'a_b', 'x:y@z']) await repo.devices.register({ id, dialect: 'thingsboard' });
    makeBridge();
    drain();
    const configs = sent.filter((m) => m.topic.endsWith('/config'));
    assert.strictEqual(configs.length, 4);
    for (const m of configs) {
      assert.strictEqual(m.retain, true);
      assert.deepStrictEqual(checkDiscovery('homeassistant', m.topic, m.payload), [], m.topic);
    }
    const uniques = configs.map((m) => JSON.parse(m.payload).unique_id);
    assert.strictEqual(new Set(uniques).size, 4);
    assert.strictEqual(new Set(configs.map((m) => m.topic)).size, 4, 'a.b and a_b stay two entities');
    assert.strictEqual(configs[0].topic, 'homeassistant/update/mqtt-ota/a_b/config');
    const c = JSON.parse(configs.find((m) => m.topic.includes('/tb-1/')).payload);
    assert.strictEqual(c.command_topic, 'mqtt-ota/devices/tb-1/install');
    assert.strictEqual(c.payload_install, 'install');
    assert.deepStrictEqual(c.availability.map((a) => a.topic), ['mqtt-ota/bridge/availability', 'mqtt-ota/devices/tb-1/availability']);
    assert.strictEqual(c.availability_mode, 'all');
    for (const m of sent.filter((x) => x.topic.endsWith('/state'))) assert.deepStrictEqual(checkState(m.payload), [], m.payload);
  });

  it('the checker refuses what HA would drop (so the specs can fail)', () => {
    assert.notDeepStrictEqual(checkState(JSON.stringify({ installed_version: null })), []);
    assert.notDeepStrictEqual(checkState(JSON.stringify({ installed_version: '1', progress: 3 })), []);
    assert.notDeepStrictEqual(checkState(JSON.stringify({ update_percentage: 140 })), []);
    assert.notDeepStrictEqual(checkDiscovery('homeassistant', 'homeassistant/update/a.b/config', '{"state_topic":"s"}'), []);
    assert.notDeepStrictEqual(checkDiscovery('homeassistant', 'homeassistant/update/x/config', '{"state_topic":"s","command_topic":"c"}'), []);
    assert.notDeepStrictEqual(checkDiscovery('homeassistant', 'homeassistant/update/x/config', '{"command_topic":"c","payload_install":"i"}'), []);
  });

  it('state follows the progress model: latest is the newest of the title, then the assignment; progress; installed equals latest', async () => {
    const { device } = await repo.devices.register({ id: 'tb-1', dialect: 'thingsboard' });
    const tracker = trackerFor(repo);
    // What a ThingsBoard device says at connect: a bare version report (recorded as notified).
    tracker.record({ device: 'tb-1', dialect: 'thingsboard', state: 'notified', version: '1.0.0', title: 'app', at: at() });
    makeBridge();
    drain();
    assert.deepStrictEqual(lastState('tb-1'), { installed_version: '1.0.0', latest_version: '1.10.0', title: 'app', release_summary: '', in_progress: false, update_percentage: null });

    const fw = repo.firmware.find('app', '1.2.0');
    tracker.assign(fw, [device]);
    tracker.record({ device: 'tb-1', dialect: 'thingsboard', state: 'notified', at: at() });
    drain();
    assert.strictEqual(lastState('tb-1').latest_version, '1.2.0', 'an assignment is what Install means');
    assert.strictEqual(lastState('tb-1').in_progress, true);
    tracker.record({ device: 'tb-1', dialect: 'thingsboard', state: 'downloading', percent: 42.4, at: at() });
    drain();
    assert.deepStrictEqual([lastState('tb-1').in_progress, lastState('tb-1').update_percentage], [true, 42]);
    tracker.record({ device: 'tb-1', dialect: 'thingsboard', state: 'updated', version: '1.2.0', title: 'app', at: at() });
    drain();
    assert.deepStrictEqual(lastState('tb-1'), { installed_version: '1.2.0', latest_version: '1.2.0', title: 'app', release_summary: '', in_progress: false, update_percentage: null });
    tracker.record({ device: 'tb-1', dialect: 'thingsboard', state: 'failed', error: { code: 'x', message: 'flash write failed' }, at: at() });
    drain();
    for (const s of statesOf('tb-1')) assert.deepStrictEqual(checkState(JSON.stringify(s)), []);
  });

  it('publishes a device state only on change, at most twice a second, however many events arrive', async () => {
    const { device } = await repo.devices.register({ id: 'tb-1', dialect: 'thingsboard' });
    const tracker = trackerFor(repo);
    tracker.assign(repo.firmware.find('app', '1.10.0'), [device]);
    makeBridge({ minIntervalMs: 500 });
    drain();
    const before = statesOf('tb-1').length;
    // 200 progress reports within one second, one tick every 10 ms.
    for (let i = 0; i < 200; i++) {
      tracker.record({ device: 'tb-1', dialect: 'thingsboard', state: 'downloading', percent: i / 2, at: at() });
      now += 5;
      if (i % 2) bridge.flush();
    }
    const during = statesOf('tb-1').length - before;
    assert.ok(during <= 3, `${during} state messages in one second`);
    drain();
    assert.strictEqual(lastState('tb-1').update_percentage, 100);
    const n = statesOf('tb-1').length;
    drain();
    assert.strictEqual(statesOf('tb-1').length, n, 'nothing changed, nothing published');
  });

  it('bounds every tick at a fleet: perTick messages, the rest on later ticks', async () => {
    for (let i = 0; i < 300; i++) await repo.devices.register({ id: `d-${i}`, dialect: 'tago' });
    makeBridge({ perTick: 50 });
    bridge.flush();
    assert.strictEqual(sent.length, 50);
    drain();
    assert.strictEqual(sent.filter((m) => m.topic.endsWith('/config')).length, 300);
    assert.strictEqual(sent.filter((m) => m.topic.endsWith('/state')).length, 300);
  });

  it('removing a device removes its entity: empty retained config, state and availability', async () => {
    await repo.devices.register({ id: 'tb-1', dialect: 'thingsboard' });
    makeBridge();
    drain();
    sent.length = 0;
    await repo.devices.remove('tb-1');
    bridge.flush();
    const t = topicsFor(settings, 'tb-1');
    assert.deepStrictEqual(sent.map((m) => [m.topic, m.payload, m.retain]), [[t.config, '', true], [t.state, '', true], [t.availability, '', true]]);
    assert.deepStrictEqual(checkDiscovery('homeassistant', t.config, ''), []);
    drain();
    assert.strictEqual(sent.length, 3, 'nothing more for a device that is gone');
  });

  it('removes the entities of devices deleted while it was away (retained configs it finds), and no other', async () => {
    await repo.devices.register({ id: 'tb-1', dialect: 'thingsboard' });
    makeBridge();
    drain();
    sent.length = 0;
    const gone = topicsFor(settings, 'old.device');
    bridge.retainedConfig(gone.config, Buffer.from('{"state_topic":"x"}'));
    bridge.retainedConfig(topicsFor(settings, 'tb-1').config, Buffer.from('{"state_topic":"x"}'));
    bridge.retainedConfig('homeassistant/update/someone-else/x/config', Buffer.from('{"state_topic":"x"}'));
    bridge.retainedConfig(topicsFor(settings, 'empty').config, Buffer.alloc(0));
    drain();
    assert.deepStrictEqual(sent.map((m) => [m.topic, m.payload, m.retain]), [[gone.config, '', true], [gone.state, '', true], [gone.availability, '', true]]);
  });

  it('a removal while disconnected goes out once the connection is back', async () => {
    await repo.devices.register({ id: 'tb-1', dialect: 'thingsboard' });
    let up = true;
    bridge = new HomeAssistantBridge(repo, settings, {
      publish: (topic, payload, retain) => up && sent.push({ topic, payload, retain }) > 0,
      install() {},
      log: (text) => logs.push(text),
      now: () => now,
    }, { tickMs: 3_600_000, sweepMs: 3_600_000 });
    bridge.start();
    drain();
    up = false;
    sent.length = 0;
    await repo.devices.remove('tb-1');
    drain();
    assert.deepStrictEqual(sent, []);
    up = true;
    bridge.resync();
    drain();
    assert.deepStrictEqual(sent.map((m) => m.payload), ['', '', '']);
  });

  it('availability follows the gateway presence, and a late disconnect of an old session is ignored', async () => {
    await repo.devices.register({ id: 'tb-1', dialect: 'thingsboard' });
    makeBridge();
    const avail = () => sent.filter((m) => m.topic === topicsFor(settings, 'tb-1').availability).map((m) => m.payload);
    drain();
    repo.emit('presence', { device: 'tb-1', dialect: 'thingsboard', event: 'connect', session: 's1', at: at() });
    drain();
    repo.emit('presence', { device: 'tb-1', dialect: 'thingsboard', event: 'connect', session: 's2', at: at() });
    repo.emit('presence', { device: 'tb-1', dialect: 'thingsboard', event: 'disconnect', session: 's1', at: at() });
    drain();
    repo.emit('presence', { device: 'tb-1', dialect: 'thingsboard', event: 'disconnect', session: 's2', at: at() });
    drain();
    assert.deepStrictEqual(avail(), ['offline', 'online', 'offline']);
  });

  describe('Install commands', () => {
    beforeEach(async () => {
      await repo.devices.register({ id: 'tb-1', dialect: 'thingsboard' });
      await repo.devices.register({ id: 'tb-2', dialect: 'thingsboard' });
      for (const id of ['tb-1', 'tb-2']) trackerFor(repo).record({ device: id, dialect: 'thingsboard', state: 'updated', version: '1.0.0', title: 'app', at: at() });
    });

    it('installs the latest firmware of the device named in the topic', async () => {
      makeBridge();
      bridge.command('mqtt-ota/devices/tb-1/install', Buffer.from('install'));
      await new Promise((r) => setImmediate(r));
      assert.deepStrictEqual(installs, [{ device: 'tb-1', firmware: '1.10.0' }]);
    });

    it('ignores an unknown device, another payload, a foreign topic, with one log line per kind', () => {
      makeBridge();
      for (let i = 0; i < 100; i++) bridge.command(`mqtt-ota/devices/ghost-${i}/install`, Buffer.from('install'));
      bridge.command('mqtt-ota/devices/tb-1/install', Buffer.from('INSTALL'));
      bridge.command('mqtt-ota/devices/tb-1/install', Buffer.alloc(100000, 'i'));
      bridge.command('other/devices/tb-1/install', Buffer.from('install'));
      bridge.command('mqtt-ota/devices/tb-1/install/x', Buffer.from('install'));
      assert.deepStrictEqual(installs, []);
      assert.strictEqual(logs.length, 2, logs.join('\n'));
      assert.match(logs[0], /unknown device "ghost-0"/);
    });

    it('ignores a retained Install (it would start the update again at every reconnect)', async () => {
      makeBridge();
      bridge.command('mqtt-ota/devices/tb-1/install', Buffer.from('install'), true);
      await new Promise((r) => setImmediate(r));
      assert.deepStrictEqual(installs, []);
      assert.match(logs[0], /retained Install/);
    });

    it('takes one Install per device per interval, and a bounded number a minute in all', async () => {
      makeBridge({ installIntervalMs: 10_000, installsPerMinute: 3 });
      for (let i = 0; i < 5; i++) bridge.command('mqtt-ota/devices/tb-1/install', Buffer.from('install'));
      await new Promise((r) => setImmediate(r));
      assert.strictEqual(installs.length, 1);
      now += 11_000;
      bridge.command('mqtt-ota/devices/tb-2/install', Buffer.from('install'));
      now += 11_000;
      // (the install port here only records: tb-1 has no assignment on its way)
      bridge.command('mqtt-ota/devices/tb-1/install', Buffer.from('install'));
      now += 11_000;
      bridge.command('mqtt-ota/devices/tb-2/install', Buffer.from('install'));
      await new Promise((r) => setImmediate(r));
      assert.strictEqual(installs.length, 3, 'the fourth within a minute is refused');
      assert.ok(logs.some((l) => /a minute/.test(l)));
    });

    it('does not assign again what is already on its way or installed', async () => {
      makeBridge();
      const fw = repo.firmware.find('app', '1.10.0');
      trackerFor(repo).assign(fw, [repo.devices.get('tb-1')]);
      trackerFor(repo).record({ device: 'tb-1', dialect: 'thingsboard', state: 'downloading', percent: 5, at: at() });
      bridge.command('mqtt-ota/devices/tb-1/install', Buffer.from('install'));
      await new Promise((r) => setImmediate(r));
      assert.deepStrictEqual(installs, []);
      assert.match(logs[0], /on its way already/);
    });
  });

  it('refuses a bad discovery prefix or topic base', () => {
    assert.throws(() => haSettings({ prefix: 'home/#' }), /discovery prefix/);
    assert.throws(() => haSettings({ base: '/lead' }), /topic base/);
    assert.strictEqual(objectIdFor('tb-1'), 'tb-1');
    assert.match(objectIdFor('a.b'), /^a_b_[0-9a-f]{8}$/);
  });
});
