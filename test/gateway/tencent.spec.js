'use strict';
const assert = require('assert');
const crypto = require('crypto');
const h = require('./helpers');

// Tencent devices as their own SDK connects them (tencentyun/qcloud-iot-explorer-sdk-embedded-c):
// client id {productId}{deviceName} (mqtt_client.c:86), username
// {clientId};{sdkappid};{connid};{expiry} (mqtt_client_connect.c:143-145), password the lower-case
// hex HMAC-SHA1 of the username keyed with the base64-decoded device secret, then ";hmacsha1"
// (mqtt_client_connect.c:147-158), topics $ota/update|report/{productId}/{deviceName}
// (ota_mqtt.c:58). Built here by hand, not with the package's own signer.

const SECRET_1 = crypto.randomBytes(16).toString('base64');
const SECRET_4 = crypto.randomBytes(16).toString('base64');

function sdkLogin(product, name, secret, { expiry = '9223372036854775807', hash = 'sha1', connId = 'aB3dE' } = {}) {
  const clientId = `${product}${name}`;
  const username = `${clientId};21010406;${connId};${expiry}`;
  const sign = crypto.createHmac(hash, Buffer.from(secret, 'base64')).update(username).digest('hex');
  return { clientId, username, password: `${sign};hmac${hash}` };
}

function tencentSuite(title, startBroker) {
  describe(title, function () {
    let broker, store, gateway, withProduct, server, v5;
    const clients = [];
    const refusals = [];

    before(async function () {
      broker = await startBroker(this);
      v5 = broker.version === 5;
      store = h.makeRepository();
      const d = store.repo.devices;
      await d.register({ id: 'dev001', dialect: 'tencent', attributes: { product: 'P1' }, deviceSecret: SECRET_1 });
      await d.register({ id: 'dev002', dialect: 'tencent', attributes: { product: 'P1' } });
      await d.register({ id: 'dev003', dialect: 'tencent' });
      await d.register({ id: 'dev004', dialect: 'tencent', attributes: { product: 'ABCDEFGHIJ' }, deviceSecret: SECRET_4 });
      gateway = await h.startGateway(store.repo, broker.url);
      gateway.on('refused', (e) => refusals.push(e));
      withProduct = await h.startGateway(store.repo, broker.url, { product: 'P9' });
      server = await h.connect(broker.url, { protocolVersion: broker.version, clientId: 'server-side' });
      clients.push(server);
    });

    after(async function () {
      await h.endAll(clients);
      if (gateway) await gateway.close();
      if (withProduct) await withProduct.close();
      if (broker) await broker.close();
      if (store) await store.close();
    });

    const device = async (url, options) => {
      const client = await h.connect(url, { protocolVersion: broker.version, ...options });
      clients.push(client);
      return client;
    };
    const granted = (client, filter) => client.subscribeAsync(filter, { qos: 1 }).then((g) => g[0].qos, (err) => err.packet.granted[0]);
    const badLogin = () => (v5 ? 0x86 : 4);

    it('lets the stock SDK login in (client id {product}{device}, signed username) and gives it its $ota topics by device name', async function () {
      const dev = await device(gateway.url, sdkLogin('P1', 'dev001', SECRET_1));
      assert.strictEqual(await granted(dev, '$ota/update/P1/dev001'), 1);
      const notice = new Promise((resolve) => dev.on('message', (t, p) => resolve([t, p.toString()])));
      await server.publishAsync('$ota/update/P1/dev001', '{"type":"update_firmware"}', { qos: 1 });
      assert.deepStrictEqual(await notice, ['$ota/update/P1/dev001', '{"type":"update_firmware"}']);

      await server.subscribeAsync('$ota/report/P1/+', { qos: 1 });
      const report = new Promise((resolve) => server.on('message', (t, p) => t.startsWith('$ota/report/') && resolve([t, p.toString()])));
      await dev.publishAsync('$ota/report/P1/dev001', '{"type":"report_version"}', { qos: 1 });
      assert.deepStrictEqual(await report, ['$ota/report/P1/dev001', '{"type":"report_version"}']);
    });

    it('takes HMAC-SHA256 signatures (Tencent\'s other SDKs) and a 10-character product id', async function () {
      const dev = await device(gateway.url, sdkLogin('ABCDEFGHIJ', 'dev004', SECRET_4, { hash: 'sha256' }));
      assert.strictEqual(await granted(dev, '$ota/update/ABCDEFGHIJ/dev004'), 1);
    });

    it('refuses an unsigned, a wrongly signed, a borrowed and an expired login of a device with a secret, as bad credentials', async function () {
      const now = Math.floor(Date.now() / 1000);
      const good = sdkLogin('P1', 'dev001', SECRET_1);
      const cases = {
        'no password': { clientId: 'P1dev001' },
        'client id alone, the token way': { clientId: 'dev001' },
        'signed with another secret': sdkLogin('P1', 'dev001', SECRET_4),
        'dev004\'s valid login sent with dev001\'s client id': { ...sdkLogin('ABCDEFGHIJ', 'dev004', SECRET_4), clientId: 'P1dev001' },
        'expired an hour ago': sdkLogin('P1', 'dev001', SECRET_1, { expiry: String(now - 3600) }),
        'signature of another username': { ...good, username: good.username.replace('aB3dE', 'zzzzz') },
        'upper-case sha1 claimed as sha256': { ...good, password: good.password.replace('hmacsha1', 'hmacsha256') },
      };
      const before = refusals.length;
      for (const [what, login] of Object.entries(cases)) {
        await assert.rejects(h.connect(gateway.url, { protocolVersion: broker.version, ...login }), (err) => {
          assert.strictEqual(err.code, badLogin(), `${what}: ${err.message}`);
          return true;
        }, what);
      }
      assert.strictEqual(refusals.length - before, Object.keys(cases).length);
      // What is reported of a refusal never carries the password.
      for (const e of refusals) assert.ok(!JSON.stringify(e).includes(good.password.split(';')[0]));
    });

    it('takes a signature that expired within the clock skew (5 minutes)', async function () {
      const dev = await device(gateway.url, sdkLogin('P1', 'dev001', SECRET_1, { expiry: String(Math.floor(Date.now() / 1000) - 60), connId: 'skew1' }));
      assert.ok(dev.connected);
    });

    it('finds a device without a secret from {product}{device}, taking the gateway\'s product when its record has none', async function () {
      const two = await device(gateway.url, { clientId: 'P1dev002' });
      assert.strictEqual(await granted(two, '$ota/update/P1/dev002'), 1);
      const three = await device(withProduct.url, { clientId: 'P9dev003' });
      assert.strictEqual(await granted(three, '$ota/update/P9/dev003'), 1);
      assert.strictEqual(await granted(three, '$ota/update/P1/dev003'), v5 ? 0x87 : 0x80);
    });

    it('keeps a Tencent device to its own topics: no other device\'s notice, no publishing on its own', async function () {
      const dev = await device(gateway.url, sdkLogin('P1', 'dev001', SECRET_1, { connId: 'acl01' }));
      const failure = v5 ? 0x87 : 0x80;
      assert.strictEqual(await granted(dev, '$ota/update/P1/dev002'), failure);
      assert.strictEqual(await granted(dev, '$ota/report/P1/dev002'), failure);
      assert.strictEqual(await granted(dev, '$ota/update/P1/+'), failure);
      const seen = [];
      await server.subscribeAsync(['$ota/update/P1/dev001', '$ota/report/P1/dev001'], { qos: 1 });
      server.on('message', (t, p) => seen.push(`${t} ${p}`));
      await dev.publishAsync('$ota/update/P1/dev001', 'forged', { qos: 0 });
      // Same connection, so the broker has the forged one first if it had it at all.
      await dev.publishAsync('$ota/report/P1/dev001', 'marker', { qos: 1 });
      await h.until(() => seen.includes('$ota/report/P1/dev001 marker'));
      assert.ok(!seen.includes('$ota/update/P1/dev001 forged'), 'the device published its own update notice');
    });
  });
}

