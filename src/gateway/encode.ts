import * as mqtt from 'mqtt-packet';

// A packet's bytes for the socket. mqtt-packet's generate() copies every piece, the payload
// included, into one new buffer: for a 4 KiB firmware chunk that is an allocation outside the
// buffer pool and a copy per chunk, on every chunk the gateway relays. Here a large PUBLISH
// payload stays the buffer the parser handed us and goes out as a write of its own, after its
// header (the caller corks the socket, so both leave in one writev).

/** Payloads from this size on are written as they are, not copied behind their header. */
export const OWN_WRITE_FROM = 1024;

type Version = 3 | 4 | 5;

/** Collects writeToStream's pieces; a failing packet throws, as generate() does. */
class Pieces {
  readonly list: Array<Buffer | string> = [];
  write(chunk: Buffer | string): boolean {
    this.list.push(chunk);
    return true;
  }
  destroy(err?: Error): void {
    if (err) throw err;
  }
}

/**
 * `packet` encoded for `version`: one buffer, or a header and the PUBLISH payload itself.
 * Throws what generate() throws for a packet that cannot be encoded.
 */
export function encode(packet: mqtt.Packet, version: Version): Buffer[] {
  const payload = packet.cmd === 'publish' ? packet.payload : undefined;
  // Without protocolVersion, generate() silently drops MQTT 5 properties and reason codes.
  const opts = { protocolVersion: version };
  if (!Buffer.isBuffer(payload) || payload.length < OWN_WRITE_FROM) return [mqtt.generate(packet, opts)];
  const pieces = new Pieces();
  // writeToStream's stream type is a net.Socket; it only ever calls write() and destroy() on it.
  if (!mqtt.writeToStream(packet, pieces as unknown as Parameters<typeof mqtt.writeToStream>[1], opts)) throw new Error(`cannot encode ${packet.cmd}`);
  const list = pieces.list;
  // The payload is the last piece written (mqtt-packet writeToStream.js, publish()).
  if (list[list.length - 1] !== payload) return [concat(list)];
  list.pop();
  return [concat(list), payload];
}

function concat(list: Array<Buffer | string>): Buffer {
  return Buffer.concat(list.map((p) => (typeof p === 'string' ? Buffer.from(p) : p)));
}
