'use strict';
const assert = require('assert');
const fs = require('fs');
const path = require('path');
const { OtaRepository } = require('../../dist/core/repository');
const { tempDir } = require('../support/images');

describe('device list', () => {
  let dir, repo;
  beforeEach(() => {
    dir = tempDir();
    repo = new OtaRepository({ dir });
  });
  afterEach(async () => {
    await repo.flush();
    fs.rmSync(dir, { recursive: true, force: true });
  });

  it('registers a device with its dialect, attributes and tags, and finds it by token', async () => {
    const { device, created } = await repo.devices.register({ id: 'tb-1', dialect: 'thingsboard', token: 'A1_TEST_TOKEN', tags: 'lab, floor-2', attributes: {} });
    assert.strictEqual(created, true);
    assert.deepStrictEqual(device.tags, ['lab', 'floor-2']);
    assert.strictEqual(repo.devices.byToken('A1_TEST_TOKEN').id, 'tb-1');
    assert.strictEqual(repo.devices.byToken('wrong'), undefined);
    assert.ok(repo.devices.checkToken('tb-1', 'A1_TEST_TOKEN'));
    assert.ok(!repo.devices.checkToken('tb-1', 'A1_TEST_TOKEN '));
    assert.deepStrictEqual(repo.devices.withTag('lab').map((d) => d.id), ['tb-1']);
  });

  it('keeps a Tencent device secret sealed: not in the file, bound to its device, unreadable under another repository secret', async () => {
    const secret = 'VI04Eh4N8VgM29U/dnu9cQ==';
    const raw = Buffer.from(secret, 'base64');
    await repo.devices.register({ id: 'dev001', dialect: 'tencent', deviceSecret: secret });
    await repo.flush();
    const file = fs.readFileSync(path.join(dir, 'devices.json'));
    assert.ok(!file.includes(secret) && !file.includes(raw) && !file.includes(raw.toString('hex')));
    assert.deepStrictEqual(repo.devices.deviceSecret('dev001'), raw);
    // The sealed value moved onto another device does not open.
    const records = JSON.parse(file);
    records.push({ ...records[0], id: 'dev002' });
    fs.writeFileSync(path.join(dir, 'devices.json'), JSON.stringify(records));
    const { DeviceRegistry } = require('../../dist/core/devices');
    assert.strictEqual(new DeviceRegistry(dir, repo.secret).deviceSecret('dev002'), undefined);
    assert.strictEqual(new DeviceRegistry(dir, Buffer.from('another secret of enough length...')).deviceSecret('dev001'), undefined);
    // A device moved off Tencent drops its secret.
    await repo.devices.register({ id: 'dev001', dialect: 'biotz' });
    assert.strictEqual(repo.devices.deviceSecret('dev001'), undefined);
  });

  it('never stores a token in clear, and keeps the device file private', async () => {
    await repo.devices.register({ id: 'tb-1', dialect: 'thingsboard', token: 'SuperSecretToken123' });
    await repo.flush();
    const file = path.join(dir, 'devices.json');
    assert.ok(!fs.readFileSync(file, 'utf8').includes('SuperSecretToken123'));
    assert.strictEqual(fs.statSync(file).mode & 0o777, 0o600);
    const reopened = new OtaRepository({ dir });
    assert.strictEqual(reopened.devices.byToken('SuperSecretToken123').id, 'tb-1');
  });

  it('generates a token on request and shows it only once', async () => {
    const { token, device } = await repo.devices.register({ id: 'tago-1', dialect: 'tago', token: true });
    assert.match(token, /^[A-Za-z0-9_-]{20}$/);
    assert.ok(!JSON.stringify(device).includes(token));
    assert.strictEqual(repo.devices.byToken(token).id, 'tago-1');
    const again = await repo.devices.register({ id: 'tago-1', dialect: 'tago', tags: ['x'] });
    assert.strictEqual(again.token, undefined);
    assert.strictEqual(repo.devices.byToken(token).id, 'tago-1', 'an update without token keeps the old one');
  });

  it('refuses ids and attributes that would break out of a topic, unknown dialects, and stolen tokens', async () => {
    for (const id of ['a/b', 'a+b', '#', '', 'x'.repeat(129), '../etc', 'a b']) {
      await assert.rejects(repo.devices.register({ id, dialect: 'tencent' }), (e) => e.code === 'bad_field' && e.field === 'id', id);
    }
    await assert.rejects(repo.devices.register({ id: 'd', dialect: 'zigbee' }), (e) => e.field === 'dialect');
    await assert.rejects(repo.devices.register({ id: 'd', dialect: 'tencent', attributes: { product: 'p/#' } }), (e) => e.field === 'attributes.product');
    await repo.devices.register({ id: 'a', dialect: 'thingsboard', token: 'T' });
    await assert.rejects(repo.devices.register({ id: 'b', dialect: 'thingsboard', token: 'T' }), (e) => e.code === 'token_in_use');
    assert.deepStrictEqual(repo.devices.list().map((d) => d.id), ['a']);
  });

  it('refuses the ids . and .. (path segments: a download URL or route naming them resolves elsewhere), with a clear error', async () => {
    for (const id of ['.', '..', ' .. ']) {
      await assert.rejects(repo.devices.register({ id, dialect: 'tencent' }), (e) => e.code === 'bad_field' && e.field === 'id' && /not \. or \.\./.test(e.message), id);
    }
    await assert.rejects(repo.devices.register({ id: 'd', dialect: 'biotz', attributes: { customer: '..' } }), (e) => e.field === 'attributes.customer');
    for (const id of ['...', '.hidden', 'a..b', 'v1.2']) await repo.devices.register({ id, dialect: 'tencent' });
    assert.deepStrictEqual(repo.devices.list().map((d) => d.id).sort(), ['...', '.hidden', 'a..b', 'v1.2']);
  });
});
