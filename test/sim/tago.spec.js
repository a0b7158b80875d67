'use strict';
const assert = require('assert');
const { startFleet } = require('../../dist/sim');
const { startBroker, serverClient, makeImage, sha256, until } = require('./helpers');

// A fake TagoIO analysis written from seed 002: sends a manifest, answers each firmware_request
// with a firmware_block (base64 in metadata.data), all on tago/data/post.
async function fakeTago(url, image, { version = '2.0.0', chunkSize = 4096, withSha = false } = {}) {
  const srv = await serverClient(url, ['tago/data/post']);
  const seen = [];
  const totalChunks = Math.ceil(image.length / chunkSize);
  const manifest = () => srv.publish('tago/data/post', JSON.stringify({
    variable: 'firmware_manifest', value: 'pending',
    metadata: { total_size: image.length, total_chunks: totalChunks, chunk_size: chunkSize, version, ...(withSha ? { sha256: sha256(image) } : {}) },
  }));
  srv.on('message', (_topic, payload) => {
    const d = JSON.parse(payload.toString());
    seen.push(d);
    if (d.variable === 'firmware_request') {
      const i = Number(d.value);
      srv.publish('tago/data/post', JSON.stringify({ variable: 'firmware_block', value: i, metadata: { data: image.subarray(i * chunkSize, (i + 1) * chunkSize).toString('base64') } }));
    }
    // A device reporting an older version after a failure gets the manifest again.
    if (d.variable === 'firmware_version' && d.value !== version && seen.some((x) => x.variable === 'firmware_status')) manifest();
  });
  const count = (pred) => seen.filter(pred).length;
  return { srv, seen, manifest, count, until: (pred) => until(srv, 'message', pred) };
}

describe('sim: TagoIO devices', function () {
  let broker;
  let fleet;
  let server;
  const image = makeImage(4096 * 5 + 77, 11);

  before(async () => { broker = await startBroker(); });
  afterEach(async () => {
    if (fleet) await fleet.stop();
    if (server) await server.srv.endAsync();
    fleet = undefined;
    server = undefined;
  });
  after(async () => { await broker.close(); });

  it('connects as Token/<token>, requests every chunk in order and reports the new version', async () => {
    server = await fakeTago(broker.url, image);
    let auth;
    const original = broker.broker.authenticate;
    broker.broker.authenticate = (client, username, password, done) => { auth = { username, password: password && password.toString() }; done(null, true); };
    fleet = await startFleet({ broker: broker.url, dialect: 'tago', tokenPattern: 'secret-{n}' });
    broker.broker.authenticate = original;
    assert.deepStrictEqual(auth, { username: 'Token', password: 'secret-1' });
    await server.until(() => server.count((d) => d.variable === 'firmware_version') >= 1);
    server.manifest();
    await fleet.waitAllUpdated(15_000, '2.0.0');
    await server.until(() => server.seen.some((d) => d.variable === 'firmware_version' && d.value === '2.0.0'));
    assert.strictEqual(fleet.devices[0].sha256, sha256(image));
    const requests = server.seen.filter((d) => d.variable === 'firmware_request');
    assert.deepStrictEqual(requests.map((r) => r.value), [0, 1, 2, 3, 4, 5]);
    assert.deepStrictEqual(requests[0], { variable: 'firmware_request', value: 0, unit: 'index' });
  });

  it('reports a failure on a corrupted block, gets the manifest again and succeeds', async () => {
    server = await fakeTago(broker.url, image, { withSha: true });
    fleet = await startFleet({ broker: broker.url, dialect: 'tago', faults: { corruptChunk: 2 }, retryDelayMs: 20 });
    server.manifest();
    await fleet.waitAllUpdated(15_000, '2.0.0');
    const d = fleet.devices[0];
    assert.strictEqual(d.sha256, sha256(image));
    assert.strictEqual(d.attempts, 2);
    const failure = server.seen.find((x) => x.variable === 'firmware_status');
    assert.strictEqual(failure.value, 'failed');
    assert.match(failure.metadata.error, /size mismatch/);
    assert.deepStrictEqual(d.history.map((h) => h.state).filter((s) => s !== 'idle'), [
      'notified', 'downloading', 'downloaded', 'failed', 'notified', 'downloading', 'downloaded', 'verified', 'updating', 'updated',
    ]);
  });

  it('resumes after a dropped connection without starting over', async () => {
    server = await fakeTago(broker.url, image);
    fleet = await startFleet({ broker: broker.url, dialect: 'tago', faults: { dropAt: 0.4 }, reconnectMs: 50 });
    server.manifest();
    await fleet.waitAllUpdated(15_000, '2.0.0');
    assert.strictEqual(fleet.devices[0].sha256, sha256(image));
    assert.strictEqual(fleet.devices[0].connects, 2);
    const values = server.seen.filter((x) => x.variable === 'firmware_request').map((x) => x.value);
    assert.deepStrictEqual([...new Set(values)], [0, 1, 2, 3, 4, 5]);
    assert.strictEqual(values.filter((v) => v === 0).length, 1, JSON.stringify(values) + JSON.stringify(fleet.devices[0].history));
  });
});
