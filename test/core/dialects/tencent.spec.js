'use strict';
const assert = require('assert');
const { tencent } = require('../../../dist/core/dialects');
const { firmware, device } = require('./helpers');

const report = (progress, version = '2.0.0') => JSON.stringify({ type: 'report_progress', report: { progress, version } });

describe('tencent dialect', function () {
  const fw = firmware(Buffer.from('tencent image'), 'app', '2.0.0');

  it('sends update_firmware with version, url, md5sum and file_size on $ota/update/{product}/{device}', function () {
    const [out] = tencent.notice({ device: device('dev1', 'tencent', { product: 'P1' }), firmware: fw, downloadUrl: () => 'http://x/dl' });
    assert.strictEqual(out.topic, '$ota/update/P1/dev1');
    assert.deepStrictEqual(JSON.parse(out.payload), { type: 'update_firmware', version: '2.0.0', url: 'http://x/dl', md5sum: fw.checksums.md5, file_size: fw.size });
  });

  it('says which attribute is missing when the device has no product', function () {
    assert.throws(() => tencent.notice({ device: device('dev1', 'tencent'), firmware: fw, downloadUrl: () => '' }), /\{product\}/);
    assert.strictEqual(tencent.notice({ device: device('dev1', 'tencent'), firmware: fw, downloadUrl: () => '' }, { attributes: { product: 'NODE' } })[0].topic, '$ota/update/NODE/dev1');
  });

  it('reads report_version as a version report', function () {
    const u = tencent.parseUplink('$ota/report/P1/dev1', '{"type":"report_version","report":{"version":"1.0.0"}}');
    assert.deepStrictEqual([u.events[0].device, u.events[0].version, u.events[0].state], ['dev1', '1.0.0', 'notified']);
  });

  it('maps downloading (percent as a string), burning, done and fail', function () {
    const e = (p) => tencent.parseUplink('$ota/report/P1/dev1', report(p)).events[0];
    assert.deepStrictEqual([e({ state: 'downloading', percent: '10', result_code: '0', result_msg: '' }).state, e({ state: 'downloading', percent: '10' }).percent], ['downloading', 10]);
    assert.strictEqual(e({ state: 'downloading', percent: '10' }).version, undefined, 'the version being downloaded is not what the device runs');
    assert.strictEqual(e({ state: 'burning', result_code: '0' }).state, 'updating');
    assert.deepStrictEqual([e({ state: 'done' }).state, e({ state: 'done' }).version], ['updated', '2.0.0']);
    const messages = { '-1': 'download timed out', '-2': 'file does not exist', '-3': 'signature expired', '-4': 'MD5 mismatch', '-5': 'firmware update failed' };
    for (const [code, message] of Object.entries(messages)) {
      const f = e({ state: 'fail', result_code: code, result_msg: '' });
      assert.strictEqual(f.state, 'failed');
      assert.deepStrictEqual(f.error, { code: Number(code), message });
    }
    assert.strictEqual(e({ state: 'fail', result_code: '-1', result_msg: 'time_out' }).error.message, 'download timed out (time_out)');
    assert.strictEqual(e(JSON.stringify({ state: 'burning' })).state, 'updating', 'progress as a JSON string');
  });

  it('gives malformed reports a clear error', function () {
    assert.match(tencent.parseUplink('$ota/report/P1/dev1', '{"type":').error, /malformed JSON/);
    assert.match(tencent.parseUplink('$ota/report/P1/dev1', report({ state: 'exploded' })).error, /unknown state "exploded"/);
    assert.deepStrictEqual(tencent.uplinkFilters(), ['$ota/report/+/+']);
  });

  it('takes a result_code that is neither number nor string as missing (String() of it could throw)', function () {
    const u = tencent.parseUplink('$ota/report/P1/dev1', report({ state: 'fail', result_code: { toString: ['x'] } }));
    assert.strictEqual(u.kind, 'progress');
    assert.deepStrictEqual(u.events[0].error, { code: 'fail', message: 'update failed (result_code missing)' });
  });
});
