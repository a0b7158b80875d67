import { generate, IPublishPacket, Packet } from 'mqtt-packet';

// A packet's bytes for the socket. mqtt-packet's generate() writes a PUBLISH as a dozen pieces
// and then copies every piece, the payload included, into one new buffer: for a 4 KiB firmware
// chunk, an allocation outside the buffer pool and a copy, on every chunk the gateway relays.
// The PUBLISH the gateway relays all day (a Buffer payload, no MQTT 5 properties) is encoded here
// in one small header instead, and a large payload stays the buffer the parser handed us, written
// after its header (the caller corks the socket, so both leave in one writev). Every other
// packet, and any PUBLISH out of the ordinary, goes through generate(). The bytes are the same
// as generate()'s: test/gateway/encode.spec.js compares them.

/** Payloads from this size on are written as they are, not copied behind their header. */
export const OWN_WRITE_FROM = 1024;

type Version = 3 | 4 | 5;

const MAX_REMAINING = 268_435_455;

/**
 * `packet` encoded for `version`: one buffer, or a PUBLISH header and its payload.
 * Throws what generate() throws for a packet that cannot be encoded.
 */
export function encode(packet: Packet, version: Version): Buffer[] {
  if (packet.cmd === 'publish') {
    const out = plainPublish(packet, version);
    if (out) return out;
  }
  // Without protocolVersion, generate() silently drops MQTT 5 properties and reason codes.
  return [generate(packet, { protocolVersion: version })];
}

/** A PUBLISH without properties (MQTT 5 writes their length, 0) as generate() lays it out, or null for generate(). */
function plainPublish(packet: IPublishPacket, version: Version): Buffer[] | null {
  const { topic, payload, messageId } = packet;
  const qos = packet.qos || 0;
  if (packet.properties !== undefined || typeof topic !== 'string' || !Buffer.isBuffer(payload)) return null;
  if (qos !== 0 && qos !== 1 && qos !== 2) return null;
  if (qos > 0 && !(Number.isInteger(messageId) && (messageId as number) >= 0 && (messageId as number) <= 0xffff)) return null;
  const topicBytes = Buffer.byteLength(topic);
  if (topicBytes > 0xffff) return null;
  const beforePayload = 2 + topicBytes + (qos > 0 ? 2 : 0) + (version === 5 ? 1 : 0);
  const remaining = beforePayload + payload.length;
  if (remaining > MAX_REMAINING) return null;
  const lengthBytes = remaining < 128 ? 1 : remaining < 16_384 ? 2 : remaining < 2_097_152 ? 3 : 4;
  const own = payload.length >= OWN_WRITE_FROM;
  const head = Buffer.allocUnsafe(1 + lengthBytes + beforePayload + (own ? 0 : payload.length));
  let pos = 0;
  head[pos++] = 0x30 | (packet.dup ? 0x08 : 0) | (qos << 1) | (packet.retain ? 1 : 0);
  for (let left = remaining; ; ) {
    const digit = left % 128;
    left = Math.floor(left / 128);
    head[pos++] = left > 0 ? digit | 0x80 : digit;
    if (left === 0) break;
  }
  head.writeUInt16BE(topicBytes, pos);
  pos += 2;
  pos += head.write(topic, pos, 'utf8');
  if (qos > 0) {
    head.writeUInt16BE(messageId as number, pos);
    pos += 2;
  }
  if (version === 5) head[pos++] = 0;
  if (own) return [head, payload];
  payload.copy(head, pos);
  return [head];
}
