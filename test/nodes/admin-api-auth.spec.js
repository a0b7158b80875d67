'use strict';
const assert = require('assert');
const fs = require('fs');
const path = require('path');
const bcrypt = require('bcryptjs');
const { startNodeRed } = require('../../scripts/node-red-runtime');
const { imageOf, tempDir } = require('../support/images');

// adminAuth is enforced by the real editor API only: node-red-node-test-helper stubs
// RED.auth.needsPermission to let everything through (its runtime has no adminApi, whatever
// helper.settings() says). So this spec runs a stock Node-RED in a child process.
describe('admin HTTP API with adminAuth on (real Node-RED)', function () {
  this.timeout(60000);
  let userDir, red;

  async function token(username, password, scope) {
    const res = await fetch(`${red.url}/auth/token`, {
      method: 'POST',
      headers: { 'Content-Type': 'application/json' },
      body: JSON.stringify({ client_id: 'node-red-admin', grant_type: 'password', scope, username, password }),
    });
    assert.strictEqual(res.status, 200, 'logs in');
    return (await res.json()).access_token;
  }
  const call = (method, url, bearer, body, type = 'application/json') =>
    fetch(`${red.url}${url}`, {
      method,
      headers: { ...(bearer ? { Authorization: `Bearer ${bearer}` } : {}), ...(body !== undefined ? { 'Content-Type': type } : {}) },
      ...(body !== undefined ? { body: type === 'application/json' ? JSON.stringify(body) : body } : {}),
    });

  before(async () => {
    userDir = tempDir();
    const hash = (pw) => bcrypt.hashSync(pw, 8);
    red = await startNodeRed({
      userDir,
      flows: [{ id: 'repo', type: 'ota-repository', storageDir: path.join(userDir, 'ota'), maxImageMB: 1 }],
      settings: {
        adminAuth: {
          type: 'credentials',
          users: [
            { username: 'admin', password: hash('admin-secret'), permissions: '*' },
            { username: 'viewer', password: hash('viewer-secret'), permissions: 'read' },
            { username: 'ota-operator', password: hash('op-secret'), permissions: ['ota.read', 'ota.write'] },
          ],
        },
      },
    });
  });
  after(async () => {
    if (red) await red.stop();
    fs.rmSync(userDir, { recursive: true, force: true });
  });

  it('refuses every route without a token', async () => {
    for (const [method, url] of [['GET', '/ota/firmware'], ['GET', '/ota/devices'], ['POST', '/ota/devices'], ['POST', '/ota/assignments'], ['GET', '/ota/rollout'],
      ['GET', '/ota/rollouts'], ['POST', '/ota/rollouts'], ['GET', '/ota/rollouts/r1'], ['POST', '/ota/rollouts/r1/start'], ['DELETE', '/ota/rollouts/r1']]) {
      const res = await call(method, url, null, method === 'POST' ? {} : undefined);
      assert.strictEqual(res.status, 401, `${method} ${url}`);
    }
  });

  it('lets a read-only user read but not write', async () => {
    const viewer = await token('viewer', 'viewer-secret', 'read');
    assert.strictEqual((await call('GET', '/ota/firmware', viewer)).status, 200);
    assert.strictEqual((await call('GET', '/ota/devices', viewer)).status, 200);
    assert.strictEqual((await call('POST', '/ota/devices', viewer, { id: 'd1', dialect: 'tencent' })).status, 401);
    assert.strictEqual((await call('GET', '/ota/rollouts', viewer)).status, 200);
    assert.strictEqual((await call('POST', '/ota/rollouts', viewer, {})).status, 401);
    assert.strictEqual((await call('POST', '/ota/rollouts/r1/abort', viewer, {})).status, 401);
    assert.strictEqual((await call('POST', '/ota/firmware?title=x&version=1.0.0', viewer, imageOf(100), 'application/octet-stream')).status, 401);
    const list = await (await call('GET', '/ota/devices', viewer)).json();
    assert.deepStrictEqual(list, []);
  });

  it('lets a user with ota.write (or *) register, upload and assign', async () => {
    const op = await token('ota-operator', 'op-secret', '') // '' = the user's own permissions;
    const dev = await call('POST', '/ota/devices', op, { id: 'd1', dialect: 'tencent', attributes: { product: 'P1' } });
    assert.strictEqual(dev.status, 201);
    const admin = await token('admin', 'admin-secret', '*');
    const fw = await call('POST', '/ota/firmware?title=blink&version=1.0.0', admin, imageOf(20_000), 'application/octet-stream');
    assert.strictEqual(fw.status, 201);
    const record = await fw.json();
    const bad = await call('POST', '/ota/assignments', op, { firmware: record.id, devices: ['ghost'] });
    assert.strictEqual(bad.status, 400);
    assert.strictEqual((await bad.json()).field, 'devices');
    const ok = await call('POST', '/ota/assignments', op, { firmware: record.id, devices: ['d1'] });
    assert.strictEqual(ok.status, 200);
    const body = await ok.json();
    // No ota-assign node in this flow: assigned, and the answer says nothing was sent.
    assert.strictEqual(body.published, false);
    assert.strictEqual(body.devices[0].state, 'assigned');
  });
  it('answers malformed JSON and a wrong content type with the API\'s JSON errors, not Node-RED\'s HTML page', async () => {
    const admin = await token('admin', 'admin-secret', '*');
    const malformed = await call('POST', '/ota/devices', admin, '{"id":"d9",', 'application/json; charset=utf-8');
    assert.strictEqual(malformed.status, 400);
    assert.match(malformed.headers.get('content-type'), /^application\/json/);
    const body = await malformed.json();
    assert.deepStrictEqual([body.code, body.field], ['bad_json', 'body']);
    assert.match(body.error, /^the body is not valid JSON/);
    const form = await call('POST', '/ota/assignments', admin, 'firmware=x&devices=d1', 'application/x-www-form-urlencoded');
    assert.strictEqual(form.status, 415);
    assert.strictEqual((await form.json()).code, 'unsupported_media_type');
  });
});
