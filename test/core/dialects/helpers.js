'use strict';
// Records shaped like the repository's, for pure dialect specs.
const { computeChecksums } = require('../../../dist/core/firmware/checksums');

function firmware(image, title = 'app', version = '1.2.3') {
  return { id: 'fw1', title, version, tag: `${title} ${version}`, size: image.length, checksums: computeChecksums(image), source: 'msg', createdAt: '2026-01-01T00:00:00.000Z' };
}

function device(id, dialect, attributes = {}) {
  return { id, dialect, attributes, tags: [], createdAt: '2026-01-01T00:00:00.000Z' };
}

module.exports = { firmware, device };
