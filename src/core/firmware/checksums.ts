import { createHash } from 'crypto';
import type { Checksums } from '../types';

// ThingsBoard's checksum set, in the text its device clients compare against.
//
// ThingsBoard prints checksums with Guava's HashCode.toString(): the hash's bytes in order, as
// lower-case hex. For the integer hashes (CRC32, MURMUR3_32) Guava's bytes are little-endian, so
// CRC32 0x414fa339 prints "39a34f41". ThingsBoard's Python device SDK (sdk_utils.verify_checksum)
// rebuilds that text from the integer: it formats the integer as hex padded only to two digits,
// then reverses the bytes. For an integer whose top byte is zero that text is shorter than
// Guava's ("efcdab" for 0x00abcdef, where Guava prints "efcdab00"), and the SDK refuses the
// Guava form. We publish what the device computes: Guava's bytes with trailing zero bytes
// dropped (at least one byte kept). For the other 255 in 256 images the two forms are identical.

const CRC_TABLE = (() => {
  const table = new Uint32Array(256);
  for (let n = 0; n < 256; n++) {
    let c = n;
    for (let k = 0; k < 8; k++) c = c & 1 ? 0xedb88320 ^ (c >>> 1) : c >>> 1;
    table[n] = c >>> 0;
  }
  return table;
})();

export function crc32(data: Uint8Array): number {
  let crc = 0xffffffff;
  for (let i = 0; i < data.length; i++) crc = CRC_TABLE[(crc ^ data[i]) & 0xff] ^ (crc >>> 8);
  return (crc ^ 0xffffffff) >>> 0;
}

/** MurmurHash3 x86 32-bit, seed 0 by default (Guava murmur3_32, Python mmh3.hash). */
export function murmur3_32(data: Uint8Array, seed = 0): number {
  const c1 = 0xcc9e2d51;
  const c2 = 0x1b873593;
  let h = seed >>> 0;
  const blocks = data.length & ~3;
  for (let i = 0; i < blocks; i += 4) {
    let k = data[i] | (data[i + 1] << 8) | (data[i + 2] << 16) | (data[i + 3] << 24);
    k = Math.imul(k, c1);
    k = (k << 15) | (k >>> 17);
    k = Math.imul(k, c2);
    h ^= k;
    h = (h << 13) | (h >>> 19);
    h = (Math.imul(h, 5) + 0xe6546b64) | 0;
  }
  const rest = data.length & 3;
  if (rest > 0) {
    let k = 0;
    if (rest === 3) k ^= data[blocks + 2] << 16;
    if (rest >= 2) k ^= data[blocks + 1] << 8;
    k ^= data[blocks];
    k = Math.imul(k, c1);
    k = (k << 15) | (k >>> 17);
    k = Math.imul(k, c2);
    h ^= k;
  }
  h ^= data.length;
  h ^= h >>> 16;
  h = Math.imul(h, 0x85ebca6b);
  h ^= h >>> 13;
  h = Math.imul(h, 0xc2b2ae35);
  h ^= h >>> 16;
  return h >>> 0;
}

const MASK64 = (1n << 64n) - 1n;
const rotl64 = (x: bigint, r: bigint): bigint => ((x << r) | (x >> (64n - r))) & MASK64;
function fmix64(k: bigint): bigint {
  k ^= k >> 33n;
  k = (k * 0xff51afd7ed558ccdn) & MASK64;
  k ^= k >> 33n;
  k = (k * 0xc4ceb9fe1a85ec53n) & MASK64;
  k ^= k >> 33n;
  return k;
}

