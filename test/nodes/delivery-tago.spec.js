'use strict';
const assert = require('assert');
const { image, environment, receive, helper } = require('../fixtures/setup');
const devices = require('../fixtures/devices');

describe('delivery: tago', function () {
  const env = environment();
  before(env.start);
  after(env.stop);
  afterEach(env.unload);

  for (const size of [10000, 1]) {
    it(`the seed's device gets the manifest, asks block by block and ends with the image (${size} bytes)`, async function () {
      const repo = await env.load({ dialect: 'tago', chunkFilters: ['tago/data/post'], assign: { singleDevice: 't1' }, chunk: { singleDevice: 't1' } });
      const fw = (await repo.firmware.store({ image: image(size), title: 'app', version: '1.0.1' })).record;
      const progress = [];
      helper.getNode('progress').on('input', (msg) => progress.push(msg.payload));
      const run = devices.tago({ url: env.broker.url });
      await env.broker.waitForSubscriptions(['tago/data/post']);
      assert.strictEqual(await receive(helper.getNode('assign'), { firmware: fw, devices: { id: 't1', dialect: 'tago' } }), undefined);
      const { image: got } = await run;
      assert.strictEqual(devices.sha256(got), fw.checksums.sha256);
      assert.deepStrictEqual([progress.at(-1).state, progress.at(-1).percent, progress.at(-1).dialect], ['downloaded', 100, 'tago']);
    });
  }

  it('serves namespaced devices the chunk size their manifest announced', async function () {
    const repo = await env.load({ dialect: 'tago', chunkFilters: ['ota/+/tago/data/post'], assign: { prefix: 'ota/{device}/', tagoChunkSize: 1000 }, chunk: { prefix: 'ota/{device}/' } });
    const fw = (await repo.firmware.store({ image: image(4500), title: 'app', version: '1.0.2' })).record;
    await repo.devices.register({ id: 'ta', dialect: 'tago' });
    const run = devices.tago({ url: env.broker.url, prefix: 'ota/ta/' });
    await env.broker.waitForSubscriptions(['ota/ta/tago/data/post']);
    assert.strictEqual(await receive(helper.getNode('assign'), { firmware: fw.id, devices: 'ta' }), undefined);
    assert.strictEqual(devices.sha256((await run).image), fw.checksums.sha256);
  });
});
