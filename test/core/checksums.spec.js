'use strict';
const assert = require('assert');
const { computeChecksums, crc32, murmur3_32, murmur3_128, deviceHex } = require('../../dist/core/firmware/checksums');

const FOX = Buffer.from('The quick brown fox jumps over the lazy dog');
const FOX_DOT = Buffer.from('The quick brown fox jumps over the lazy dog.');

// ThingsBoard's Python device SDK, sdk_utils.verify_checksum, for the integer hashes: the
// integer as hex padded to two digits, bytes reversed, lower case. Ported line by line.
function pythonSdkForm(value) {
  let hex = value.toString(16).toUpperCase().padStart(2, '0');
  if (hex.length % 2 !== 0) hex = '0' + hex;
  const pairs = [];
  for (let i = 0; i < hex.length; i += 2) pairs.push(hex.slice(i, i + 2));
  return pairs.reverse().join('').toLowerCase();
}
// mmh3.hash128(signed=False) is the 16 digest bytes read as a little-endian integer.
const uint128LE = (bytes) => BigInt('0x' + Buffer.from(bytes).reverse().toString('hex'));

describe('checksums', () => {
  it('matches the published digests for "The quick brown fox…" (Guava\'s test vectors)', () => {
    const c = computeChecksums(FOX);
    assert.strictEqual(c.md5, '9e107d9d372bb6826bd81d3542a419d6');
    assert.strictEqual(c.sha256, 'd7a8fbb307d7809469ca9abcb0082e4f8d5651e46d3cdb762d02d0bf37c9e592');
    assert.strictEqual(c.sha384, 'ca737f1014a48f4c0b6dd43cb177b0afd9e5169367544c494011e3317dbf9a509cb1e5dc1e85a941bbee3d7f2afbc9b1');
    assert.strictEqual(c.sha512, '07e547d9586f6a73f73fbac0435ed76951218fb7d0c8d788a309d785436bbb642e93a252a954f23912547d1e8a3b5ed6e1bfd7097821233fa0538f3db854fee6');
    assert.strictEqual(c.crc32, '39a34f41'); // CRC32 0x414fa339, printed little-endian as Guava does
    assert.strictEqual(c.murmur3_32, '23f74f2e');
    assert.strictEqual(c.murmur3_128, '6c1b07bc7bbc4be347939ac4a93c437a');
  });

  it('matches Guava for the sentence with a full stop, and for the empty input', () => {
    assert.strictEqual(deviceHex(murmur3_128(FOX_DOT)), 'c902e99e1f4899cde7b68789a3a15d69');
    assert.strictEqual(murmur3_32(FOX_DOT).toString(16), 'd5c48bfc');
    assert.strictEqual(murmur3_128(Buffer.alloc(0)).toString('hex'), '00000000000000000000000000000000');
    assert.strictEqual(murmur3_32(Buffer.alloc(0)), 0);
    assert.strictEqual(crc32(Buffer.from('123456789')), 0xcbf43926);
  });

  it('matches the Python mmh3 package\'s documented values (what ThingsBoard\'s SDK runs)', () => {
    // mmh3 README: hash("foo") == -156908512, hash64("foo") == (-2129773440516405919, 9128664383759220103)
    assert.strictEqual(murmur3_32(Buffer.from('foo')) | 0, -156908512);
    const d = murmur3_128(Buffer.from('foo'));
    assert.strictEqual(d.readBigInt64LE(0), -2129773440516405919n);
    assert.strictEqual(d.readBigInt64LE(8), 9128664383759220103n);
    assert.strictEqual(murmur3_32(Buffer.from('Hello, world!')), 0xc0363e43);
  });

  it('publishes CRC32 and MURMUR3 exactly as ThingsBoard\'s Python SDK recomputes them', () => {
    // Random images, plus ones whose hash has a zero top byte (where Guava's text and the SDK's
    // differ): the SDK must accept what we publish for every one of them.
    let zeroTop = 0;
    for (let i = 0; i < 3000; i++) {
      const data = Buffer.from(`image-${i}`);
      const c = computeChecksums(data);
      assert.strictEqual(c.crc32, pythonSdkForm(crc32(data)), `crc32 of image-${i}`);
      assert.strictEqual(c.murmur3_32, pythonSdkForm(murmur3_32(data)), `murmur3_32 of image-${i}`);
      assert.strictEqual(c.murmur3_128, pythonSdkForm(uint128LE(murmur3_128(data))), `murmur3_128 of image-${i}`);
      if (crc32(data) >>> 24 === 0) zeroTop++;
    }
    assert.ok(zeroTop > 0, 'the sample includes CRC32 values with a zero top byte');
  });

  it('drops only trailing zero bytes, keeping at least one', () => {
    assert.strictEqual(deviceHex(Buffer.from([0xef, 0xcd, 0xab, 0x00])), 'efcdab');
    assert.strictEqual(deviceHex(Buffer.from([0x00, 0x00, 0x00, 0x00])), '00');
    assert.strictEqual(deviceHex(Buffer.from([0x00, 0x12, 0x00, 0x34])), '00120034');
  });
});
