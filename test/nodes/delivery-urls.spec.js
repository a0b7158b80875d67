'use strict';
const assert = require('assert');
const { image, environment, receive, helper } = require('../fixtures/setup');
const devices = require('../fixtures/devices');

// The URL dialects: Biotz and Tencent devices download a signed per-device URL.

describe('delivery: biotz and tencent', function () {
  const env = environment();
  before(env.start);
  after(env.stop);
  afterEach(env.unload);

  for (const size of [10000, 1]) {
    it(`a Biotz device gets the retained notice and downloads the image (${size} bytes)`, async function () {
      const repo = await env.load({ dialect: 'biotz', assign: { customer: 'c-0001' } });
      const fw = (await repo.firmware.store({ image: image(size), title: 'app', version: '1.2.0' })).record;
      // Assigned before the device ever connects: the retained notice waits for it.
      assert.strictEqual(await receive(helper.getNode('assign'), { firmware: fw, devices: { id: 'b-0001', dialect: 'biotz' } }), undefined);
      const { image: got, msg } = await devices.biotz({ url: env.broker.url, customer: 'c-0001', device: 'b-0001' });
      assert.strictEqual(msg['firmware-name'], 'app 1.2.0');
      assert.strictEqual(devices.sha256(got), fw.checksums.sha256);
    });
  }

  it('unassigning a Biotz device leaves no retained notice', async function () {
    const repo = await env.load({ dialect: 'biotz' });
    const fw = (await repo.firmware.store({ image: image(10), title: 'app', version: '1.2.1' })).record;
    await receive(helper.getNode('assign'), { firmware: fw, devices: { id: 'b2', dialect: 'biotz', attributes: { customer: 'c2' } } });
    await receive(helper.getNode('assign'), { action: 'unassign', devices: 'b2' });
    const c = await devices.connect(env.broker.url, 'late');
    const seen = [];
    c.on('message', (_t, p) => seen.push(p));
    await c.subscribeAsync('biotz/1/0/c2/b2/subscribe/firmware/update', { qos: 1 });
    await c.publishAsync('sync', 'x', { qos: 1 }); // a round trip: retained messages arrive before it
    assert.deepStrictEqual(seen, []);
    await c.endAsync();
  });

  for (const size of [10000, 1]) {
    it(`a Tencent device reporting an old version is sent the update again and downloads it (${size} bytes)`, async function () {
      const repo = await env.load({ dialect: 'tencent', assignFilters: ['$ota/report/+/+'], assign: { product: 'P1' } });
      const fw = (await repo.firmware.store({ image: image(size), title: 'app', version: '2.0.0' })).record;
      await repo.devices.register({ id: 'dev1', dialect: 'tencent', attributes: { product: 'P1' } });
      // Assigned while the device is offline: the notice is lost (not retained) ...
      assert.strictEqual(await receive(helper.getNode('assign'), { firmware: fw, devices: 'dev1' }), undefined);
      // ... and its report_version at boot gets the update again.
      const { image: got, msg, updates } = await devices.tencent({ url: env.broker.url, product: 'P1', device: 'dev1', version: '1.0.0' });
      assert.strictEqual(updates, 1);
      assert.strictEqual(msg.md5sum, fw.checksums.md5);
      assert.strictEqual(msg.file_size, size);
      assert.strictEqual(devices.sha256(got), fw.checksums.sha256);
      assert.strictEqual(repo.rollout.get('dev1').attempts, 2);
    });
  }
});
