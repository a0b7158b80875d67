'use strict';
const assert = require('assert');
const dialects = require('../../../dist/core/dialects');
const { firmware, device } = require('./helpers');

// One node can serve every dialect behind the gateway: the namespace prefix moves the shared
// ThingsBoard and TagoIO topics under {ns}/{device}/, and leaves the per-device ones alone.
describe('namespace prefix across dialects', function () {
  const options = { prefix: 'ota/{device}/', attributes: { product: 'P1', customer: 'C1', app: 'test' }, smingPrefix: '/' };
  const fw = firmware(Buffer.from('image'), 'app', '4.3.2');
  const ctx = (id, dialect) => ({ device: device(id, dialect), firmware: fw, downloadUrl: () => 'http://x/dl', image: Buffer.from('image') });

  it('puts ThingsBoard and TagoIO notices in the device namespace', function () {
    assert.strictEqual(dialects.thingsboard.notice(ctx('tb-1', 'thingsboard'), options)[0].topic, 'ota/tb-1/v1/devices/me/attributes');
    assert.strictEqual(dialects.tago.notice(ctx('tg-1', 'tago'), options)[0].topic, 'ota/tg-1/tago/data/post');
  });

  it('keeps the Tencent, Biotz and Sming topics their devices subscribe to', function () {
    assert.strictEqual(dialects.tencent.notice(ctx('tc-1', 'tencent'), options)[0].topic, '$ota/update/P1/tc-1');
    assert.strictEqual(dialects.biotz.notice(ctx('bz-1', 'biotz'), options)[0].topic, 'biotz/1/0/C1/bz-1/subscribe/firmware/update');
    assert.strictEqual(dialects.sming.notice(ctx('sm-1', 'sming'), options)[0].topic, '/a/test/u/4.3');
    const u = dialects.tencent.parseUplink('$ota/report/P1/tc-1', '{"type":"report_version","report":{"version":"1.0.0"}}', options);
    assert.strictEqual(u.kind, 'progress');
    assert.strictEqual(u.events[0].device, 'tc-1');
    assert.deepStrictEqual(dialects.tencent.uplinkFilters(options), ['$ota/report/+/+']);
  });
});
