'use strict';
const assert = require('assert');
const { thingsboard, dialectFor } = require('../../../dist/core/dialects');
const { firmware, device } = require('./helpers');

describe('thingsboard dialect', function () {
  const image = Buffer.from('hello firmware');
  const fw = firmware(image);
  const dev = device('tb1', 'thingsboard');

  it('is what dialectFor("thingsboard") returns, and dialectFor refuses unknown names', function () {
    assert.strictEqual(dialectFor('thingsboard'), thingsboard);
    assert.throws(() => dialectFor('zigbee'), /unknown dialect "zigbee"/);
  });

  it('announces the firmware as the six shared attributes with the exact size and SHA256', function () {
    const [out] = thingsboard.notice({ device: dev, firmware: fw, downloadUrl: () => '' });
    assert.strictEqual(out.topic, 'v1/devices/me/attributes');
    assert.deepStrictEqual(JSON.parse(out.payload), {
      fw_title: 'app', fw_version: '1.2.3', fw_tag: 'app 1.2.3', fw_size: image.length,
      fw_checksum_algorithm: 'SHA256', fw_checksum: fw.checksums.sha256,
    });
  });

  it('puts the namespace prefix in front of every topic and reads the device back from it', function () {
    const opts = { prefix: 'ota/{device}/' };
    assert.strictEqual(thingsboard.notice({ device: dev, firmware: fw, downloadUrl: () => '' }, opts)[0].topic, 'ota/tb1/v1/devices/me/attributes');
    assert.deepStrictEqual(thingsboard.uplinkFilters(opts), ['ota/+/v1/devices/me/attributes/request/+', 'ota/+/v1/devices/me/telemetry', 'ota/+/v2/fw/request/+/chunk/+']);
    assert.deepStrictEqual(thingsboard.parseUplink('ota/tb9/v2/fw/request/7/chunk/3', Buffer.from('1024'), opts),
      { kind: 'chunk-request', device: 'tb9', requestId: '7', index: 3, size: 1024 });
  });

  it('reads the device from a namespace even when none is configured (progress-parser, a forgotten setting)', function () {
    assert.strictEqual(thingsboard.parseUplink('ota/tb7/v2/fw/request/1/chunk/0', '').device, 'tb7');
    assert.strictEqual(thingsboard.parseUplink('a/b/ota/tb7/v1/devices/me/telemetry', '{"fw_state":"UPDATED"}').events[0].device, 'tb7');
    assert.strictEqual(thingsboard.parseUplink('ota/tb7/v1/devices/me/telemetry', '{"fw_state":"UPDATED"}', { prefix: 'gw/{device}/' }).kind, 'ignored');
    assert.strictEqual(thingsboard.parseUplink('v1/devices/me/telemetry', '{"fw_state":"UPDATED"}').events[0].device, '', 'unknown: the caller fills it');
  });

  it('takes the device from the node when the topic names none', function () {
    assert.deepStrictEqual(thingsboard.parseUplink('v2/fw/request/1/chunk/0', '', { device: 'solo' }), { kind: 'chunk-request', device: 'solo', requestId: '1', index: 0 });
    assert.strictEqual(thingsboard.parseUplink('v2/fw/request/1/chunk/0', '').kind, 'invalid');
  });

  it('refuses non-numeric and negative indices, chunk size 0, junk sizes and sizes over the cap', function () {
    const o = { device: 'd' };
    assert.match(thingsboard.parseUplink('v2/fw/request/1/chunk/abc', '10', o).error, /chunk index "abc"/);
    assert.match(thingsboard.parseUplink('v2/fw/request/1/chunk/-1', '10', o).error, /chunk index "-1"/);
    assert.match(thingsboard.parseUplink('v2/fw/request/1/chunk/0', '0', o).error, /chunk size 0/);
    assert.match(thingsboard.parseUplink('v2/fw/request/1/chunk/0', 'ten', o).error, /"ten" is not a positive integer/);
    assert.match(thingsboard.parseUplink('v2/fw/request/1/chunk/0', '65537', o).error, /over the limit of 65536/);
    assert.strictEqual(thingsboard.parseUplink('v2/fw/request/1/chunk/0', '131072', { device: 'd', maxChunkSize: 131072 }).size, 131072);
    assert.strictEqual(thingsboard.parseUplink('v2/fw/request/1/chunk/0', 4096, o).size, 4096); // mqtt in auto-detect
  });

  it('maps fw_state one to one, with fw_error as the message and current_fw_* as version and title', function () {
    const states = { DOWNLOADING: 'downloading', DOWNLOADED: 'downloaded', VERIFIED: 'verified', UPDATING: 'updating', UPDATED: 'updated', FAILED: 'failed' };
    for (const [tb, ours] of Object.entries(states)) {
      const u = thingsboard.parseUplink('v1/devices/me/telemetry', JSON.stringify({ fw_state: tb, current_fw_title: 'app', current_fw_version: '1.0.0' }), { device: 'd' });
      assert.strictEqual(u.kind, 'progress');
      assert.strictEqual(u.events[0].state, ours);
      assert.strictEqual(u.events[0].version, '1.0.0');
      assert.strictEqual(u.events[0].title, 'app');
    }
    const failed = thingsboard.parseUplink('v1/devices/me/telemetry', '{"fw_state":"FAILED","fw_error":"Checksum verification failed"}', { device: 'd' });
    assert.deepStrictEqual(failed.events[0].error, { code: 'fw_error', message: 'Checksum verification failed' });
  });

  it('reads telemetry as a list, with or without ts/values, and ignores telemetry without firmware keys', function () {
    const u = thingsboard.parseUplink('v1/devices/me/telemetry', JSON.stringify([{ ts: 1700000000000, values: { fw_state: 'DOWNLOADING' } }, { fw_state: 'DOWNLOADED' }]), { device: 'd' });
    assert.deepStrictEqual(u.events.map((e) => e.state), ['downloading', 'downloaded']);
    assert.notStrictEqual(u.events[0].at, new Date(1700000000000).toISOString(), 'stamped with our clock, not the device\'s');
    assert.strictEqual(thingsboard.parseUplink('v1/devices/me/telemetry', '{"temperature":21}', { device: 'd' }).kind, 'ignored');
    assert.match(thingsboard.parseUplink('v1/devices/me/telemetry', '{"fw_state":', { device: 'd' }).error, /malformed JSON/);
    assert.strictEqual(thingsboard.parseUplink('v1/devices/me/telemetry', '{"current_fw_version":"1.0.0"}', { device: 'd' }).events[0].state, 'notified');
  });

  it('answers an attribute request with only the keys asked for, under "shared"', function () {
    const req = thingsboard.parseUplink('v1/devices/me/attributes/request/5', '{"sharedKeys":"fw_title,fw_version,colour"}', { device: 'd' });
    assert.deepStrictEqual(req, { kind: 'attribute-request', device: 'd', requestId: '5', keys: ['fw_title', 'fw_version', 'colour'] });
    const out = thingsboard.attributeReply(req, fw);
    assert.strictEqual(out.topic, 'v1/devices/me/attributes/response/5');
    assert.deepStrictEqual(JSON.parse(out.payload), { shared: { fw_title: 'app', fw_version: '1.2.3' } });
    assert.deepStrictEqual(JSON.parse(thingsboard.attributeReply(req, undefined).payload), { shared: {} });
  });

  it('unassigns with {"deleted":[...]} naming the six keys', function () {
    const [out] = thingsboard.clear(dev, fw);
    assert.deepStrictEqual(JSON.parse(out.payload), { deleted: ['fw_title', 'fw_version', 'fw_tag', 'fw_size', 'fw_checksum_algorithm', 'fw_checksum'] });
  });

  it('replies with the raw bytes on the response topic, and errors on v2/fw/error', function () {
    const bytes = image.subarray(0, 4);
    const out = thingsboard.chunkReply({ kind: 'chunk-request', device: 'd', requestId: '3', index: 2 }, bytes);
    assert.strictEqual(out.topic, 'v2/fw/response/3/chunk/2');
    assert.strictEqual(out.payload, bytes);
    assert.deepStrictEqual(thingsboard.errorReply('d', 'nope', { prefix: 'ota/{device}/' }), [{ topic: 'ota/d/v2/fw/error', payload: 'nope', qos: 0, retain: false }]);
  });

  it('reads an empty current_fw_version as no version at all', function () {
    const u = thingsboard.parseUplink('v1/devices/me/telemetry', '[{"current_fw_version":""}]', { device: 'd' });
    assert.ok(u.kind === 'ignored' || u.events.every((e) => e.version === undefined), JSON.stringify(u));
  });
});
