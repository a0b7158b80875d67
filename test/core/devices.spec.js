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
