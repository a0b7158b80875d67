'use strict';
const assert = require('assert');
const fs = require('fs');
const h = require('./helpers');
const { helper, nodes } = require('../support/red');
const { tempDir } = require('../support/images');
const gatewayNode = require('../../dist/nodes/ota-gateway.js');

// The ACL escapes of issue 11, each tried as the attacker did. A rule whose placeholder the
// device record lacked became `+`, so a Tencent device registered without a product got
// `+/{id}/#`: `$share/{id}/#` (every device's traffic on a broker with shared subscriptions), the
// Sming notice `a/{id}/u/...` and the Biotz notice `biotz/{id}/...` were all "its own".

function escapeSuite(title, startBroker) {
  describe(title, function () {
    let broker, store, gw, bare, auto, autoWithProduct, server, v5;
    const clients = [];
    const refused = [];

    before(async function () {
      broker = await startBroker(this);
      v5 = broker.version === 5;
      store = h.makeRepository();
      const d = store.repo.devices;
      await d.register({ id: 'tb-a', dialect: 'thingsboard', token: 'tb-a-token' });
      await d.register({ id: 'bz-a', dialect: 'biotz', attributes: { customer: 'c1' } });
      await d.register({ id: 'sm-a', dialect: 'sming', attributes: { app: 'demo' } });
      await d.register({ id: 'sm-b', dialect: 'sming', attributes: { app: 'lamp' } });
      // Tencent devices without a product (valid: the product may be set on the node).
      for (const id of ['g1', '1', 'demo', 'nop']) await d.register({ id, dialect: 'tencent' });
      // A complete identity that spells another dialect's topics: product `a`, device `lamp`.
      await d.register({ id: 'lamp', dialect: 'tencent', attributes: { product: 'a' } });
      gw = await h.startGateway(store.repo, broker.url, { attributes: { product: 'P9' } });
      bare = await h.startGateway(store.repo, broker.url);
      auto = await h.startGateway(store.repo, broker.url, { autoRegister: 'tencent' });
      autoWithProduct = await h.startGateway(store.repo, broker.url, { autoRegister: 'tencent', attributes: { product: 'P9' } });
      for (const g of [gw, bare, auto, autoWithProduct]) g.on('refused', (e) => refused.push(e));
      server = await h.connect(broker.url, { protocolVersion: broker.version, clientId: 'server-side' });
      clients.push(server);
    });

    after(async function () {
      await h.endAll(clients);
      for (const g of [gw, bare, auto, autoWithProduct]) if (g) await g.close();
      if (broker) await broker.close();
      if (store) await store.close();
    });

    const device = async (gateway, options) => {
      const client = await h.connect(gateway.url, { protocolVersion: broker.version, ...options });
      clients.push(client);
      return client;
    };
    const failure = () => (v5 ? 0x87 : 0x80);
    const notAuthorized = () => (v5 ? 0x87 : 5);
    const subscribe = (client, filters) =>
      client.subscribeAsync(Object.fromEntries(filters.map((f) => [f, { qos: 1 }]))).then(
        (granted) => granted.map((g) => g.qos),
        (err) => err.packet.granted,
      );
    /**
     * Records what `client` receives from now on; `until(topic)` publishes a marker there from the
     * server side and resolves with everything else received before it arrived.
     */
    const record = (client) => {
      const seen = [];
      client.on('message', (topic, payload) => seen.push([topic, payload.toString()]));
      return {
        async until(topic) {
          const marker = `marker-${Math.random()}`;
          await server.publishAsync(topic, marker, { qos: 1 });
          await h.until(() => seen.some(([, p]) => p === marker));
          return seen.filter(([, p]) => p !== marker);
        },
      };
    };
    /** A publish the gateway may refuse (MQTT 5 devices are told, and mqtt.js rejects). */
    const attempt = (client, topic, payload, options) => client.publishAsync(topic, payload, { qos: 1, ...options }).catch(() => undefined);

    it('refuses at CONNECT a device whose topics need an attribute it lacks, naming the attribute', async function () {
      await assert.rejects(device(bare, { clientId: 'nop' }), (err) => err.code === notAuthorized());
      const event = refused.find((e) => e.clientId === 'nop');
      assert.ok(event, 'a refused event');
      assert.strictEqual(event.deviceId, 'nop');
      assert.match(event.message, /\bproduct\b/);
    });

    it('never grants $share, $SYS or another $ filter, and reads no other device\'s chunks through them', async function () {
      const spy = await device(gw, { clientId: 'g1' });
      const spied = record(spy);
      const granted = await subscribe(spy, ['$share/g1/#', '$SYS/#', '$ota/#', '$ota/update/P9/g1']);
      assert.deepStrictEqual(granted, [failure(), failure(), failure(), 1]);
      const victim = await device(gw, { username: 'tb-a-token', clientId: 'victim' });
      await victim.subscribeAsync('v2/fw/response/+', { qos: 1 });
      await server.publishAsync('ota/tb-a/v2/fw/response/1/chunk/0', 'secret chunk', { qos: 1 });
      assert.deepStrictEqual(await spied.until('$ota/update/P9/g1'), []);
    });

    it('lets no device publish a retained Sming image, with or without a complete identity', async function () {
      const forger = await device(gw, { clientId: 'demo' });
      await attempt(forger, 'a/demo/u/1.0', Buffer.from([9, 0xde, 0xad]), { retain: true });
      const spelled = await device(gw, { clientId: 'lamp' });
      await attempt(spelled, 'a/lamp/u/1.0', Buffer.from([9, 0xbe, 0xef]), { retain: true });
      assert.deepStrictEqual(await subscribe(spelled, ['a/lamp/#', 'a/lamp/u/#']), [failure(), failure()]);

      for (const [id, app] of [['sm-a', 'demo'], ['sm-b', 'lamp']]) {
        const sming = await device(gw, { clientId: id });
        const got = record(sming);
        assert.deepStrictEqual(await subscribe(sming, [`a/${app}/u/#`]), [1]);
        assert.deepStrictEqual(await got.until(`a/${app}/u/0.0`), [], `${id} got a forged image`);
      }
    });

    it('lets no device publish on a Biotz notice topic', async function () {
      const biotz = await device(gw, { clientId: 'bz-a' });
      const got = record(biotz);
      const notice = 'biotz/1/0/c1/bz-a/subscribe/firmware/update';
      assert.deepStrictEqual(await subscribe(biotz, [notice]), [1]);
      const forger = await device(gw, { clientId: '1' });
      await attempt(forger, notice, JSON.stringify({ 'firmware-name': 'evil', 'download-url': 'http://attacker/evil.bin' }), { retain: true });
      // Nor the device itself (the Biotz rule), nor through its whole space.
      await attempt(biotz, notice, '{"download-url":"http://self/evil.bin"}');
      assert.deepStrictEqual(await got.until(notice), []);
    });

    it('grants an auto-registered stranger exactly what a registered device gets', async function () {
      await assert.rejects(device(auto, { clientId: 'g2' }), (err) => err.code === notAuthorized());
      assert.match(refused.find((e) => e.clientId === 'g2').message, /\bproduct\b/);

      const stranger = await device(autoWithProduct, { clientId: 'g3' });
      assert.strictEqual(store.repo.devices.get('g3').dialect, 'tencent');
      assert.deepStrictEqual(await subscribe(stranger, ['$share/g3/#', '+/g3/#', '$ota/update/P9/g3', 'P9/g3/#']), [failure(), failure(), 1, 1]);
      await attempt(stranger, 'a/g3/u/1.0', 'image', { retain: true });
      await attempt(stranger, '$ota/update/P9/g3', '{"type":"update_firmware"}');
      const watcher = await h.connect(broker.url, { protocolVersion: broker.version, clientId: 'watcher' });
      clients.push(watcher);
      const got = record(watcher);
      await watcher.subscribeAsync(['a/g3/u/#', '$ota/update/P9/g3'], { qos: 1 });
      assert.deepStrictEqual(await got.until('$ota/update/P9/g3'), []);
    });

    it('keeps a ThingsBoard device\'s $share filter inside its own namespace', async function () {
      const tb = await device(gw, { username: 'tb-a-token', clientId: 'tb-spy' });
      const got = record(tb);
      assert.deepStrictEqual(await subscribe(tb, ['$share/x/#', 'v1/devices/me/attributes']), [1, 1]);
      const other = await h.connect(broker.url, { protocolVersion: broker.version, clientId: 'elsewhere' });
      clients.push(other);
      await other.publishAsync('ota/someone/v1/devices/me/attributes', 'not yours', { qos: 1 });
      assert.deepStrictEqual(await got.until('ota/tb-a/v1/devices/me/attributes'), []);
    });
  });
}

