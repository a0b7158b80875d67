'use strict';
const assert = require('assert');
const fs = require('fs');
const path = require('path');
const { JsonDocument, writeFileAtomic } = require('../../dist/core/atomic-file');
const { tempDir } = require('../support/images');

describe('atomic JSON documents', () => {
  let dir;
  beforeEach(() => { dir = tempDir(); });
  afterEach(() => fs.rmSync(dir, { recursive: true, force: true }));

  const read = (file) => JSON.parse(fs.readFileSync(file, 'utf8'));

  it('coalesces a burst of changes into few writes, always ending with the newest state', async () => {
    const file = path.join(dir, 'state.json');
    let state = 0;
    let writes = 0;
    const doc = new JsonDocument(file, () => { writes++; return { state }; });
    const saves = [];
    for (let i = 1; i <= 1000; i++) { state = i; saves.push(doc.save()); }
    await Promise.all(saves);
    assert.deepStrictEqual(read(file), { state: 1000 });
    assert.ok(writes <= 2, `1000 changes written ${writes} times`);
  });

  it('spaces writes by the minimum interval, and flush writes at once', async () => {
    const file = path.join(dir, 'state.json');
    let state = 'first';
    const doc = new JsonDocument(file, () => ({ state }), 0o644, 60000);
    await doc.save();
    assert.deepStrictEqual(read(file), { state: 'first' });
    state = 'second';
    void doc.save();
    await new Promise((r) => setTimeout(r, 30));
    assert.deepStrictEqual(read(file), { state: 'first' }, 'the second write waits for the interval');
    await doc.flush();
    assert.deepStrictEqual(read(file), { state: 'second' });
  });

  it('replaces a file whole: a reader sees the old or the new content, never a mix', async () => {
    const file = path.join(dir, 'image.bin');
    await writeFileAtomic(file, Buffer.alloc(1 << 20, 1));
    const write = writeFileAtomic(file, Buffer.alloc(1 << 20, 2));
    const seen = new Set();
    while (seen.size < 2) {
      const data = fs.readFileSync(file);
      seen.add(data[0]);
      assert.ok(data.every((b) => b === data[0]), 'uniform content');
      if (data[0] === 2) break;
      await new Promise((r) => setImmediate(r));
    }
    await write;
    assert.deepStrictEqual(fs.readdirSync(dir), ['image.bin']);
  });
});
