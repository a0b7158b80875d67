'use strict';
const assert = require('assert');
const fs = require('fs');
const path = require('path');
const { spawn } = require('child_process');
const { OtaRepository } = require('../../dist/core/repository');
const { tempDir } = require('../support/images');

// The storage directory holds images and device data: its owner's alone. Before, it was 0755 and
// images 0644 (any local user could read firmware), and an upload killed mid-write left its temp
// file in blobs/ for ever.

const SECRET = 'x'.repeat(40);
const mode = (p) => fs.statSync(p).mode & 0o777;

/** Every directory and file under `dir` with its mode. */
function modes(dir) {
  const out = [[dir, mode(dir)]];
  for (const entry of fs.readdirSync(dir, { withFileTypes: true })) {
    const full = path.join(dir, entry.name);
    if (entry.isDirectory()) out.push(...modes(full));
    else out.push([full, mode(full)]);
  }
  return out;
}

function assertPrivate(dir) {
  const all = modes(dir);
  assert.ok(all.length > 4, 'something was written');
  for (const [p, m] of all) {
    const expected = fs.statSync(p).isDirectory() ? 0o700 : 0o600;
    assert.strictEqual(m.toString(8), expected.toString(8), p);
  }
}

/** Runs a child that starts storing an image and dies (SIGKILL) once its temp file is open. */
function killedUpload(dir) {
  const script = `
    const fsp = require('fs').promises;
    const open = fsp.open;
    fsp.open = async (...args) => {
      const handle = await open(...args);
      await handle.write(Buffer.alloc(4096, 1));
      process.kill(process.pid, 'SIGKILL');
      return handle;
    };
    const { OtaRepository } = require(${JSON.stringify(path.join(__dirname, '../../dist/core/repository'))});
    new OtaRepository({ dir: ${JSON.stringify(dir)}, secret: '${SECRET}' }).firmware.store({ image: Buffer.alloc(65536, 7), title: 'fw', version: '1.0.0' });
  `;
  const child = spawn(process.execPath, ['-e', script], { stdio: 'ignore' });
  return new Promise((resolve) => child.once('exit', (code, signal) => resolve(signal)));
}

const tempFiles = (dir) => modes(dir).map(([p]) => p).filter((p) => p.endsWith('.tmp'));

describe('repository storage directory', () => {
  let dir;
  beforeEach(() => {
    dir = path.join(tempDir(), 'store');
  });
  afterEach(() => fs.rmSync(path.dirname(dir), { recursive: true, force: true }));

  it('keeps directories 0700 and files 0600, images included', async () => {
    const repo = new OtaRepository({ dir });
    await repo.firmware.store({ image: Buffer.alloc(1000, 1), title: 'fw', version: '1.0.0' });
    await repo.devices.register({ id: 'd1', dialect: 'thingsboard', token: 't' });
    await repo.flush();
    assertPrivate(dir);
  });

  it('tightens a directory an older version left world-readable', async () => {
    const old = new OtaRepository({ dir });
    await old.firmware.store({ image: Buffer.alloc(1000, 2), title: 'fw', version: '1.0.0' });
    await old.flush();
    for (const [p] of modes(dir)) fs.chmodSync(p, fs.statSync(p).isDirectory() ? 0o755 : 0o644);
    const repo = new OtaRepository({ dir });
    assertPrivate(dir);
    assert.strictEqual((await repo.firmware.read(repo.firmware.list()[0])).length, 1000);
  });

  it('removes the temp file of an upload killed mid-write, and keeps a live writer\'s', async () => {
    assert.strictEqual(await killedUpload(dir), 'SIGKILL');
    const orphans = tempFiles(dir);
    assert.strictEqual(orphans.length, 1, 'the killed upload left its temp file');
    // Another live process (the ota-gateway command line, say) in the middle of a write.
    const live = spawn(process.execPath, ['-e', 'setTimeout(() => {}, 20000)'], { stdio: 'ignore' });
    const inFlight = path.join(dir, `.devices.json.${live.pid}.0123abcd.tmp`);
    fs.writeFileSync(inFlight, '[]');
    try {
      const repo = new OtaRepository({ dir, secret: SECRET });
      assert.deepStrictEqual(tempFiles(dir), [inFlight]);
      assert.deepStrictEqual(repo.removedTempFiles, orphans);
    } finally {
      live.kill();
    }
  });
});
