'use strict';
const assert = require('assert');
const h = require('./helpers');
const { gatewayRig } = require('./brokers');

// Who may connect, and what a connected device may see and say.

function aclSuite(title, startBroker) {
  describe(title, function () {
    const events = { connect: [], disconnect: [], refused: [], denied: [] };
    /** A second gateway over the same devices, registering strangers. */
    let open;
    after(async function () {
      if (open) await open.close();
    });
    const rig = gatewayRig(startBroker, {
      devices: [
        { id: 'bz-a', dialect: 'biotz', attributes: { customer: 'c1' } },
        { id: 'bz-b', dialect: 'biotz', attributes: { customer: 'c1' } },
        { id: 'tc-a', dialect: 'tencent', attributes: { product: 'P1' }, token: 'tc-a-secret' },
        { id: 'sm-a', dialect: 'sming', attributes: { app: 'lamp' } },
        { id: 'tb-a', dialect: 'thingsboard', token: 'tb-a-token' },
        { id: 'tg-a', dialect: 'tago', token: 'tg-a-token' },
      ],
    });
    const { device } = rig;
    before(async function () {
      for (const name of Object.keys(events)) rig.gateway.on(name, (e) => events[name].push(e));
      open = await h.startGateway(rig.store.repo, rig.broker.url, { autoRegister: 'thingsboard' });
    });

    const failure = () => (rig.v5 ? 0x87 : 0x80);
    /** The SUBACK codes, refused or not (mqtt.js rejects when any filter is refused). */
    const subscribe = (client, filters, qos = 0) =>
      client.subscribeAsync(Object.fromEntries(filters.map((f) => [f, { qos }]))).then(
        (granted) => granted.map((g) => g.qos),
        (err) => err.packet.granted,
      );
    /** MQTT 5 devices hear "not authorized"; MQTT 3.1.1 has no way to say it. */
    const refused = (promise) =>
      promise.then(
        () => assert.ok(!rig.v5, 'an MQTT 5 device should have been told'),
        (err) => assert.strictEqual(err.code, 0x87),
      );

    it('refuses filters outside a per-device dialect\'s own topics, filter by filter', async function () {
      const a = await device({ clientId: 'bz-a' });
      const granted = await subscribe(
        a,
        ['biotz/1/0/c1/bz-a/subscribe/firmware/update', 'biotz/1/0/c1/bz-b/#', '#', 'biotz/1/0/c1/bz-a/#', 'biotz/1/0/+/bz-a/#', 'biotz/1/0/c2/bz-a/#'],
        1,
      );
      assert.deepStrictEqual(granted, [1, failure(), failure(), 1, failure(), failure()]);

      const t = await device({ clientId: 'tc-a', username: 'tc-a', password: 'tc-a-secret' });
      const tg = await subscribe(t, ['$ota/update/P1/tc-a', '$ota/update/P1/someone', '$ota/#', 'P1/tc-a/#']);
      assert.deepStrictEqual(tg, [0, failure(), failure(), 0]);
      // Nothing allowed at all: the gateway answers the SUBACK itself.
      assert.deepStrictEqual(await subscribe(t, ['#', 'P2/tc-a/x']), [failure(), failure()]);
      assert.ok(rig.gateway.counters.deniedSubscribe >= 5);
      assert.ok(events.denied.some((e) => e.deviceId === 'bz-a' && e.kind === 'subscribe' && e.topic === '#'));
    });

    it('never shows a device another device\'s messages, whatever it subscribes', async function () {
      const spy = await device({ clientId: 'bz-b' });
      const seen = [];
      spy.on('message', (topic) => seen.push(topic));
      assert.deepStrictEqual(await subscribe(spy, ['#', 'biotz/1/0/c1/bz-a/#', 'biotz/1/0/c1/bz-b/#']), [failure(), failure(), 0]);
      const tbSpy = await device({ username: 'tb-a-token', clientId: 'x' });
      const tbSeen = [];
      tbSpy.on('message', (topic) => tbSeen.push(topic));
      await tbSpy.subscribeAsync(['#', '+/+/#', 'ota/tg-a/#', 'biotz/#']);

      await rig.server.publishAsync('biotz/1/0/c1/bz-a/subscribe/firmware/update', '{"firmware-name":"x"}', { qos: 1 });
      await rig.server.publishAsync('ota/tg-a/tago/data/post', '{"variable":"firmware_block"}', { qos: 1 });
      await rig.server.publishAsync('$ota/update/P1/tc-a', '{}', { qos: 1 });
      // Round trips through the broker: anything that leaked arrived before these.
      await rig.server.publishAsync('biotz/1/0/c1/bz-b/publish/marker', 'm', { qos: 1 });
      await rig.server.publishAsync('ota/tb-a/marker', 'm', { qos: 1 });
      await h.until(() => seen.length > 0 && tbSeen.length > 0);
      assert.deepStrictEqual([...new Set(seen)], ['biotz/1/0/c1/bz-b/publish/marker']);
      assert.deepStrictEqual([...new Set(tbSeen)], ['marker']);
    });

    it('drops a publish on the device\'s own notice topic and counts it', async function () {
      const notice = 'biotz/1/0/c1/bz-a/subscribe/firmware/update';
      const original = '{"firmware-name":"fw-2","download-url":"http://x/y"}';
      await rig.server.publishAsync(notice, original, { qos: 1, retain: true });
      const upstream = [];
      rig.server.on('message', (topic, payload) => upstream.push([topic, payload.toString()]));
      await rig.server.subscribeAsync(['biotz/#', '$ota/#', 'a/#']);
       await h.until(() => upstream.length === 1);
      upstream.length = 0; // the retained notice itself

      const before = rig.gateway.counters.deniedPublish;
      const bz = await device({ clientId: 'bz-a' });
      await refused(bz.publishAsync(notice, '{"firmware-name":"evil"}', { qos: 1, retain: true }));
      await bz.publishAsync(notice, '', { qos: 0, retain: true });
      const tc = await device({ clientId: 'tc-a', username: 'tc-a', password: 'tc-a-secret' });
      await refused(tc.publishAsync('$ota/update/P1/tc-a', '{"type":"update_firmware"}', { qos: 1 }));
      await refused(tc.publishAsync('$ota/update/P1/tc-a', 'x', { qos: 2 }));
      const sm = await device({ clientId: 'sm-a' });
      await refused(sm.publishAsync('a/lamp/u/1.2', 'image', { qos: 1, retain: true }));
      assert.strictEqual(rig.gateway.counters.deniedPublish - before, 5);

      // What a device may say still goes through: Tencent progress reports, Biotz uplinks.
      await tc.publishAsync('$ota/report/P1/tc-a', '{"type":"report_version"}', { qos: 1 });
      await bz.publishAsync('biotz/1/0/c1/bz-a/publish/marker', 'm', { qos: 1 });
      await h.until(() => upstream.some(([t]) => t.endsWith('/marker')));
      assert.deepStrictEqual(upstream.map(([t]) => t), ['$ota/report/P1/tc-a', 'biotz/1/0/c1/bz-a/publish/marker']);

      // The retained notice is still the server's.
      const fresh = await h.connect(rig.broker.url, { protocolVersion: rig.broker.version });
      rig.clients.push(fresh);
      const retained = new Promise((resolve) => fresh.once('message', (topic, payload) => resolve(payload.toString())));
      await fresh.subscribeAsync(notice);
      assert.strictEqual(await retained, original);
    });

    it('refuses a bad token, an unknown device and a missing token with the right CONNACK code', async function () {
      const cases = [
        [{ username: 'not-a-token', clientId: 'tb-a' }, rig.v5 ? 0x86 : 4],
        [{ username: 'Token', password: 'wrong', clientId: 'tg-a' }, rig.v5 ? 0x86 : 4],
        [{ clientId: 'tc-a' }, rig.v5 ? 0x86 : 4],
        [{ clientId: 'stranger' }, rig.v5 ? 0x87 : 5],
      ];
      const refusedBefore = events.refused.length;
      for (const [options, code] of cases) {
        await assert.rejects(h.connect(rig.gateway.url, { protocolVersion: rig.broker.version, ...options }), (err) => {
          assert.strictEqual(err.code, code, `${JSON.stringify(options)}: ${err.message}`);
          return true;
        });
      }
      assert.strictEqual(events.refused.length - refusedBefore, 4);
      // The right token, TagoIO style, is let in.
      const tg = await device({ username: 'Token', password: 'tg-a-token', clientId: 'whatever' });
      assert.ok(tg.connected);
      assert.ok(events.connect.some((e) => e.deviceId === 'tg-a' && e.dialect === 'tago'));
    });

    it('registers an unknown device when told to, in its own namespace', async function () {
      const fresh = await h.connect(open.url, { protocolVersion: rig.broker.version, clientId: 'newcomer', username: 'newcomer-token' });
      rig.clients.push(fresh);
      const record = rig.store.repo.devices.get('newcomer');
      assert.strictEqual(record.dialect, 'thingsboard');
      assert.ok(rig.store.repo.devices.checkToken('newcomer', 'newcomer-token'));
      const got = new Promise((resolve) => fresh.once('message', (topic) => resolve(topic)));
      await fresh.subscribeAsync('v1/devices/me/attributes');
      await rig.server.publishAsync('ota/newcomer/v1/devices/me/attributes', '{"fw_title":"x"}');
      assert.strictEqual(await got, 'v1/devices/me/attributes');
    });

    it('counts connected devices and reports disconnects', async function () {
      const n = rig.gateway.counters.connected;
      assert.strictEqual(n, rig.gateway.connectedDevices().length);
      const c = await device({ username: 'tb-a-token', clientId: 'counted' });
      await h.until(() => rig.gateway.counters.connected === n + 1);
      await new Promise((resolve) => c.end(false, {}, resolve));
      await h.until(() => rig.gateway.counters.connected === n);
      assert.ok(events.disconnect.some((e) => e.deviceId === 'tb-a' && e.clientId === 'counted'));
    });
  });
}

describe('ota-gateway: identity and ACLs', function () {
  this.timeout(15000);
  aclSuite('through aedes (MQTT 3.1.1)', () => h.startAedes());
  aclSuite('through mosquitto (MQTT 5)', (ctx) => {
    if (!h.hasMosquitto()) {
      console.log(`      skipped: ${h.MOSQUITTO} is not installed (apt-get install mosquitto)`);
      ctx.skip();
    }
    return h.startMosquitto();
  });
});
