'use strict';
const assert = require('assert');
const fs = require('fs');
const http = require('http');
const { helper, nodes, captured, captureHttpNode } = require('../support/red');
const { imageOf, espImage, sha256, tempDir } = require('../support/images');

function flow(dir, extra = {}) {
  return [
    { id: 'f1', type: 'tab' },
    { id: 'repo', type: 'ota-repository', storageDir: dir, maxImageMB: 1 },
    { id: 'store', z: 'f1', type: 'firmware-store', repository: 'repo', wires: [['out']], ...extra },
    { id: 'out', z: 'f1', type: 'helper' },
    { id: 'c1', z: 'f1', type: 'catch', scope: null, uncaught: false, wires: [['errors']] },
    { id: 'errors', z: 'f1', type: 'helper' },
  ];
}

/** Sends msg into the store; resolves with the output msg or rejects with the caught error. */
function send(msg) {
  const out = helper.getNode('out');
  const errors = helper.getNode('errors');
  return new Promise((resolve, reject) => {
    const cleanup = () => { out.removeAllListeners('input'); errors.removeAllListeners('input'); };
    out.once('input', (m) => { cleanup(); resolve(m); });
    errors.once('input', (m) => { cleanup(); reject(Object.assign(new Error(m.error.message), { msg: m })); });
    helper.getNode('store').receive(msg);
  });
}

