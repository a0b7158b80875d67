'use strict';
const assert = require('assert');
const { image, environment, receive, helper } = require('../fixtures/setup');
const devices = require('../fixtures/devices');

describe('delivery: sming', function () {
  const env = environment();
  before(env.start);
  after(env.stop);
  afterEach(env.unload);

  for (const size of [10000, 1]) {
    it(`Sming's Upgrade sample, subscribed to a/test/u/4.3, gets patch + image in one retained message (${size} bytes)`, async function () {
      const repo = await env.load({ dialect: 'sming', assign: { app: 'test' } });
      const fw = (await repo.firmware.store({ image: image(size), title: 'app', version: '4.3.9' })).record;
      const sent = [];
      helper.getNode('out').on('input', (msg) => sent.push(msg));
      assert.strictEqual(await receive(helper.getNode('assign'), { firmware: fw, devices: [{ id: 's1', dialect: 'sming' }, { id: 's2', dialect: 'sming' }] }), undefined);
      const got = await devices.sming({ url: env.broker.url });
      assert.strictEqual(sent.length, 1, 'devices of one app share the retained topic: one publish');
      assert.deepStrictEqual([sent[0].qos, sent[0].retain, sent[0].topic], [2, true, 'a/test/u/4.3']);
      assert.strictEqual(got.patch, 9);
      assert.strictEqual(devices.sha256(got.image), fw.checksums.sha256);
    });
  }

  it('keeps the older /a/test/u/4.3 spelling as an option (Sming prefix /)', async function () {
    const repo = await env.load({ dialect: 'sming', assign: { app: 'test', smingPrefix: '/' } });
    const fw = (await repo.firmware.store({ image: image(100), title: 'app', version: '4.3.5' })).record;
    const sent = [];
    helper.getNode('out').on('input', (msg) => sent.push(msg));
    assert.strictEqual(await receive(helper.getNode('assign'), { firmware: fw, devices: [{ id: 's1', dialect: 'sming' }] }), undefined);
    const got = await devices.sming({ url: env.broker.url, prefix: '/' });
    assert.strictEqual(sent[0].topic, '/a/test/u/4.3');
    assert.strictEqual(devices.sha256(got.image), fw.checksums.sha256);
  });

  it('refuses patch 128 in varint mode and says why; nothing is sent and the device is failed with that reason', async function () {
    const repo = await env.load({ dialect: 'sming', assign: { app: 'test', smingEncoding: 'varint' } });
    const fw = (await repo.firmware.store({ image: image(10), title: 'app', version: '4.3.128' })).record;
    const err = await receive(helper.getNode('assign'), { firmware: fw, devices: { id: 's3', dialect: 'sming' } });
    assert.match(String(err), /varint.*127/);
    const s3 = repo.rollout.get('s3');
    assert.deepStrictEqual([s3.state, s3.attempts, s3.retained, s3.lastError.code], ['failed', 0, undefined, 'patch_too_large']);
  });

  it('warns when the image is over the configured broker message limit', async function () {
    const repo = await env.load({ dialect: 'sming', assign: { app: 'test', maxMessageKB: 1 } });
    const fw = (await repo.firmware.store({ image: image(2048), title: 'app', version: '4.3.1' })).record;
    const warned = new Promise((resolve) => helper.getNode('assign').once('call:warn', (c) => resolve(c.args[0])));
    await receive(helper.getNode('assign'), { firmware: fw, devices: { id: 's4', dialect: 'sming' } });
    assert.match(await warned, /over the configured broker message limit of 1024/);
    await receive(helper.getNode('assign'), { action: 'unassign', devices: 's4' }); // leaves no retained image behind
  });
});
