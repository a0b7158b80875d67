'use strict';
const assert = require('assert');
const fs = require('fs');
const { helper, nodes } = require('../support/red');
const { imageOf, tempDir } = require('../support/images');

// Every answer of the admin API is JSON in one shape, {error, code, field?}: also when Node-RED's
// own body parser refuses the request before any route runs (it answered with Express's HTML
// page), for a body of the wrong type, and for a field the API does not have (a top-level
// `product` in POST /ota/devices was dropped without a word; it belongs in `attributes`).

describe('admin HTTP API errors', function () {
  let dir, repo;
  const api = () => helper.request();

  beforeEach(async () => {
    dir = tempDir();
    await helper.load([nodes.repository], [{ id: 'repo', type: 'ota-repository', storageDir: dir, maxImageMB: 1 }]);
    repo = helper.getNode('repo').repo;
  });
  afterEach(async () => {
    await helper.unload();
    fs.rmSync(dir, { recursive: true, force: true });
  });

  function assertJsonError(res, status, code, field) {
    assert.strictEqual(res.status, status, `${res.status} ${res.text}`);
    assert.match(res.headers['content-type'], /^application\/json/, res.text);
    assert.strictEqual(typeof res.body.error, 'string');
    assert.strictEqual(res.body.code, code, JSON.stringify(res.body));
    if (field !== undefined) assert.strictEqual(res.body.field, field);
  }

  it('answers malformed JSON on every JSON route with a JSON 400, never quoting the body', async () => {
    const secret = 'TOKEN-THAT-MUST-NOT-COME-BACK';
    for (const [method, url] of [['post', '/ota/devices'], ['post', '/ota/assignments'], ['delete', '/ota/assignments'], ['post', '/ota/firmware'], ['get', '/ota/rollout'], ['delete', '/ota/devices/x']]) {
      const res = await api()[method](url).set('Content-Type', 'application/json').send(`{"id":"d1","token":"${secret}",`);
      assertJsonError(res, 400, 'bad_json', 'body');
      assert.ok(!res.text.includes(secret), res.text);
    }
    const top = await api().post('/ota/devices').set('Content-Type', 'application/json').send('"just a string"');
    assertJsonError(top, 400, 'bad_json', 'body');
    assert.deepStrictEqual(repo.devices.list(), []);
  });

  it('answers a JSON body over the admin limit with a JSON 413', async () => {
    const res = await api().post('/ota/devices').set('Content-Type', 'application/json').send(JSON.stringify({ id: 'd1', dialect: 'tencent', tags: ['x'.repeat(6 * 1024 * 1024)] }));
    assertJsonError(res, 413, 'body_too_large', 'body');
  });

  it('answers an image over the repository limit with a JSON 413 too', async () => {
    const res = await api().post('/ota/firmware?title=big&version=1.0.0').set('Content-Type', 'application/octet-stream').send(imageOf(1024 * 1024 + 1));
    assertJsonError(res, 413, 'image_too_large', 'body');
  });

  it('answers a body of the wrong type with a JSON 415 (form, text, JSON to the upload route)', async () => {
    assertJsonError(await api().post('/ota/devices').type('form').send({ id: 'd1', dialect: 'tencent' }), 415, 'unsupported_media_type', 'body');
    assertJsonError(await api().post('/ota/assignments').set('Content-Type', 'text/plain').send('{"firmware":"x","devices":["a"]}'), 415, 'unsupported_media_type', 'body');
    assertJsonError(await api().delete('/ota/assignments').type('form').send({ devices: 'a' }), 415, 'unsupported_media_type', 'body');
    assertJsonError(await api().post('/ota/firmware?title=blink&version=1.0.0').send({ image: 'AAAA' }), 415, 'unsupported_media_type', 'body');
    assertJsonError(await api().post('/ota/devices').set('Content-Type', 'application/json; charset=latin-9').send('{}'), 415, 'unsupported_media_type', 'body');
    assert.deepStrictEqual(repo.devices.list(), []);
    // Node-RED's parser reads application/json only: a +json body would arrive empty.
    assertJsonError(await api().post('/ota/devices').set('Content-Type', 'application/merge-patch+json').send(JSON.stringify({ id: 'd2', dialect: 'tencent' })), 415, 'unsupported_media_type', 'body');
    assert.deepStrictEqual(repo.devices.list(), []);
    await api().post('/ota/devices').set('Content-Type', 'application/json; charset=utf-8').send(JSON.stringify({ id: 'd1', dialect: 'tencent' })).expect(201);
  });

  it('names an unknown field in a device; a top-level product is said to belong in attributes', async () => {
    const res = await api().post('/ota/devices').send({ id: 'tc-1', dialect: 'tencent', product: 'P1' });
    assertJsonError(res, 400, 'unknown_field', 'product');
    assert.match(res.body.error, /"product".*attributes/);
    const typo = await api().post('/ota/devices').send({ id: 'tc-1', dialect: 'tencent', tag: 'lab' });
    assertJsonError(typo, 400, 'unknown_field', 'tag');
    assert.match(typo.body.error, /id, dialect, token, deviceSecret, attributes, tags/);
    const long = await api().post('/ota/devices').send({ id: 'tc-1', dialect: 'tencent', ['k'.repeat(500)]: 1 });
    assertJsonError(long, 400, 'unknown_field');
    assert.ok(res.body.error.length < 200 && long.text.length < 400, long.text);
    assert.deepStrictEqual(repo.devices.list(), []);
    await api().post('/ota/devices').send({ id: 'tc-1', dialect: 'tencent', attributes: { product: 'P1' } }).expect(201);
  });

  it('names an unknown field in an assignment, an unassignment and an upload form', async () => {
    const fw = (await api().post('/ota/firmware?title=blink&version=1.0.0').set('Content-Type', 'application/octet-stream').send(imageOf(100))).body;
    await api().post('/ota/devices').send({ id: 'd1', dialect: 'thingsboard' }).expect(201);
    assertJsonError(await api().post('/ota/assignments').send({ firmware: fw.id, devices: ['d1'], force: true }), 400, 'unknown_field', 'force');
    assertJsonError(await api().delete('/ota/assignments').send({ devices: ['d1'], all: true }), 400, 'unknown_field', 'all');
    assertJsonError(await api().post('/ota/firmware').field('title', 'x').field('version', '1.0.0').field('titel', 'y').attach('file', imageOf(50, 9), 'x.bin'), 400, 'unknown_field', 'titel');
    assert.deepStrictEqual(repo.rollout.list(), []);
    assert.deepStrictEqual(repo.firmware.list().map((r) => r.title), ['blink']);
  });
});
