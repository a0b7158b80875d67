'use strict';
const assert = require('assert');
const mqtt = require('mqtt-packet');
const { encode, OWN_WRITE_FROM } = require('../../dist/gateway/encode');

// The gateway encodes the PUBLISH it relays itself (src/gateway/encode.ts): the bytes must be
// mqtt-packet's, to the bit, for every version, QoS, flag, topic and payload size; anything out of
// the ordinary must still go through mqtt-packet (and fail the way it fails).

const bytes = (pieces) => Buffer.concat(pieces);

describe('ota-gateway: PUBLISH encoding', function () {
  const topics = ['v2/fw/response/1/chunk/0', 'a', '', 'ü/€/𝄞', 'x'.repeat(300), '$ota/update/P/d'];
  // Remaining lengths across every size of the variable length: 1, 2, 3 (and, below, 4) bytes.
  const sizes = [0, 1, 100, 127, 128, OWN_WRITE_FROM - 1, OWN_WRITE_FROM, 4096, 16_383, 16_384, 70_000];

  it('writes what mqtt-packet writes, for MQTT 3.1.1 and 5, QoS 0-2, dup, retain, every topic and payload size', function () {
    let checked = 0;
    for (const protocolVersion of [4, 5]) {
      for (const qos of [0, 1, 2]) {
        for (const topic of topics) {
          for (const size of sizes) {
            for (const [dup, retain] of [[false, false], [true, false], [false, true], [true, true]]) {
              const packet = { cmd: 'publish', topic, payload: Buffer.alloc(size, size & 0xff), qos, dup, retain, messageId: qos ? (size % 65535) + 1 : undefined };
              const ours = bytes(encode(packet, protocolVersion));
              assert.ok(ours.equals(mqtt.generate(packet, { protocolVersion })), `v${protocolVersion} qos ${qos} dup ${dup} retain ${retain} topic ${topic.length} payload ${size}`);
              checked++;
            }
          }
        }
      }
    }
    assert.strictEqual(checked, 2 * 3 * topics.length * sizes.length * 4);
    const huge = { cmd: 'publish', topic: 't/1', payload: Buffer.alloc(2_097_152, 1), qos: 1, messageId: 9, dup: false, retain: false };
    for (const protocolVersion of [4, 5]) assert.ok(bytes(encode(huge, protocolVersion)).equals(mqtt.generate(huge, { protocolVersion })), `4-byte length, v${protocolVersion}`);
  });

  it('reads back as the same message, and writes a large payload as its own buffer (no copy)', function () {
    const payload = Buffer.alloc(4096, 7);
    const packet = { cmd: 'publish', topic: 'v2/fw/response/1/chunk/3', payload, qos: 1, messageId: 65535, dup: false, retain: false };
    const pieces = encode(packet, 5);
    assert.strictEqual(pieces.length, 2);
    assert.strictEqual(pieces[1], payload);
    const parser = mqtt.parser({ protocolVersion: 5 });
    let got;
    parser.on('packet', (p) => (got = p));
    parser.parse(bytes(pieces));
    assert.strictEqual(got.topic, packet.topic);
    assert.strictEqual(got.messageId, 65535);
    assert.ok(got.payload.equals(payload));
    assert.strictEqual(encode({ ...packet, payload: Buffer.alloc(10) }, 5).length, 1, 'a small payload is copied behind its header');
  });

  it('leaves properties, string payloads and malformed packets to mqtt-packet', function () {
    const base = { cmd: 'publish', topic: 't', payload: Buffer.from('x'), qos: 1, messageId: 7, dup: false, retain: false };
    for (const packet of [
      { ...base, properties: { contentType: 'text/plain', userProperties: { a: 'b' } } },
      { ...base, payload: 'a string' },
      { ...base, qos: 0, messageId: undefined, properties: { topicAlias: 3 } },
    ]) {
      assert.ok(bytes(encode(packet, 5)).equals(mqtt.generate(packet, { protocolVersion: 5 })), JSON.stringify(packet));
    }
    // mqtt-packet refuses a QoS 1 PUBLISH without a packet id: so does encode().
    assert.throws(() => encode({ ...base, messageId: undefined }, 5), /messageId/);
  });
});
