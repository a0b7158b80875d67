'use strict';
const assert = require('assert');
const crypto = require('crypto');
const { spawnSync } = require('child_process');
const h = require('./helpers');
const { gatewayRig } = require('./brokers');

// bin/ota-gateway.js --product: Tencent devices registered under their device name alone, found
// from the SDK's client id {product}{device}, signing with the device secret the admin API took.

const SECRET = crypto.randomBytes(16).toString('base64');

function sdkLogin(product, name, secret) {
  const clientId = `${product}${name}`;
  const username = `${clientId};21010406;Xy7z1;9223372036854775807`;
  const sign = crypto.createHmac('sha1', Buffer.from(secret, 'base64')).update(username).digest('hex');
  return { clientId, username, password: `${sign};hmacsha1` };
}

describe('ota-gateway command line: --product for Tencent devices', function () {
  this.timeout(20000);
  const env = { ...process.env, OTA_SECRET: 'x'.repeat(40) };
  const rig = gatewayRig(() => h.startAedes(), {
    devices: [{ id: 'dev9', dialect: 'tencent', deviceSecret: SECRET }],
    server: false,
    cli: ['--product', 'P7'],
    env,
  });

  it('lets the SDK login of a device registered without a product in, with its $ota topics under that product', async function () {
    const device = await h.connect(rig.gateway.url, sdkLogin('P7', 'dev9', SECRET));
    rig.clients.push(device);
    assert.deepStrictEqual((await device.subscribeAsync('$ota/update/P7/dev9', { qos: 1 })).map((g) => g.qos), [1]);
    // Another product's client id is nobody's: refused (credentials given, so 4).
    await assert.rejects(h.connect(rig.gateway.url, sdkLogin('P8', 'dev9', SECRET)), (err) => err.code === 4);
  });

  it('refuses a product that could not be a topic level', function () {
    const r = spawnSync(process.execPath, [h.GATEWAY_BIN, '--dir', rig.store.dir, '--product', 'a/#'], { env, encoding: 'utf8' });
    assert.strictEqual(r.status, 2);
    assert.match(r.stderr, /--product must be/);
  });
});
