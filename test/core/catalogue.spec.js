'use strict';
const assert = require('assert');
const fs = require('fs');
const path = require('path');
const { OtaRepository } = require('../../dist/core/repository');
const { readEspAppDescription } = require('../../dist/core/firmware/esp-app-desc');
const { imageOf, espImage, sha256, tempDir } = require('../support/images');

/** The blobs on disk, by name (their SHA-256), temp files left out. */
function blobsIn(dir) {
  const root = path.join(dir, 'blobs');
  if (!fs.existsSync(root)) return [];
  return fs.readdirSync(root).flatMap((sub) => fs.readdirSync(path.join(root, sub))).filter((f) => !f.startsWith('.')).sort();
}

async function rejectsWith(promise, code) {
  await assert.rejects(promise, (err) => {
    assert.strictEqual(err.code, code, `expected ${code}, got ${err.code}: ${err.message}`);
    return true;
  });
}

describe('firmware catalogue', () => {
  let dir;
  let repo;
  beforeEach(() => {
    dir = tempDir();
    repo = new OtaRepository({ dir, maxImageBytes: 64 * 1024 });
  });
  afterEach(async () => {
    await repo.flush();
    fs.rmSync(dir, { recursive: true, force: true });
  });

  it('stores an image and returns a record with its size and checksums', async () => {
    const image = imageOf(10000);
    const { record, created } = await repo.firmware.store({ image, title: 'blink', version: '1.0.0' });
    assert.strictEqual(created, true);
    assert.strictEqual(record.title, 'blink');
    assert.strictEqual(record.version, '1.0.0');
    assert.strictEqual(record.size, 10000);
    assert.strictEqual(record.checksums.sha256, sha256(image));
    assert.match(record.id, /^[0-9a-f]{16}$/);
    assert.deepStrictEqual(await repo.firmware.read(record), image);
  });

  it('treats the same title, version and bytes as an idempotent repeat', async () => {
    const image = imageOf(500);
    const first = await repo.firmware.store({ image, title: 'blink', version: '1.0.0' });
    const again = await repo.firmware.store({ image: Buffer.from(image), title: 'blink', version: '1.0.0' });
    assert.strictEqual(again.created, false);
    assert.deepStrictEqual(again.record, first.record);
    assert.strictEqual(repo.firmware.list().length, 1);
  });

  it('refuses the same title and version with different bytes, keeping the original', async () => {
    const { record } = await repo.firmware.store({ image: imageOf(500, 1), title: 'blink', version: '1.0.0' });
    await rejectsWith(repo.firmware.store({ image: imageOf(500, 2), title: 'blink', version: '1.0.0' }), 'version_conflict');
    assert.deepStrictEqual(await repo.firmware.read(repo.firmware.get(record.id)), imageOf(500, 1));
  });

  it('refuses versions that are not semantic versions, and normalises a leading v', async () => {
    for (const version of ['1.0', 'latest', '1.0.0.0', '01.2.3', '1.2.3-', '../1.0.0']) {
      await rejectsWith(repo.firmware.store({ image: imageOf(10), title: 't', version }), 'bad_version');
    }
    const { record } = await repo.firmware.store({ image: imageOf(10), title: 't', version: 'v2.0.1-rc.1' });
    assert.strictEqual(record.version, '2.0.1-rc.1');
  });

  it('refuses empty images and images over the size limit', async () => {
    await rejectsWith(repo.firmware.store({ image: Buffer.alloc(0), title: 't', version: '1.0.0' }), 'empty_image');
    await rejectsWith(repo.firmware.store({ image: imageOf(64 * 1024 + 1), title: 't', version: '1.0.0' }), 'image_too_large');
    await rejectsWith(repo.firmware.store({ image: 'not a buffer', title: 't', version: '1.0.0' }), 'bad_image');
    const { record } = await repo.firmware.store({ image: imageOf(64 * 1024), title: 't', version: '1.0.0' });
    assert.strictEqual(record.size, 65536);
    assert.strictEqual(repo.firmware.list().length, 1);
  });

  it('reads title and version from an ESP-IDF application image', async () => {
    const image = espImage({ projectName: 'hello_world', version: '3.1.4' });
    const desc = readEspAppDescription(image);
    assert.strictEqual(desc.projectName, 'hello_world');
    assert.strictEqual(desc.version, '3.1.4');
    assert.strictEqual(desc.idfVersion, 'v5.3.1');
    const { record } = await repo.firmware.store({ image });
    assert.strictEqual(record.title, 'hello_world');
    assert.strictEqual(record.version, '3.1.4');
    assert.strictEqual(record.source, 'esp-app-desc');
  });

  it('does not mistake other images for ESP-IDF ones, and asks for what is missing', async () => {
    const notEsp = espImage();
    notEsp.writeUInt32LE(0x12345678, 0x20);
    assert.strictEqual(readEspAppDescription(notEsp), null);
    assert.strictEqual(readEspAppDescription(Buffer.from([0xe9, 1, 2])), null);
    await rejectsWith(repo.firmware.store({ image: notEsp }), 'missing_title');
    await rejectsWith(repo.firmware.store({ image: notEsp, title: 'x' }), 'missing_version');
    // An ESP-IDF version string that is not semver ("v1.0-dirty") is refused with a clear error.
    await rejectsWith(repo.firmware.store({ image: espImage({ version: 'v1.0-dirty' }) }), 'bad_version');
  });

  it('never uses titles as paths: path tricks are stored as plain text', async () => {
    const title = '../../../../tmp/evil\\..\\x';
    const { record } = await repo.firmware.store({ image: imageOf(64), title, version: '1.0.0' });
    assert.strictEqual(record.title, title);
    const files = [];
    const walk = (d) => fs.readdirSync(d, { withFileTypes: true }).forEach((e) => (e.isDirectory() ? walk(path.join(d, e.name)) : files.push(path.join(d, e.name))));
    walk(dir);
    for (const f of files) assert.ok(!f.includes('evil'), `no file named after the title: ${f}`);
    await rejectsWith(repo.firmware.store({ image: imageOf(64), title: 'a\u0000b', version: '1.0.0' }), 'bad_field');
  });

  it('keeps records and images across a restart', async () => {
    const image = imageOf(3000);
    const { record } = await repo.firmware.store({ image, title: 'blink', version: '1.0.0' });
    await repo.flush();
    const reopened = new OtaRepository({ dir });
    assert.deepStrictEqual(reopened.firmware.get(record.id), record);
    assert.deepStrictEqual(await reopened.firmware.read(record), image);
    assert.strictEqual((fs.statSync(path.join(dir, 'secret.key')).mode & 0o777), 0o600);
    assert.deepStrictEqual(reopened.secret, repo.secret, 'the generated signing secret survives a restart');
  });

  it('leaves no temp files behind and writes the catalogue as valid JSON', async () => {
    for (let i = 0; i < 20; i++) repo.firmware.store({ image: imageOf(100, i), title: 'burst', version: `1.0.${i}` });
    await new Promise((r) => setTimeout(r, 50));
    await repo.flush();
    const names = fs.readdirSync(dir);
    assert.deepStrictEqual(names.filter((n) => n.endsWith('.tmp')), []);
    assert.strictEqual(JSON.parse(fs.readFileSync(path.join(dir, 'catalogue.json'), 'utf8')).length, 20);
  });

  it('refuses to delete firmware that is assigned, and deletes it once unassigned', async () => {
    const { record } = await repo.firmware.store({ image: imageOf(100), title: 'blink', version: '1.0.0' });
    repo.rollout.assign('dev-1', 'tencent', record);
    await rejectsWith(repo.deleteFirmware(record.id), 'firmware_assigned');
    repo.rollout.unassign('dev-1');
    await repo.deleteFirmware(record.id);
    assert.strictEqual(repo.firmware.get(record.id), undefined);
    assert.strictEqual(repo.blobs.has(record.checksums.sha256), false);
    await rejectsWith(repo.deleteFirmware(record.id), 'unknown_firmware');
  });
  it('checks names read from an ESP-IDF image exactly like names typed in: control characters refused', async () => {
    for (const [projectName, version, field] of [['evil\nname', '1.0.0', 'title'], ['\u001b[31mred', '1.0.0', 'title'], ['ok', '1.0.0\u0007-beep', 'version'], ['a\u2028b', '1.0.0', 'title']]) {
      const image = espImage({ projectName, version });
      await assert.rejects(repo.firmware.store({ image }), (err) => {
        assert.strictEqual(err.code, 'bad_field', err.message);
        assert.strictEqual(err.field, field);
        assert.match(err.message, /ESP-IDF .*control characters/);
        return true;
      }, JSON.stringify(projectName));
      // The same name typed in gets the same answer.
      await rejectsWith(repo.firmware.store({ image: imageOf(64), title: projectName, version }), 'bad_field');
    }
    assert.deepStrictEqual(repo.firmware.list(), []);
    assert.ok(!fs.existsSync(path.join(dir, 'blobs')) || blobsIn(dir).length === 0, 'no blob written');
  });

  describe('one writer per record', () => {
    it('gives one of two concurrent stores of a version with different bytes a conflict, and leaves no orphan blob (10 rounds)', async () => {
      for (let round = 0; round < 10; round++) {
        const a = imageOf(20_000, `a${round}`);
        const b = imageOf(20_000, `b${round}`);
        const results = await Promise.allSettled([a, b].map((image) => repo.firmware.store({ image, title: 'race', version: `1.0.${round}` })));
        const won = results.filter((r) => r.status === 'fulfilled');
        const lost = results.filter((r) => r.status === 'rejected');
        assert.strictEqual(won.length, 1, `round ${round}: ${results.map((r) => r.status).join(', ')}`);
        assert.strictEqual(won[0].value.created, true);
        assert.strictEqual(lost[0].reason.code, 'version_conflict');
        const stored = repo.firmware.find('race', `1.0.${round}`);
        assert.strictEqual(stored.checksums.sha256, won[0].value.record.checksums.sha256);
      }
      const shas = repo.firmware.list().map((r) => r.checksums.sha256).sort();
      assert.deepStrictEqual(blobsIn(dir), shas, 'every blob has a record and every record its blob');
    });

    it('answers two concurrent stores of the same bytes with one created record and one idempotent repeat', async () => {
      const image = imageOf(5000, 'same');
      const [x, y] = await Promise.all([0, 1].map(() => repo.firmware.store({ image, title: 'twin', version: '2.0.0' })));
      assert.deepStrictEqual([x.created, y.created].sort(), [false, true]);
      assert.strictEqual(x.record.id, y.record.id);
      assert.deepStrictEqual(blobsIn(dir), [sha256(image)]);
    });

    it('does not lose a blob that a store shares with a record being removed at the same time', async () => {
      const image = imageOf(4000, 'shared');
      const { record } = await repo.firmware.store({ image, title: 'old', version: '1.0.0' });
      await Promise.all([repo.firmware.remove(record.id), repo.firmware.store({ image, title: 'new', version: '1.0.0' })]);
      const kept = repo.firmware.find('new', '1.0.0');
      assert.ok((await repo.firmware.read(kept)).equals(image));
      assert.deepStrictEqual(blobsIn(dir), [sha256(image)]);
    });
  });
});
