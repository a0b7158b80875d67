import type { SmingDecoder } from './types';

// The patch version at the start of a Sming OTA message, read the way a device does.
// `sming` models OtaUpgradeMqtt's PayloadParser::getPatchVersion literally: in varint mode it
// adds the 7-bit groups without shifting them (so 200 = [0xc8, 0x01] reads as 0x48 + 1 = 73), and
// the parser flashes any patch >= the running one (an equal patch is flashed again, which loops a
// device on a retained message that nobody clears). `strict` is what the seed describes: a
// proper varint, and a flash only when the patch differs.

export interface PatchHeader {
  patch: number;
  /** Bytes the header took; the image starts here. */
  offset: number;
}

export function decodePatch(payload: Buffer, varint: boolean, decoder: SmingDecoder): PatchHeader | undefined {
  if (payload.length < 1) return undefined;
  if (!varint) return { patch: payload[0], offset: 1 };
  let patch = 0;
  let offset = 0;
  let more: number;
  do {
    const byte = payload[offset];
    // Bounded: a varint longer than 5 bytes would not fit the device's size_t either.
    if (decoder === 'sming') patch += byte & 0x7f;
    else patch += (byte & 0x7f) * 2 ** (7 * offset);
    more = byte & 0x80;
    offset++;
  } while (more && offset < payload.length && offset < 5);
  if (more) return undefined; // the version never ended: the device skips the message
  return { patch, offset };
}

/** Whether the device flashes an image with `patch` while running `current`. */
export function shouldFlash(patch: number, current: number, decoder: SmingDecoder): boolean {
  return decoder === 'sming' ? patch >= current : patch !== current;
}

/** The encoder a correct server uses (for tests and demos): one byte, or a standard varint. */
export function encodePatch(patch: number, varint: boolean): Buffer {
  if (!varint) {
    if (patch < 0 || patch > 255) throw new RangeError('one-byte patch versions go from 0 to 255');
    return Buffer.from([patch]);
  }
  const out: number[] = [];
  let v = patch;
  do {
    let byte = v & 0x7f;
    v = Math.floor(v / 128);
    if (v > 0) byte |= 0x80;
    out.push(byte);
  } while (v > 0);
  return Buffer.from(out);
}
