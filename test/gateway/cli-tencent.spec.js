'use strict';
const assert = require('assert');
const crypto = require('crypto');
const path = require('path');
const { spawn, spawnSync } = require('child_process');
const h = require('./helpers');

// bin/ota-gateway.js --product: Tencent devices registered under their device name alone, found
// from the SDK's client id {product}{device}, signing with the device secret the admin API took.

const BIN = path.join(__dirname, '../../bin/ota-gateway.js');
const SECRET = crypto.randomBytes(16).toString('base64');

function sdkLogin(product, name, secret) {
  const clientId = `${product}${name}`;
  const username = `${clientId};21010406;Xy7z1;9223372036854775807`;
  const sign = crypto.createHmac('sha1', Buffer.from(secret, 'base64')).update(username).digest('hex');
  return { clientId, username, password: `${sign};hmacsha1` };
}

describe('ota-gateway command line: --product for Tencent devices', function () {
  this.timeout(20000);
  let broker, store, child, exited, url;
  const clients = [];
  const env = { ...process.env, OTA_SECRET: 'x'.repeat(40) };

  before(async function () {
    broker = await h.startAedes();
    store = h.makeRepository();
    await store.repo.devices.register({ id: 'dev9', dialect: 'tencent', deviceSecret: SECRET });
    await store.repo.flush();
    child = spawn(process.execPath, [BIN, '--dir', store.dir, '--listen', '127.0.0.1:0', '--upstream', broker.url, '--product', 'P7'], { stdio: ['ignore', 'pipe', 'pipe'], env });
    exited = new Promise((resolve) => child.once('exit', (code) => resolve(code)));
    let out = '';
    child.stderr.on('data', (d) => (out += d));
    url = await new Promise((resolve, reject) => {
      child.stdout.on('data', (d) => {
        out += d;
        const m = /devices connect to [\d.]+:(\d+)/.exec(out);
        if (m) resolve(`mqtt://127.0.0.1:${m[1]}`);
      });
      child.once('exit', () => reject(new Error(`ota-gateway exited: ${out}`)));
    });
  });

  after(async function () {
    await h.endAll(clients);
    if (child && child.exitCode === null) {
      child.kill('SIGTERM');
      await exited;
    }
    if (broker) await broker.close();
    if (store) await store.close();
  });

  it('lets the SDK login of a device registered without a product in, with its $ota topics under that product', async function () {
    const device = await h.connect(url, sdkLogin('P7', 'dev9', SECRET));
    clients.push(device);
    assert.deepStrictEqual((await device.subscribeAsync('$ota/update/P7/dev9', { qos: 1 })).map((g) => g.qos), [1]);
    // Another product's client id is nobody's: refused (credentials given, so 4).
    await assert.rejects(h.connect(url, sdkLogin('P8', 'dev9', SECRET)), (err) => err.code === 4);
  });

  it('refuses a product that could not be a topic level', function () {
    const r = spawnSync(process.execPath, [BIN, '--dir', store.dir, '--product', 'a/#'], { env, encoding: 'utf8' });
    assert.strictEqual(r.status, 2);
    assert.match(r.stderr, /--product must be/);
  });
});