describe('ota-gateway: ACL escapes', function () {
  this.timeout(15000);
  escapeSuite('through aedes (MQTT 3.1.1)', () => h.startAedes());
  escapeSuite('through mosquitto (MQTT 5)', (ctx) => {
    if (!h.hasMosquitto()) {
      console.log(`      skipped: ${h.MOSQUITTO} is not installed (apt-get install mosquitto)`);
      ctx.skip();
    }
    return h.startMosquitto();
  });

  describe('through the node', function () {
    let broker, dir;
    before(async function () {
      broker = await h.startAedes();
    });
    after(async function () {
      await helper.unload();
      await broker.close();
      if (dir) fs.rmSync(dir, { recursive: true, force: true });
    });

    it('logs the attribute a refused device lacks, and takes it from its own setting', async function () {
      dir = tempDir();
      const [bare, withProduct] = [await h.freePort(), await h.freePort()];
      const gw = (id, port, extra) => ({ id, z: 'f1', type: 'ota-gateway', repository: 'repo', host: '127.0.0.1', port, broker: broker.url, ...extra });
      await helper.load([nodes.repository, gatewayNode], [
        { id: 'f1', type: 'tab' },
        { id: 'repo', type: 'ota-repository', storageDir: dir },
        gw('bare', bare, { wires: [['events']] }),
        gw('withProduct', withProduct, { product: 'P9' }),
        { id: 'events', z: 'f1', type: 'helper' },
      ]);
      const events = [];
      helper.getNode('events').on('input', (msg) => events.push(msg));
      await helper.getNode('repo').repo.devices.register({ id: 'tc-1', dialect: 'tencent' });
      await h.waitForPort(bare);
      await h.waitForPort(withProduct);
      await assert.rejects(h.connect(`mqtt://127.0.0.1:${bare}`, { clientId: 'tc-1' }), (err) => err.code === 5);
      await h.until(() => events.length > 0);
      assert.strictEqual(events[0].topic, 'refused');
      assert.strictEqual(events[0].payload.deviceId, 'tc-1');
      assert.match(events[0].payload.message, /\bproduct\b/);
      // A warning in the log (its text is the i18n key in the test runtime).
      assert.ok(helper.log().args.some(([m]) => m.id === 'bare' && m.level === 30 && /incomplete/.test(m.msg)));
      const device = await h.connect(`mqtt://127.0.0.1:${withProduct}`, { clientId: 'tc-1' });
      try {
        assert.deepStrictEqual((await device.subscribeAsync('$ota/update/P9/tc-1')).map((g) => g.qos), [0]);
      } finally {
        await h.endAll([device]);
      }
    });
  });
});
