'use strict';
const assert = require('assert');
const { tago } = require('../../../dist/core/dialects');
const { firmware, device } = require('./helpers');

describe('tago dialect', function () {
  const fw = firmware(Buffer.alloc(10000, 7));
  const dev = device('t1', 'tago');

  it('sends the manifest with total size, chunk count for 4 KiB chunks and version', function () {
    const [out] = tago.notice({ device: dev, firmware: fw, downloadUrl: () => '' });
    assert.strictEqual(out.topic, 'tago/data/post');
    assert.strictEqual(out.retain, false);
    assert.deepStrictEqual(JSON.parse(out.payload), { variable: 'firmware_manifest', value: 'pending', metadata: { total_size: 10000, total_chunks: 3, chunk_size: 4096, version: '1.2.3' } });
    assert.strictEqual(JSON.parse(tago.notice({ device: dev, firmware: fw }, { chunkSize: 1000 })[0].payload).metadata.total_chunks, 10);
  });

  it('reads firmware_request as a chunk request, the device from the namespace or the node', function () {
    const req = Buffer.from(JSON.stringify({ variable: 'firmware_request', value: 2, unit: 'index' }));
    assert.deepStrictEqual(tago.parseUplink('ota/t7/tago/data/post', req, { prefix: 'ota/{device}/' }), { kind: 'chunk-request', device: 't7', requestId: '', index: 2 });
    assert.deepStrictEqual(tago.parseUplink('tago/data/post', req, { device: 't1' }), { kind: 'chunk-request', device: 't1', requestId: '', index: 2 });
  });

  it('skips its own blocks and manifests without parsing them', function () {
    const block = tago.chunkReply({ kind: 'chunk-request', device: 't1', requestId: '', index: 0 }, Buffer.from('abc'));
    assert.deepStrictEqual(JSON.parse(block.payload), { variable: 'firmware_block', value: 0, metadata: { data: Buffer.from('abc').toString('base64') } });
    assert.strictEqual(tago.parseUplink('tago/data/post', Buffer.from(block.payload), { device: 't1' }).kind, 'ignored');
  });

  it('refuses negative, non-numeric and malformed requests with a clear error', function () {
    const o = { device: 't1' };
    assert.match(tago.parseUplink('tago/data/post', '{"variable":"firmware_request","value":-1}', o).error, /-1 is not a non-negative integer/);
    assert.match(tago.parseUplink('tago/data/post', '{"variable":"firmware_request","value":"x"}', o).error, /not a non-negative integer/);
    assert.match(tago.parseUplink('tago/data/post', '{"variable":"firmware_request",', o).error, /malformed JSON/);
  });

  it('reads {"variable":"firmware_version"} as a version report', function () {
    const u = tago.parseUplink('tago/data/post', '{"variable":"firmware_version","value":"1.2.3"}', { device: 't1' });
    assert.strictEqual(u.kind, 'progress');
    assert.strictEqual(u.events[0].version, '1.2.3');
    assert.strictEqual(u.events[0].dialect, 'tago');
  });

  it('retains the manifest on a topic that is the device\'s alone (the gateway\'s namespace), not on the shared one', function () {
    const ns = { prefix: 'ota/{device}/' };
    const [behind] = tago.notice({ device: dev, firmware: fw }, ns);
    assert.deepStrictEqual([behind.topic, behind.retain], ['ota/t1/tago/data/post', true]);
    assert.deepStrictEqual(tago.clear(dev, fw, ns), [{ topic: 'ota/t1/tago/data/post', payload: '', qos: 1, retain: true }]);
    assert.strictEqual(tago.notice({ device: dev, firmware: fw }, { ...ns, retain: false })[0].retain, false);
    assert.strictEqual(tago.notice({ device: dev, firmware: fw }, { topics: { data: 'tago/{device}/post' } })[0].retain, true);
    assert.strictEqual(tago.notice({ device: dev, firmware: fw }, {})[0].retain, false);
  });

  it('clears a retained manifest only when it was retained', function () {
    assert.deepStrictEqual(tago.clear(dev, fw), []);
    assert.deepStrictEqual(tago.clear(dev, fw, { retain: true }), [{ topic: 'tago/data/post', payload: '', qos: 1, retain: true }]);
  });
  it('reads a device\'s firmware_status "failed" as a failure with its reason, and ignores other statuses', function () {
    const u = tago.parseUplink('ota/dev1/tago/data/post', JSON.stringify({ variable: 'firmware_status', value: 'failed', metadata: { error: 'size mismatch' } }));
    assert.strictEqual(u.kind, 'progress');
    assert.deepStrictEqual([u.events[0].device, u.events[0].state, u.events[0].error.message], ['dev1', 'failed', 'size mismatch']);
    assert.strictEqual(tago.parseUplink('ota/dev1/tago/data/post', JSON.stringify({ variable: 'firmware_status', value: 'ok' })).kind, 'ignored');
  });

  it('tells a topic of another dialect from a message it has no use for', function () {
    assert.strictEqual(tago.parseUplink('v1/devices/me/telemetry', '{}').foreign, true);
    assert.strictEqual(tago.parseUplink('ota/dev1/tago/data/post', '{"variable":"firmware_block","value":1}').foreign, undefined);
  });
});
