'use strict';
const assert = require('assert');
const { biotz, sming } = require('../../../dist/core/dialects');
const { patchHeader } = require('../../../dist/core/dialects/sming');
const { firmware, device } = require('./helpers');

describe('biotz dialect', function () {
  const fw = firmware(Buffer.from('b'));
  const dev = device('d-uuid', 'biotz', { customer: 'c-uuid' });

  it('publishes a retained {"firmware-name","download-url"} on the device topic', function () {
    const [out] = biotz.notice({ device: dev, firmware: fw, downloadUrl: () => 'https://h/dl?s=1' });
    assert.strictEqual(out.topic, 'biotz/1/0/c-uuid/d-uuid/subscribe/firmware/update');
    assert.strictEqual(out.retain, true);
    assert.deepStrictEqual(JSON.parse(out.payload), { 'firmware-name': 'app 1.2.3', 'download-url': 'https://h/dl?s=1' });
  });

  it('clears with an empty retained message', function () {
    assert.deepStrictEqual(biotz.clear(dev, fw), [{ topic: 'biotz/1/0/c-uuid/d-uuid/subscribe/firmware/update', payload: '', qos: 1, retain: true }]);
  });
});

describe('sming dialect', function () {
  const image = Buffer.from([1, 2, 3, 4]);
  const dev = device('s1', 'sming', { app: 'test' });

  it('sends patch byte + image, retained QoS 2, on {prefix}a/{app}/u/{major}.{minor}', function () {
    const [out] = sming.notice({ device: dev, firmware: firmware(image, 'app', '4.3.7'), image, downloadUrl: () => '' }, { smingPrefix: '/' });
    assert.strictEqual(out.topic, '/a/test/u/4.3');
    assert.deepStrictEqual([out.qos, out.retain], [2, true]);
    assert.deepStrictEqual([...out.payload], [7, 1, 2, 3, 4]);
  });

  it('refuses a patch version above 127 in varint mode, saying why', function () {
    assert.throws(() => patchHeader('1.0.128', 'varint'), /varints above 127 wrongly/);
    assert.deepStrictEqual([...patchHeader('1.0.127', 'varint')], [127]);
    assert.deepStrictEqual([...patchHeader('1.0.200', 'byte')], [200]);
    assert.throws(() => patchHeader('1.0.256', 'byte'), /0-255/);
  });

  it('warns when the notice is over the broker message limit', function () {
    const warnings = [];
    sming.notice({ device: dev, firmware: firmware(image, 'app', '4.3.1'), image, downloadUrl: () => '', warn: (w) => warnings.push(w) }, { maxMessageBytes: 3 });
    assert.match(warnings[0], /over the configured broker message limit of 3/);
  });

  it('clears the retained image with an empty retained message', function () {
    assert.deepStrictEqual(sming.clear(dev, { title: 'app', version: '4.3.1' }, {}), [{ topic: 'a/test/u/4.3', payload: '', qos: 2, retain: true }]);
  });
});