/** MurmurHash3 x64 128-bit, seed 0: the 16 digest bytes (h1 then h2, each little-endian), as Guava. */
export function murmur3_128(data: Uint8Array, seed = 0): Buffer {
  const c1 = 0x87c37b91114253d5n;
  const c2 = 0x4cf5ad432745937fn;
  let h1 = BigInt(seed);
  let h2 = BigInt(seed);
  const buf = Buffer.from(data.buffer, data.byteOffset, data.byteLength);
  const blocks = buf.length - (buf.length % 16);
  for (let i = 0; i < blocks; i += 16) {
    let k1 = buf.readBigUInt64LE(i);
    let k2 = buf.readBigUInt64LE(i + 8);
    k1 = (k1 * c1) & MASK64;
    k1 = rotl64(k1, 31n);
    k1 = (k1 * c2) & MASK64;
    h1 ^= k1;
    h1 = rotl64(h1, 27n);
    h1 = (h1 + h2) & MASK64;
    h1 = (h1 * 5n + 0x52dce729n) & MASK64;
    k2 = (k2 * c2) & MASK64;
    k2 = rotl64(k2, 33n);
    k2 = (k2 * c1) & MASK64;
    h2 ^= k2;
    h2 = rotl64(h2, 31n);
    h2 = (h2 + h1) & MASK64;
    h2 = (h2 * 5n + 0x38495ab5n) & MASK64;
  }
  const tail = buf.subarray(blocks);
  let k1 = 0n;
  let k2 = 0n;
  for (let i = tail.length - 1; i >= 8; i--) k2 |= BigInt(tail[i]) << BigInt((i - 8) * 8);
  for (let i = Math.min(tail.length, 8) - 1; i >= 0; i--) k1 |= BigInt(tail[i]) << BigInt(i * 8);
  if (tail.length > 8) {
    k2 = (k2 * c2) & MASK64;
    k2 = rotl64(k2, 33n);
    k2 = (k2 * c1) & MASK64;
    h2 ^= k2;
  }
  if (tail.length > 0) {
    k1 = (k1 * c1) & MASK64;
    k1 = rotl64(k1, 31n);
    k1 = (k1 * c2) & MASK64;
    h1 ^= k1;
  }
  const len = BigInt(buf.length);
  h1 ^= len;
  h2 ^= len;
  h1 = (h1 + h2) & MASK64;
  h2 = (h2 + h1) & MASK64;
  h1 = fmix64(h1);
  h2 = fmix64(h2);
  h1 = (h1 + h2) & MASK64;
  h2 = (h2 + h1) & MASK64;
  const out = Buffer.alloc(16);
  out.writeBigUInt64LE(h1, 0);
  out.writeBigUInt64LE(h2, 8);
  return out;
}

/** Guava's bytes with trailing zero bytes dropped: the text ThingsBoard's Python SDK computes. */
export function deviceHex(littleEndianBytes: Buffer): string {
  let end = littleEndianBytes.length;
  while (end > 1 && littleEndianBytes[end - 1] === 0) end--;
  return littleEndianBytes.subarray(0, end).toString('hex');
}

function uint32LE(value: number): Buffer {
  const b = Buffer.alloc(4);
  b.writeUInt32LE(value >>> 0);
  return b;
}

export function computeChecksums(data: Buffer): Checksums {
  const digest = (alg: string) => createHash(alg).update(data).digest('hex');
  return {
    md5: digest('md5'),
    sha256: digest('sha256'),
    sha384: digest('sha384'),
    sha512: digest('sha512'),
    crc32: deviceHex(uint32LE(crc32(data))),
    murmur3_32: deviceHex(uint32LE(murmur3_32(data))),
    murmur3_128: deviceHex(murmur3_128(data)),
  };
}

/** ThingsBoard's algorithm names (fw_checksum_algorithm) to our keys. */
export const THINGSBOARD_ALGORITHMS: Record<string, keyof Checksums> = {
  MD5: 'md5',
  SHA256: 'sha256',
  SHA384: 'sha384',
  SHA512: 'sha512',
  CRC32: 'crc32',
  MURMUR3_32: 'murmur3_32',
  MURMUR3_128: 'murmur3_128',
};
