'use strict';
const assert = require('assert');
const { detectDialect } = require('../../../dist/core/device-updates/detect-dialect');
const { toProgressEvent, explainError, fromDownload } = require('../../../dist/core/device-updates/progress-events');
const { parseMultipart, multipartBoundary } = require('../../../dist/core/admin/multipart');

const ctx = (states = {}) => ({
  dialectOf: (id) => (id.startsWith('tb') ? 'thingsboard' : undefined),
  stateOf: (id) => states[id],
  now: () => new Date('2026-11-23T10:00:00Z'),
});

describe('dialect detection from the topic', () => {
  it('knows each dialect by its own uplink topics, with or without a gateway namespace', () => {
    assert.strictEqual(detectDialect('v1/devices/me/telemetry'), 'thingsboard');
    assert.strictEqual(detectDialect('ota/tb-7/v1/devices/me/telemetry'), 'thingsboard');
    assert.strictEqual(detectDialect('v1/devices/me/attributes/request/3'), 'thingsboard');
    assert.strictEqual(detectDialect('v2/fw/request/1/chunk/0'), 'thingsboard');
    assert.strictEqual(detectDialect('$ota/report/P1/dev-1'), 'tencent');
    assert.strictEqual(detectDialect('tago/data/post'), 'tago');
    assert.strictEqual(detectDialect('ota/tago-1/tago/data/post'), 'tago');
  });
  it('claims nothing it cannot be sure of', () => {
    for (const t of ['', 'sensors/1/temp', 'xv1/devices/me/telemetry', '$ota/update/P1/dev-1', 'biotz/1/0/c/d/subscribe/firmware/update', undefined, 42]) {
      assert.strictEqual(detectDialect(t), undefined, String(t));
    }
  });
});

describe('progress events from messages', () => {
  it('accepts a chunk-server event and fills the dialect from the device list', () => {
    const ev = toProgressEvent({ device: 'tb-1', state: 'downloading', percent: '42' }, ctx());
    assert.deepStrictEqual(ev, { device: 'tb-1', dialect: 'thingsboard', state: 'downloading', percent: 42, at: '2026-11-23T10:00:00.000Z' });
  });
  it('treats device and version alone as a version report that keeps the state', () => {
    assert.strictEqual(toProgressEvent({ device: 'tb-1', version: '1.0.0' }, ctx({ 'tb-1': 'downloading' })).state, 'downloading');
    assert.strictEqual(toProgressEvent({ device: 'tb-1', version: '1.0.0' }, ctx()).state, 'updated');
  });
  it('names the field that is wrong', () => {
    assert.match(toProgressEvent(null, ctx()), /payload/);
    assert.match(toProgressEvent({ state: 'updated' }, ctx()), /device/);
    assert.match(toProgressEvent({ device: 'tb-1', state: 'flashing' }, ctx()), /state must be one of/);
    assert.match(toProgressEvent({ device: 'tb-1', state: 'downloading', percent: 140 }, ctx()), /percent/);
    assert.match(toProgressEvent({ device: 'x', state: 'updated' }, ctx()), /dialect/);
    assert.match(toProgressEvent({ device: 'tb-1', state: 'failed', error: 'boom' }, ctx()), /error/);
  });
  it('explains Tencent result codes the device left without a message', () => {
    assert.deepStrictEqual(explainError('tencent', { code: -3, message: '' }), { code: -3, message: 'signature expired' });
    assert.deepStrictEqual(explainError('tencent', { code: '-4', message: '' }), { code: '-4', message: 'MD5 mismatch' });
    assert.deepStrictEqual(explainError('tencent', { code: -1, message: 'time_out' }), { code: -1, message: 'time_out' });
  });
  it('ignores downloads of another firmware than the assigned one', () => {
    const record = { device: 'b1', dialect: 'biotz', firmware: 'f1', state: 'notified', attempts: 1, stateSince: '' };
    const ev = { device: 'b1', firmware: 'f2', start: 0, end: 0, size: 10, complete: false, aborted: false };
    assert.strictEqual(fromDownload(ev, record, 'biotz', 'now'), undefined);
    assert.strictEqual(fromDownload({ ...ev, firmware: 'f1' }, record, 'biotz', 'now').state, 'downloading');
  });
});

describe('multipart/form-data parsing', () => {
  const CRLF = '\r\n';
  function body(boundary, parts, epilogue = '') {
    const chunks = [Buffer.from('preamble' + CRLF)];
    for (const p of parts) {
      chunks.push(Buffer.from(`--${boundary}${CRLF}${p.headers.join(CRLF)}${CRLF}${CRLF}`), Buffer.isBuffer(p.data) ? p.data : Buffer.from(p.data), Buffer.from(CRLF));
    }
    chunks.push(Buffer.from(`--${boundary}--${CRLF}${epilogue}`));
    return Buffer.concat(chunks);
  }

  it('finds the boundary, quoted or not, only for multipart/form-data', () => {
    assert.strictEqual(multipartBoundary('multipart/form-data; boundary=abc123'), 'abc123');
    assert.strictEqual(multipartBoundary('Multipart/Form-Data; charset=utf-8; boundary="a b:c"'), 'a b:c');
    assert.strictEqual(multipartBoundary('multipart/mixed; boundary=abc'), undefined);
    assert.strictEqual(multipartBoundary('application/octet-stream'), undefined);
    assert.strictEqual(multipartBoundary(undefined), undefined);
  });

  it('returns fields and a binary file byte for byte, even when the file contains CRLF and dashes', () => {
    const image = Buffer.concat([Buffer.from([0, 13, 10, 45, 45, 255]), Buffer.from('\r\n--notTheBoundary\r\n'), Buffer.alloc(3000, 0xe9)]);
    const parts = parseMultipart(body('XyZ', [
      { headers: ['Content-Disposition: form-data; name="title"'], data: 'blink' },
      { headers: ['Content-Disposition: form-data; name="file"; filename="a \\"b\\".bin"', 'Content-Type: application/octet-stream'], data: image },
    ]), 'XyZ');
    assert.deepStrictEqual(parts.map((p) => [p.name, p.filename]), [['title', undefined], ['file', 'a "b".bin']]);
    assert.strictEqual(parts[0].data.toString(), 'blink');
    assert.ok(parts[1].data.equals(image));
    assert.strictEqual(parts[1].contentType, 'application/octet-stream');
  });

  it('refuses truncated or malformed bodies with an error naming the body', () => {
    const whole = body('B', [{ headers: ['Content-Disposition: form-data; name="file"; filename="x"'], data: 'abc' }]);
    const cases = [
      whole.subarray(0, whole.length - 12),
      Buffer.from('no boundary here'),
      body('B', [{ headers: ['Content-Type: text/plain'], data: 'abc' }]),
      body('B', [{ headers: ['Content-Disposition: form-data'], data: 'abc' }]),
    ];
    for (const c of cases) {
      assert.throws(() => parseMultipart(c, 'B'), (err) => err.field === 'body' && err.code === 'bad_multipart');
    }
  });
});
