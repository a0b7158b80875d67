'use strict';
const assert = require('assert');
const { image, environment, receive, helper, NODES } = require('../fixtures/setup');
const { deliveryFlow } = require('../fixtures/flows');
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

  it('on a plain broker, does not retain the manifest on the shared topic, and answers a late device\'s first uplink with it', async function () {
    const repo = await env.load({ dialect: 'tago', chunkFilters: ['tago/data/post'], assignFilters: ['tago/data/post'], assign: { singleDevice: 't1' }, chunk: { singleDevice: 't1' } });
    const fw = (await repo.firmware.store({ image: image(6000), title: 'app', version: '1.0.1' })).record;
    const sent = [];
    helper.getNode('out').on('input', (msg) => sent.push(msg));
    assert.strictEqual(await receive(helper.getNode('assign'), { firmware: fw, devices: { id: 't1', dialect: 'tago' } }), undefined);
    while (!sent.length) await new Promise((r) => setTimeout(r, 10));
    assert.deepStrictEqual(sent.map((m) => [m.topic, m.retain]), [['tago/data/post', false]]);
    // Connects after its assignment: its version report is what brings the manifest.
    const { image: got } = await devices.tago({ url: env.broker.url, hello: { variable: 'firmware_version', value: '1.0.0' } });
    assert.strictEqual(devices.sha256(got), fw.checksums.sha256);
  });

  it('serves namespaced devices the chunk size their manifest announced', async function () {
    const repo = await env.load({ dialect: 'tago', chunkFilters: ['ota/+/tago/data/post'], assign: { prefix: 'ota/{device}/', tagoChunkSize: 1000 }, chunk: { prefix: 'ota/{device}/' } });
    const fw = (await repo.firmware.store({ image: image(4500), title: 'app', version: '1.0.2' })).record;
    await repo.devices.register({ id: 'ta', dialect: 'tago' });
    const run = devices.tago({ url: env.broker.url, prefix: 'ota/ta/' });
    await env.broker.waitForSubscriptions(['ota/ta/tago/data/post']);
    assert.strictEqual(await receive(helper.getNode('assign'), { firmware: fw.id, devices: 'ta' }), undefined);
    assert.strictEqual(devices.sha256((await run).image), fw.checksums.sha256);
  });

  it('keeps the chunk size a manifest announced across a restart of Node-RED', async function () {
    const opts = { dialect: 'tago', chunkFilters: ['ota/+/tago/data/post'], assign: { prefix: 'ota/{device}/', tagoChunkSize: 1000 }, chunk: { prefix: 'ota/{device}/' } };
    const repo = await env.load(opts);
    const bytes = image(4500);
    const fw = (await repo.firmware.store({ image: bytes, title: 'app', version: '1.0.3' })).record;
    await repo.devices.register({ id: 'ta', dialect: 'tago' });
    assert.strictEqual(await receive(helper.getNode('assign'), { firmware: fw.id, devices: 'ta' }), undefined);
    // Node-RED stops and starts again on the same storage; chunk-server's own setting is 4096.
    await helper.unload();
    env.broker.subscribed.clear();
    await helper.load(NODES, deliveryFlow({ dir: repo.dir, port: env.broker.port, ...opts }), { repo: { secret: 'a-test-secret-of-at-least-32-characters!' } });
    await env.broker.waitForSubscriptions(opts.chunkFilters);
    const device = await devices.connect(env.broker.url, 'ta-after-restart');
    try {
      await device.subscribeAsync('ota/ta/tago/data/post');
      const block = new Promise((resolve) => device.on('message', (_t, p) => {
        const msg = JSON.parse(p.toString());
        if (msg.variable === 'firmware_block') resolve(msg);
      }));
      await device.publishAsync('ota/ta/tago/data/post', JSON.stringify({ variable: 'firmware_request', value: 1 }));
      const got = await block;
      assert.deepStrictEqual(Buffer.from(got.metadata.data, 'base64'), bytes.subarray(1000, 2000));
    } finally {
      await device.endAsync();
    }
  });
});
