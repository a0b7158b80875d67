'use strict';
const assert = require('assert');
const { image, environment, receive, helper } = require('../fixtures/setup');
const devices = require('../fixtures/devices');

// ThingsBoard devices on a plain broker (one device, "single device" set) and behind the
// gateway's namespace (several devices, the device read from the topic).

describe('delivery: thingsboard', function () {
  const env = environment();
  before(env.start);
  after(env.stop);
  afterEach(env.unload);

  const plain = { dialect: 'thingsboard', chunkFilters: ['v2/fw/request/+/chunk/+'], assignFilters: ['v1/devices/me/attributes/request/+'], assign: { singleDevice: 'tb1' }, chunk: { singleDevice: 'tb1' } };
  const ns = { dialect: 'thingsboard', chunkFilters: ['ota/+/v2/fw/request/+/chunk/+'], assignFilters: ['ota/+/v1/devices/me/attributes/request/+'], assign: { prefix: 'ota/{device}/' }, chunk: { prefix: 'ota/{device}/' } };

  async function store(repo, bytes, version = '1.1.0') {
    return (await repo.firmware.store({ image: bytes, title: 'app', version })).record;
  }

  for (const size of [10000, 1]) {
    it(`a booting device learns its assignment by attribute request and ends with the image (${size} bytes)`, async function () {
      const repo = await env.load(plain);
      const bytes = image(size);
      const fw = await store(repo, bytes);
      const err = await receive(helper.getNode('assign'), { firmware: fw, devices: { id: 'tb1', dialect: 'thingsboard' } });
      assert.strictEqual(err, undefined);
      const progress = [];
      helper.getNode('progress').on('input', (msg) => progress.push(msg.payload));
      const { image: got } = await devices.thingsboard({ url: env.broker.url, chunkSize: 1024 });
      assert.strictEqual(devices.sha256(got), fw.checksums.sha256);
      assert.strictEqual(progress.at(-1).state, 'downloaded');
      assert.strictEqual(progress.at(-1).percent, 100);
      assert.strictEqual(repo.rollout.get('tb1').state, 'notified');
    });
  }

  it('serves several devices at once in the gateway namespace, each its own image, pushed as shared attributes', async function () {
    const repo = await env.load(ns);
    const a = await store(repo, image(7000, 'a'), '2.0.0');
    const b = await store(repo, image(5000, 'b'), '3.0.0');
    await repo.devices.register({ id: 'dev-a', dialect: 'thingsboard' });
    await repo.devices.register({ id: 'dev-b', dialect: 'thingsboard' });
    const runs = [
      devices.thingsboard({ url: env.broker.url, prefix: 'ota/dev-a/', clientId: 'a', chunkSize: 512 }),
      devices.thingsboard({ url: env.broker.url, prefix: 'ota/dev-b/', clientId: 'b', chunkSize: 700, requestId: 9 }),
    ];
    await env.broker.waitForSubscriptions(['ota/dev-a/v1/devices/me/attributes', 'ota/dev-b/v1/devices/me/attributes']);
    assert.strictEqual(await receive(helper.getNode('assign'), { firmware: a.id, devices: 'dev-a' }), undefined);
    assert.strictEqual(await receive(helper.getNode('assign'), { firmware: { title: 'app', version: '3.0.0' }, devices: ['dev-b'] }), undefined);
    const [ra, rb] = await Promise.all(runs);
    assert.strictEqual(devices.sha256(ra.image), a.checksums.sha256);
    assert.strictEqual(devices.sha256(rb.image), b.checksums.sha256);
  });

  it('unassigns with {"deleted":[...]} on the attributes topic', async function () {
    const repo = await env.load(ns);
    const fw = await store(repo, image(100));
    await repo.devices.register({ id: 'd1', dialect: 'thingsboard' });
    await receive(helper.getNode('assign'), { firmware: fw, devices: 'd1' });
    const c = await devices.connect(env.broker.url, 'watcher');
    await c.subscribeAsync('ota/d1/v1/devices/me/attributes');
    const got = new Promise((resolve) => c.on('message', (_t, p) => resolve(JSON.parse(p))));
    assert.strictEqual(await receive(helper.getNode('assign'), { action: 'unassign', devices: 'd1' }), undefined);
    assert.deepStrictEqual(await got, { deleted: ['fw_title', 'fw_version', 'fw_tag', 'fw_size', 'fw_checksum_algorithm', 'fw_checksum'] });
    assert.strictEqual(repo.rollout.get('d1').state, 'idle');
    await c.endAsync();
  });
});
