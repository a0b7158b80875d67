'use strict';
// ota-repository to-postgres / to-files: a file repository copied into PostgreSQL and back reads
// the same (devices still log in with their tokens, images byte for byte, rollouts with their
// unsnapshotted releases), and neither copy overwrites a repository already there.
const assert = require('assert');
const fs = require('fs');
const path = require('path');
const { execFile } = require('child_process');
const { OtaRepository } = require('../../../dist/core/repository');
const { imageOf, tempDir } = require('../../support/images');
const { startPostgres } = require('../../support/postgres');

const CLI = path.join(__dirname, '../../../bin/ota-repository.js');

function cli(args, env) {
  return new Promise((resolve) => {
    execFile(process.execPath, [CLI, ...args], { env: { ...process.env, ...env } }, (err, stdout, stderr) => resolve({ code: err ? err.code : 0, out: stdout + stderr }));
  });
}

describe('ota-repository: copying a repository between files and PostgreSQL', function () {
  this.timeout(60_000);
  let cluster;
  const dirs = [];
  before(async function () {
    cluster = await startPostgres();
    if (!cluster) this.skip();
  });
  after(() => {
    cluster?.stop();
    for (const d of dirs) fs.rmSync(d, { recursive: true, force: true });
  });
  const dir = () => {
    const d = tempDir('ota-migrate-');
    dirs.push(d);
    return d;
  };

  it('copies files into PostgreSQL and back, and refuses to overwrite either', async () => {
    const source = dir();
    const files = new OtaRepository({ dir: source });
    const image = imageOf(40000, 11);
    const { record } = await files.firmware.store({ image, title: 'blink', version: '5.0.0' });
    await files.devices.register({ id: 'tb-1', dialect: 'thingsboard', token: 'SECRET_TOKEN' });
    await files.devices.register({ id: 'tc-1', dialect: 'tencent', deviceSecret: Buffer.alloc(16, 3).toString('base64'), attributes: { product: 'P' } });
    files.rollout.assign('tb-1', 'thingsboard', record);
    files.rollout.markNotified('tb-1');
    const p = files.rolloutPersistence();
    p.save(() => [{ id: 'r1', name: 'r', state: 'running', devices: {} }]);
    await p.flush();
    p.released('r1', ['tb-1'], 42);
    await files.flush();
    const states = files.rollout.list();

    const url = await cluster.createDatabase();
    const up = await cli(['to-postgres', '--dir', source], { OTA_POSTGRES_URL: url });
    assert.strictEqual(up.code, 0, up.out);
    assert.match(up.out, /1 firmware \(1 images\), 2 devices, 1 device states, 1 rollouts, 1 journal entries/);
    assert.ok(!up.out.includes(new URL(url).password), 'the password is not printed');

    const pgRepo = new OtaRepository({ dir: dir(), storage: { kind: 'postgres', connectionString: url } });
    await pgRepo.ready;
    try {
      assert.strictEqual(pgRepo.devices.byToken('SECRET_TOKEN').id, 'tb-1');
      assert.ok(pgRepo.devices.deviceSecret('tc-1').equals(Buffer.alloc(16, 3)));
      assert.ok((await pgRepo.firmware.read(pgRepo.firmware.get(record.id))).equals(image));
      assert.deepStrictEqual(pgRepo.rollout.list(), states);
      assert.deepStrictEqual([...pgRepo.rolloutPersistence().replay()], [['r1', [{ devices: ['tb-1'], at: 42 }]]]);
    } finally {
      await pgRepo.close();
    }
    const again = await cli(['to-postgres', '--dir', source], { OTA_POSTGRES_URL: url });
    assert.notStrictEqual(again.code, 0);
    assert.match(again.out, /already holds a repository/);

    const target = dir();
    const down = await cli(['to-files', '--dir', target], { OTA_POSTGRES_URL: url });
    assert.strictEqual(down.code, 0, down.out);
    const back = new OtaRepository({ dir: target });
    assert.strictEqual(back.devices.byToken('SECRET_TOKEN').id, 'tb-1');
    assert.ok((await back.firmware.read(back.firmware.get(record.id))).equals(image));
    assert.deepStrictEqual(back.rollout.list(), states);
    assert.deepStrictEqual(back.rolloutPersistence().load(), [{ id: 'r1', name: 'r', state: 'running', devices: {} }]);
    assert.deepStrictEqual([...back.rolloutPersistence().replay()], [['r1', [{ devices: ['tb-1'], at: 42 }]]]);
    await back.flush();
    const over = await cli(['to-files', '--dir', target], { OTA_POSTGRES_URL: url });
    assert.match(over.out, /already holds a repository/);
  });
});