describe('firmware-store node', function () {
  let dir;
  const allNodes = [nodes.repository, nodes.firmwareStore, nodes.catch, captureHttpNode];

  beforeEach(async () => {
    dir = tempDir();
    await helper.load(allNodes, flow(dir));
  });
  afterEach(async () => {
    await helper.unload();
    fs.rmSync(dir, { recursive: true, force: true });
  });

  it('stores an image and sends its catalogue record', async () => {
    const image = imageOf(5000);
    const msg = await send({ payload: image, firmware: { title: 'blink', version: '1.2.0', tag: 'stable' } });
    assert.strictEqual(msg.payload.title, 'blink');
    assert.strictEqual(msg.payload.version, '1.2.0');
    assert.strictEqual(msg.payload.tag, 'stable');
    assert.strictEqual(msg.payload.size, 5000);
    assert.strictEqual(msg.payload.checksums.sha256, sha256(image));
    assert.strictEqual(msg.firmware, msg.payload);
    assert.strictEqual(msg.created, true);
  });

  it('reads title and version from an ESP-IDF image when the message has none', async () => {
    const msg = await send({ payload: espImage({ projectName: 'thermo', version: '2.0.0' }) });
    assert.strictEqual(msg.payload.title, 'thermo');
    assert.strictEqual(msg.payload.version, '2.0.0');
    assert.strictEqual(msg.payload.source, 'esp-app-desc');
  });

  it('lists, gets and deletes by id or by title and version', async () => {
    const a = (await send({ payload: imageOf(10, 1), firmware: { title: 'a', version: '1.0.0' } })).payload;
    await send({ payload: imageOf(10, 2), firmware: { title: 'b', version: '1.0.0' } });
    assert.deepStrictEqual((await send({ action: 'list' })).payload.map((r) => r.title), ['a', 'b']);
    assert.strictEqual((await send({ topic: 'get', firmware: { title: 'a', version: '1.0.0' } })).payload.id, a.id);
    assert.strictEqual((await send({ action: 'get', firmware: a.id })).payload.title, 'a');
    assert.strictEqual((await send({ action: 'delete', firmware: { id: a.id } })).payload.id, a.id);
    assert.deepStrictEqual((await send({ action: 'list' })).payload.map((r) => r.title), ['b']);
  });

  it('reports bad input to a catch node and carries on with the next message', async () => {
    const cases = [
      [{ payload: imageOf(10), firmware: { title: 'x', version: 'one' } }, /not a semantic version/],
      [{ payload: Buffer.alloc(0), firmware: { title: 'x', version: '1.0.0' } }, /empty/],
      [{ payload: imageOf(1024 * 1024 + 1), firmware: { title: 'x', version: '1.0.0' } }, /over the limit/],
      [{ payload: 'hello', firmware: { title: 'x', version: '1.0.0' } }, /must be a Buffer/],
      [{ payload: imageOf(10) }, /needs a title/],
      [{ action: 'get', firmware: 'nope' }, /unknown firmware/],
      [{ action: 'explode' }, /unknown action/],
    ];
    for (const [msg, pattern] of cases) {
      await assert.rejects(send(msg), (err) => pattern.test(err.message), String(pattern));
    }
    const ok = await send({ payload: imageOf(10), firmware: { title: 'x', version: '1.0.0' } });
    assert.strictEqual(ok.payload.size, 10);
  });

  it('refuses a changed image under an existing version, and repeats an identical store', async () => {
    await send({ payload: imageOf(10, 1), firmware: { title: 'x', version: '1.0.0' } });
    assert.strictEqual((await send({ payload: imageOf(10, 1), firmware: { title: 'x', version: '1.0.0' } })).created, false);
    await assert.rejects(send({ payload: imageOf(10, 2), firmware: { title: 'x', version: '1.0.0' } }), /different bytes/);
  });

  it('takes title and version from the node when the message has none', async () => {
    await helper.unload();
    await helper.load(allNodes, flow(dir, { title: 'from-node', version: '0.9.1' }));
    const msg = await send({ payload: imageOf(10) });
    assert.strictEqual(msg.payload.title, 'from-node');
    assert.strictEqual(msg.payload.source, 'defaults');
  });

  it('serves stored images on the signed download route of RED.httpNode', async () => {
    const image = imageOf(20000, 4);
    const record = (await send({ payload: image, firmware: { title: 'blink', version: '1.0.0' } })).payload;
    const repo = helper.getNode('repo').repo;
    const server = http.createServer(captured.httpNode);
    await new Promise((r) => server.listen(0, '127.0.0.1', r));
    try {
      repo.publicUrl = `http://127.0.0.1:${server.address().port}`;
      const body = await new Promise((resolve, reject) => {
        http.get(repo.downloadUrl(record, 'dev-1'), (res) => {
          const parts = [];
          res.on('data', (c) => parts.push(c));
          res.on('end', () => resolve({ status: res.statusCode, data: Buffer.concat(parts) }));
        }).on('error', reject);
      });
      assert.strictEqual(body.status, 200);
      assert.deepStrictEqual(body.data, image);
    } finally {
      await new Promise((r) => server.close(r));
    }
  });

  it('shares one catalogue between two repository nodes on the same directory', async () => {
    await helper.unload();
    const f = flow(dir);
    f.push(
      { id: 'repo2', type: 'ota-repository', storageDir: dir, maxImageMB: 1 },
      { id: 'store2', z: 'f1', type: 'firmware-store', repository: 'repo2', wires: [['out2']] },
      { id: 'out2', z: 'f1', type: 'helper' },
    );
    await helper.load(allNodes, f);
    assert.strictEqual(helper.getNode('repo').repo, helper.getNode('repo2').repo);
    await send({ payload: imageOf(10), firmware: { title: 'a', version: '1.0.0' } });
    const listed = new Promise((resolve) => helper.getNode('out2').once('input', resolve));
    helper.getNode('store2').receive({ action: 'list' });
    assert.deepStrictEqual((await listed).payload.map((r) => r.title), ['a']);
  });

  it('shows a red status instead of crashing when no repository is selected', async () => {
    await helper.unload();
    await helper.load(allNodes, [{ id: 'f1', type: 'tab' }, { id: 'store', z: 'f1', type: 'firmware-store', wires: [] }]);
    const store = helper.getNode('store');
    assert.ok(store, 'the node is deployed');
    const errors = [];
    store.error = (e) => errors.push(String(e));
    store.receive({ payload: imageOf(10), firmware: { title: 'x', version: '1.0.0' } });
    await new Promise((r) => setTimeout(r, 20));
    assert.deepStrictEqual(errors, [], 'a node without repository ignores input quietly after its one error');
  });
});
