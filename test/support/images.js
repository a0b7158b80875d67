'use strict';
// Test images: deterministic bytes, and ESP-IDF application images built the way esptool lays them out.
const crypto = require('crypto');
const fs = require('fs');
const os = require('os');
const path = require('path');

/** Deterministic pseudo-random bytes, so a failing test shows the same image every run. */
function imageOf(size, seed = 1) {
  const out = Buffer.alloc(size);
  for (let off = 0, n = 0; off < size; off += 32, n++) {
    crypto.createHash('sha256').update(`${seed}:${n}`).digest().copy(out, off, 0, Math.min(32, size - off));
  }
  return out;
}

/** An ESP-IDF app image: esp_image_header_t (0xE9), a segment header, then esp_app_desc_t at 0x20. */
function espImage({ projectName = 'blink', version = '1.2.3', body = 4096 } = {}) {
  const img = Buffer.concat([Buffer.alloc(0x20 + 256), imageOf(body, 7)]);
  img.fill(0, 0, 0x20 + 256);
  img[0] = 0xe9;
  img[1] = 3; // segment count
  img.writeUInt32LE(0x3f400020, 24); // first segment load address
  img.writeUInt32LE(256, 28);
  img.writeUInt32LE(0xabcd5432, 0x20);
  img.write(version, 0x20 + 16, 'utf8');
  img.write(projectName, 0x20 + 48, 'utf8');
  img.write('12:00:00', 0x20 + 80, 'utf8');
  img.write('Nov 23 2026', 0x20 + 96, 'utf8');
  img.write('v5.3.1', 0x20 + 112, 'utf8');
  return img;
}

function sha256(buf) {
  return crypto.createHash('sha256').update(buf).digest('hex');
}

function tempDir(prefix = 'mqtt-ota-test-') {
  return fs.mkdtempSync(path.join(os.tmpdir(), prefix));
}

module.exports = { imageOf, espImage, sha256, tempDir };
