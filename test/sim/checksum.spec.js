'use strict';
const assert = require('assert');
const { verifyChecksum, deviceChecksum, sdkReversedHex } = require('../../dist/sim');
const { crc32, computeChecksums } = require('../../dist/core/firmware/checksums');
const { decodePatch, encodePatch, shouldFlash } = require('../../dist/sim');

const FOX = Buffer.from('The quick brown fox jumps over the lazy dog');

/** Some small input whose CRC32 has a zero top byte. */
function zeroTopByteInput() {
  for (let i = 0; i < 1_000_000; i++) {
    const b = Buffer.from(`image-${i}`);
    if (crc32(b) >>> 24 === 0) return b;
  }
  throw new Error('none found');
}

describe('sim: the ThingsBoard device checksum check (Python SDK verify_checksum)', () => {
  it('accepts CRC32 of the fox sentence as Guava prints it, 39a34f41', () => {
    assert.strictEqual(crc32(FOX), 0x414fa339);
    assert.strictEqual(deviceChecksum(FOX, 'CRC32'), '39a34f41');
    assert.strictEqual(verifyChecksum(FOX, 'CRC32', '39a34f41'), true);
    assert.strictEqual(verifyChecksum(FOX, 'CRC32', '414fa339'), false);
  });

  it('formats integers the SDK way: padded to two digits, odd length gets a 0, bytes reversed', () => {
    assert.strictEqual(sdkReversedHex(0x5n), '05');
    assert.strictEqual(sdkReversedHex(0xabcn), 'bc0a');
    assert.strictEqual(sdkReversedHex(0x00abcdefn), 'efcdab');
    assert.strictEqual(sdkReversedHex(0x12345678n), '78563412');
  });

  it('refuses the Guava form when the CRC32 top byte is zero, and accepts the short form', () => {
    const data = zeroTopByteInput();
    const value = crc32(data);
    const guava = Buffer.alloc(4);
    guava.writeUInt32LE(value);
    const guavaText = guava.toString('hex');
    assert.ok(guavaText.endsWith('00'));
    assert.strictEqual(verifyChecksum(data, 'CRC32', guavaText), false);
    assert.strictEqual(verifyChecksum(data, 'CRC32', guavaText.slice(0, -2)), true);
    // The repository publishes the short form (computeChecksums): a device accepts it.
    assert.strictEqual(verifyChecksum(data, 'CRC32', computeChecksums(data).crc32), true);
  });

  it('checks MURMUR3_32 as mmh3 does (mmh3.hash("foo") = -156908512)', () => {
    const foo = Buffer.from('foo');
    assert.strictEqual((-156908512 >>> 0).toString(16), 'f6a5c420');
    assert.strictEqual(deviceChecksum(foo, 'MURMUR3_32'), '20c4a5f6');
  });

  it('accepts every checksum the repository publishes, for every algorithm', () => {
    const data = Buffer.from('firmware image bytes '.repeat(300));
    const sums = computeChecksums(data);
    const names = { MD5: 'md5', SHA256: 'sha256', SHA384: 'sha384', SHA512: 'sha512', CRC32: 'crc32', MURMUR3_32: 'murmur3_32', MURMUR3_128: 'murmur3_128' };
    for (const [alg, key] of Object.entries(names)) assert.strictEqual(verifyChecksum(data, alg, sums[key]), true, alg);
  });

  it('compares exactly: upper-case hex, a missing checksum or an unknown algorithm fail', () => {
    const sums = computeChecksums(FOX);
    assert.strictEqual(verifyChecksum(FOX, 'SHA256', sums.sha256.toUpperCase()), false);
    assert.strictEqual(verifyChecksum(FOX, 'SHA256', undefined), false);
    assert.strictEqual(verifyChecksum(FOX, 'SHA1', 'x'), false);
    assert.strictEqual(verifyChecksum(FOX, 'sha256', sums.sha256), true);
  });
});

describe('sim: the Sming patch-version decoder', () => {
  it('reads a varint above 127 wrongly in sming mode (200 reads as 73), right in strict mode', () => {
    const payload = Buffer.concat([encodePatch(200, true), Buffer.from('image')]);
    assert.deepStrictEqual(decodePatch(payload, true, 'sming'), { patch: 73, offset: 2 });
    assert.deepStrictEqual(decodePatch(payload, true, 'strict'), { patch: 200, offset: 2 });
  });

  it('reads one-byte versions in both modes', () => {
    const payload = Buffer.concat([encodePatch(200, false), Buffer.from('image')]);
    assert.deepStrictEqual(decodePatch(payload, false, 'sming'), { patch: 200, offset: 1 });
    assert.throws(() => encodePatch(256, false), /0 to 255/);
  });

  it('flashes an equal patch again in sming mode, never in strict mode', () => {
    assert.strictEqual(shouldFlash(3, 3, 'sming'), true);
    assert.strictEqual(shouldFlash(2, 3, 'sming'), false);
    assert.strictEqual(shouldFlash(3, 3, 'strict'), false);
    assert.strictEqual(shouldFlash(2, 3, 'strict'), true);
  });

  it('skips a message whose varint never ends', () => {
    assert.strictEqual(decodePatch(Buffer.from([0x80, 0x80]), true, 'sming'), undefined);
    assert.strictEqual(decodePatch(Buffer.alloc(0), true, 'strict'), undefined);
  });
});
