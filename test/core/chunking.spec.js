'use strict';
const assert = require('assert');
const { ImageCache, RequestState, chunkOf, chunkCount, percentAfter, deliveryFor } = require('../../dist/core/chunking');
const { computeChecksums } = require('../../dist/core/firmware/checksums');

const record = (bytes, id = 'fw') => ({ id, title: id, version: '1.0.0', tag: id, size: bytes.length, checksums: computeChecksums(bytes), source: 'msg', createdAt: '' });

describe('chunking', function () {
  const image = Buffer.from([...Array(10).keys()]);

  it('slices [size*n, size*n+size) without copying, short at the end, empty past it', function () {
    assert.deepStrictEqual([...chunkOf(image, 1, 4)], [4, 5, 6, 7]);
    assert.deepStrictEqual([...chunkOf(image, 2, 4)], [8, 9]);
    assert.strictEqual(chunkOf(image, 3, 4).length, 0);
    assert.strictEqual(chunkOf(image, Number.MAX_SAFE_INTEGER, 65536).length, 0);
    assert.strictEqual(chunkOf(image, 0, 4).buffer, image.buffer);
    assert.deepStrictEqual([chunkCount(10, 4), chunkCount(1, 4096), percentAfter(10, 0, 4), percentAfter(10, 2, 4)], [3, 1, 40, 100]);
  });

  it('loads an image once however many devices ask at the same time', async function () {
    let loads = 0;
    const cache = new ImageCache(async () => { loads += 1; return Buffer.from(image); });
    const r = record(image);
    const got = await Promise.all([cache.get(r), cache.get(r), cache.get(r)]);
    assert.strictEqual(loads, 1);
    assert.ok(got.every((b) => b === got[0]), 'one copy');
    assert.strictEqual(cache.peek(r), got[0]);
  });

  it('stays within its byte bound, evicting the least recently used image', async function () {
    const imgs = ['a', 'b', 'c'].map((s) => Buffer.alloc(100, s));
    const cache = new ImageCache(async (rec) => imgs[['a', 'b', 'c'].indexOf(rec.id)], 250);
    const [ra, rb, rc] = imgs.map((b, i) => record(b, ['a', 'b', 'c'][i]));
    await cache.get(ra);
    await cache.get(rb);
    cache.peek(ra); // a is now the most recently used
    await cache.get(rc);
    assert.strictEqual(cache.size, 200);
    assert.ok(cache.peek(ra) && cache.peek(rc));
    assert.strictEqual(cache.peek(rb), undefined);
  });

  it('refuses a stored image whose bytes do not match the record', async function () {
    const cache = new ImageCache(async () => Buffer.from('tampered!!'));
    await assert.rejects(cache.get(record(image)), /does not match its SHA-256/);
    const failing = new ImageCache(async () => { throw new Error('ENOENT'); });
    await assert.rejects(failing.get(record(image)), /cannot read the image of fw 1\.0\.0: ENOENT/);
  });

  it('keeps one request session per device, bounded, a new requestId replacing the old', function () {
    const state = new RequestState(3);
    for (let i = 0; i < 1000; i++) state.start('noisy', String(i), 'fw');
    assert.strictEqual(state.count, 1);
    assert.strictEqual(state.get('noisy', '998'), undefined);
    assert.strictEqual(state.get('noisy', '999').firmwareId, 'fw');
    for (let i = 0; i < 10; i++) state.start(`d${i}`, '1', 'fw');
    assert.strictEqual(state.count, 3);
  });

  it('shares one delivery state per repository', function () {
    const repo = {};
    assert.strictEqual(deliveryFor(repo, async () => image), deliveryFor(repo, async () => image));
    assert.notStrictEqual(deliveryFor({}, async () => image), deliveryFor(repo, async () => image));
  });
});
