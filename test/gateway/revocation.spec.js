'use strict';
const assert = require('assert');
const h = require('./helpers');
const { gatewayRig } = require('./brokers');
const { DeviceRegistry } = require('../../dist/core/devices');
const { eventually } = require('../support/eventually');

// Deleting a device or rotating its token must end what its old identity opened: before, the
// session ran on until the device itself hung up (for ever, with keepalive).

const WITHIN_MS = 1000;

/** Resolves with the ms the client took to lose its connection; rejects after WITHIN_MS. */
function closesWithin(client) {
  const start = Date.now();
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`still connected after ${WITHIN_MS} ms`)), WITHIN_MS);
    client.once('close', () => {
      clearTimeout(timer);
      resolve(Date.now() - start);
    });
  });
}

function revocationSuite(title, startBroker) {
  describe(title, function () {
    const rig = gatewayRig(startBroker, {
      devices: [
        { id: 'doomed', dialect: 'thingsboard', token: 'doomed-token' },
        { id: 'rotated', dialect: 'tago', token: 'old-token' },
        { id: 'moved', dialect: 'biotz', attributes: { customer: 'c1' } },
        { id: 'bystander', dialect: 'thingsboard', token: 'bystander-token' },
        { id: 'hopper', dialect: 'biotz', attributes: { customer: 'c1' } },
      ],
      server: false,
    });
    const { device } = rig;
    const disconnects = [];
    before(function () {
      rig.gateway.on('disconnect', (e) => disconnects.push(e));
    });

    it('closes a deleted device\'s connections at once, and only its own', async function () {
      const a = await device({ username: 'doomed-token', clientId: 'one' });
      const b = await device({ username: 'doomed-token', clientId: 'two' });
      const other = await device({ username: 'bystander-token', clientId: 'bystander' });
      const closed = Promise.all([closesWithin(a), closesWithin(b)]);
      await rig.store.repo.devices.remove('doomed');
      await closed;
      assert.ok(other.connected);
      assert.ok(disconnects.some((e) => e.deviceId === 'doomed' && /deleted/.test(e.reason)));
      await assert.rejects(device({ username: 'doomed-token', clientId: 'again' }));
    });

    it('closes the connections opened with a token that was rotated', async function () {
      const old = await device({ username: 'Token', password: 'old-token', clientId: 'old' });
      const closed = closesWithin(old);
      await rig.store.repo.devices.register({ id: 'rotated', dialect: 'tago', token: 'new-token' });
      await closed;
      await assert.rejects(device({ username: 'Token', password: 'old-token', clientId: 'old-again' }));
      await device({ username: 'Token', password: 'new-token', clientId: 'new' });
    });

    it('closes a device\'s connections when its topics change, and keeps them when nothing did', async function () {
      const biotz = await device({ clientId: 'moved' });
      let lost = false;
      biotz.once('close', () => (lost = true));
      await rig.store.repo.devices.register({ id: 'moved', dialect: 'biotz', attributes: { customer: 'c1' } });
      await h.sleep(100);
      assert.ok(!lost, 'an unchanged record must not cost the device its connection');
      const closed = closesWithin(biotz);
      await rig.store.repo.devices.register({ id: 'moved', dialect: 'biotz', attributes: { customer: 'c2' } });
      await closed;
    });

    // A session compiles its device's ACL rules and fences once (policy.ts): the compiled rules
    // must never outlive the record they came from.
    it('never lets a device publish by the ACL of a record that changed: after the move only the new customer\'s topics pass', async function () {
      const watcher = await h.connect(rig.broker.url, { protocolVersion: rig.broker.version, clientId: 'hopper-watcher' });
      rig.clients.push(watcher);
      const seen = [];
      watcher.on('message', (topic, payload) => seen.push(`${topic} ${payload}`));
      await watcher.subscribeAsync('biotz/1/0/+/hopper/#');
      const denied = [];
      rig.gateway.on('denied', (e) => denied.push(e));
      const before = await device({ clientId: 'hopper' });
      await before.publishAsync('biotz/1/0/c1/hopper/report', 'as c1', { qos: 1 });
      await eventually(() => seen.includes('biotz/1/0/c1/hopper/report as c1') || seen, 5000, 'the c1 report upstream');
      const closed = closesWithin(before);
      await rig.store.repo.devices.register({ id: 'hopper', dialect: 'biotz', attributes: { customer: 'c2' } });
      await closed;
      const after = await device({ clientId: 'hopper' });
      // MQTT 5 hears "not authorized"; MQTT 3.1.1 has no way to say no and gets a plain PUBACK.
      const refused = await after.publishAsync('biotz/1/0/c1/hopper/report', 'still c1?', { qos: 1 }).then(() => 'acknowledged', (err) => err.message);
      if (rig.v5) assert.match(refused, /Not authorized/);
      await after.publishAsync('biotz/1/0/c2/hopper/report', 'as c2', { qos: 1 });
      await eventually(() => seen.includes('biotz/1/0/c2/hopper/report as c2') || seen, 5000, 'the c2 report upstream');
      assert.ok(!seen.includes('biotz/1/0/c1/hopper/report still c1?'), `the old customer's topic reached the broker: ${seen.join(', ')}`);
      assert.ok(denied.some((e) => e.deviceId === 'hopper' && e.topic === 'biotz/1/0/c1/hopper/report'));
    });
  });
}

describe('ota-gateway: revocation', function () {
  this.timeout(15000);
  revocationSuite('through aedes (MQTT 3.1.1)', () => h.startAedes());
  revocationSuite('through mosquitto (MQTT 5)', (ctx) => {
    if (!h.hasMosquitto()) {
      console.log(`      skipped: ${h.MOSQUITTO} is not installed (apt-get install mosquitto)`);
      ctx.skip();
    }
    return h.startMosquitto();
  });

  describe('the command line gateway, when Node-RED changes the shared device list', function () {
    const rig = gatewayRig(() => h.startAedes(), {
      devices: [
        { id: 'cli-doomed', dialect: 'thingsboard', token: 'cli-doomed-token' },
        { id: 'cli-rotated', dialect: 'thingsboard', token: 'cli-old-token' },
      ],
      server: false,
      cli: [],
      env: { OTA_SECRET: 'x'.repeat(40) },
    });

    it('drops a deleted device and a rotated token within a second', async function () {
      const doomed = await h.connect(rig.gateway.url, { username: 'cli-doomed-token', clientId: 'd' });
      const rotated = await h.connect(rig.gateway.url, { username: 'cli-old-token', clientId: 'r' });
      rig.clients.push(doomed, rotated);
      // Node-RED's registry: another process, the same devices.json.
      const nodeRed = new DeviceRegistry(rig.store.dir, Buffer.from('x'.repeat(40)));
      const closed = Promise.all([closesWithin(doomed), closesWithin(rotated)]);
      await nodeRed.remove('cli-doomed');
      await nodeRed.register({ id: 'cli-rotated', dialect: 'thingsboard', token: 'cli-new-token' });
      await closed;
      await assert.rejects(h.connect(rig.gateway.url, { username: 'cli-old-token', clientId: 'r2' }));
      rig.clients.push(await h.connect(rig.gateway.url, { username: 'cli-new-token', clientId: 'r3' }));
    });
  });
});
