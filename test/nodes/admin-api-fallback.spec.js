'use strict';
const assert = require('assert');
const fs = require('fs');
const { helper, nodes } = require('../support/red');
const { tempDir } = require('../support/images');

// Before a flow with a repository is deployed, and for paths the API does not have, the admin
// API answered with Express's HTML "Cannot GET" page: a script calling it read HTML, and a person
// was not told what was missing.

describe('admin HTTP API where it has no route', function () {
  let dir;
  const api = () => helper.request();
  beforeEach(() => { dir = tempDir(); });
  afterEach(async () => {
    await helper.unload();
    fs.rmSync(dir, { recursive: true, force: true });
  });

  function assertJson(res, status, code) {
    assert.strictEqual(res.status, status, `${res.status} ${res.text}`);
    assert.match(res.headers['content-type'], /^application\/json/, res.text);
    assert.strictEqual(res.body.code, code, JSON.stringify(res.body));
    assert.strictEqual(typeof res.body.error, 'string');
  }

  it('says no repository is deployed, and how to deploy one, with a JSON 503', async () => {
    await helper.load([nodes.repository], []);
    for (const [method, url] of [['get', '/ota/rollout'], ['get', '/ota/devices'], ['post', '/ota/firmware'], ['get', '/ota/nothing-here']]) {
      const res = await api()[method](url);
      assertJson(res, 503, 'no_repository');
      assert.match(res.body.error, /no OTA repository is deployed: add an ota-repository config node/);
    }
  });

  it('answers a JSON 404 naming the method and path for what the API does not have', async () => {
    await helper.load([nodes.repository], [{ id: 'repo', type: 'ota-repository', storageDir: dir }]);
    assert.strictEqual((await api().get('/ota/rollout')).status, 200);
    const unknown = await api().get('/ota/firmwares');
    assertJson(unknown, 404, 'not_found');
    assert.strictEqual(unknown.body.error, 'the OTA admin API has no GET /ota/firmwares');
    assertJson(await api().put('/ota/rollout'), 404, 'not_found');
    assertJson(await api().get('/ota'), 404, 'not_found');
    // Routes of the editor outside /ota are not ours.
    assert.doesNotMatch((await api().get('/not-ota')).headers['content-type'] ?? '', /json/);
  });

  it('says so again once the last repository is undeployed', async () => {
    await helper.load([nodes.repository], [{ id: 'repo', type: 'ota-repository', storageDir: dir }]);
    assert.strictEqual((await api().get('/ota/devices')).status, 200);
    await helper.unload();
    await helper.load([nodes.repository], []);
    assertJson(await api().get('/ota/devices'), 503, 'no_repository');
  });
});
