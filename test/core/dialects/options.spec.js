'use strict';
const assert = require('assert');
const { optionsFromSettings } = require('../../../dist/core/dialects/options');

describe('node settings to dialect options', function () {
  it('reads the editor strings: namespace, single device, attributes, sizes', function () {
    assert.deepStrictEqual(optionsFromSettings({ prefix: 'ota/{device}', singleDevice: ' d1 ', product: 'P', maxChunkSize: '131072', tagoChunkSize: 1000, maxMessageKB: '256', smingEncoding: 'varint', smingPrefix: '/', tagoRetain: true, checksumAlgorithm: 'crc32', topics: '{"update":"fw/{device}"}' }), {
      prefix: 'ota/{device}/', device: 'd1', attributes: { product: 'P' }, maxChunkSize: 131072, chunkSize: 1000, maxMessageBytes: 262144,
      smingPatchEncoding: 'varint', smingPrefix: '/', retain: true, checksumAlgorithm: 'crc32', topics: { update: 'fw/{device}' },
    });
    assert.deepStrictEqual(optionsFromSettings({}), {});
  });

  it('refuses settings that would publish nonsense, saying which', function () {
    assert.throws(() => optionsFromSettings({ topics: '{oops' }), /topics must be JSON/);
    assert.throws(() => optionsFromSettings({ topics: '{"update":"a/#"}' }), /without wildcards/);
    assert.throws(() => optionsFromSettings({ prefix: 'ota/+/' }), /must not contain wildcards/);
    assert.throws(() => optionsFromSettings({ maxChunkSize: '-5' }), /maxChunkSize must be a positive whole number/);
    assert.throws(() => optionsFromSettings({ checksumAlgorithm: 'sha1' }), /checksum algorithm must be one of/);
  });
});
