import { createHash } from 'crypto';
import { crc32, murmur3_32, murmur3_128 } from '../core/firmware/checksums';

// How a ThingsBoard device checks fw_checksum: a port of the Python device SDK's
// sdk_utils.verify_checksum, kept literal on purpose (it is the device's view, not ours).
// For CRC32 and MURMUR3 the SDK formats the integer as upper-case hex padded to at least two
// digits (`f'{x:0>2X}'`), prepends a '0' if the length is odd, reverses the byte pairs and
// lower-cases the result. So an integer with a zero top byte gives a text shorter than Guava's
// HashCode.toString(): a server must publish that short form or the device refuses the image.
// SHA*/MD5 are plain lower-case hex. The comparison is exact (no case folding), as in the SDK.

/** The SDK's text for an unsigned integer hash: padded hex, byte pairs reversed, lower case. */
export function sdkReversedHex(value: bigint): string {
  let hex = value.toString(16).toUpperCase();
  if (hex.length < 2) hex = hex.padStart(2, '0');
  if (hex.length % 2 !== 0) hex = '0' + hex;
  const pairs: string[] = [];
  for (let i = 0; i < hex.length; i += 2) pairs.push(hex.slice(i, i + 2));
  return pairs.reverse().join('').toLowerCase();
}

/** mmh3.hash128(data, signed=False): h2 << 64 | h1, i.e. the 16 digest bytes read little-endian. */
function murmur128Integer(data: Buffer): bigint {
  const digest = murmur3_128(data);
  return BigInt('0x' + Buffer.from(digest).reverse().toString('hex'));
}

/** The checksum text the SDK computes for `alg`, or undefined for an algorithm it does not know. */
export function deviceChecksum(data: Buffer, alg: string): string | undefined {
  switch (alg.toLowerCase()) {
    case 'sha256':
    case 'sha384':
    case 'sha512':
    case 'md5':
      return createHash(alg.toLowerCase()).update(data).digest('hex');
    case 'murmur3_32':
      return sdkReversedHex(BigInt(murmur3_32(data)));
    case 'murmur3_128':
      return sdkReversedHex(murmur128Integer(data));
    case 'crc32':
      return sdkReversedHex(BigInt(crc32(data)));
    default:
      return undefined;
  }
}

/** verify_checksum(firmware_data, checksum_alg, checksum): false when anything is missing or unknown. */
export function verifyChecksum(data: Buffer | undefined, alg: unknown, checksum: unknown): boolean {
  if (!data || typeof checksum !== 'string' || typeof alg !== 'string') return false;
  const mine = deviceChecksum(data, alg);
  return mine !== undefined && mine === checksum;
}