describe('ota-gateway: Tencent device secrets that cannot be checked', function () {
  it('refuses the device when its sealed secret does not open (the repository secret changed), whatever it sends', async function () {
    const { RegistryDirectory } = require('../../dist/gateway');
    const { DeviceRegistry } = require('../../dist/core/devices');
    const store = h.makeRepository();
    try {
      await store.repo.devices.register({ id: 'dev001', dialect: 'tencent', attributes: { product: 'P1' }, deviceSecret: SECRET_1 });
      await store.repo.flush();
      const login = sdkLogin('P1', 'dev001', SECRET_1);
      const same = new RegistryDirectory(new DeviceRegistry(store.dir, store.repo.secret));
      assert.strictEqual((await same.authenticate(login)).ok, true);
      const other = new RegistryDirectory(new DeviceRegistry(store.dir, Buffer.from('y'.repeat(40))));
      for (const creds of [login, { clientId: 'P1dev001' }, { clientId: 'dev001' }]) {
        assert.deepStrictEqual(await other.authenticate(creds), { ok: false, reason: 'bad_credentials' });
      }
    } finally {
      await store.close();
    }
  });
});

describe('ota-gateway: Tencent client ids that two devices could own', function () {
  it('refuses a client id two devices match alike, and lets the one whose signature checks in', async function () {
    const { RegistryDirectory } = require('../../dist/gateway');
    const store = h.makeRepository();
    try {
      const d = store.repo.devices;
      await d.register({ id: 'ab', dialect: 'tencent', attributes: { product: 'P' } });
      await d.register({ id: 'b', dialect: 'tencent', attributes: { product: 'Pa' } });
      const directory = new RegistryDirectory(d);
      assert.deepStrictEqual(await directory.authenticate({ clientId: 'Pab' }), { ok: false, reason: 'not_authorized' });
      await d.register({ id: 'b', dialect: 'tencent', attributes: { product: 'Pa' }, deviceSecret: SECRET_1 });
      const signed = await directory.authenticate(sdkLogin('Pa', 'b', SECRET_1));
      assert.deepStrictEqual(signed.ok && [signed.device.deviceId, signed.device.attributes.product], ['b', 'Pa']);
    } finally {
      await store.close();
    }
  });
});

describe('ota-gateway: Tencent devices as their SDK connects', function () {
  this.timeout(20000);
  tencentSuite('through aedes (MQTT 3.1.1)', () => h.startAedes());
  tencentSuite('through mosquitto (MQTT 5)', (ctx) => {
    if (!h.hasMosquitto()) {
      console.log(`      skipped: ${h.MOSQUITTO} is not installed (apt-get install mosquitto)`);
      ctx.skip();
    }
    return h.startMosquitto();
  });
});
