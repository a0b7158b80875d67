'use strict';
const assert = require('assert');
const { match, fill } = require('../../../dist/core/dialects/topics');

// Topic templates: what a device's topic yields, and what a filled template says.
describe('topic templates', function () {
  it('read each placeholder, and a placeholder used twice only when both places agree', function () {
    assert.deepStrictEqual(match('v2/fw/request/{requestId}/chunk/{chunk}', 'v2/fw/request/7/chunk/12', { prefix: 'x' }), { requestId: '7', chunk: '12' });
    assert.deepStrictEqual(match('a/{x}/b/{x}', 'a/1/b/1', { prefix: 'x' }), { x: '1' });
    assert.strictEqual(match('a/{x}/b/{x}', 'a/1/b/2', { prefix: 'x' }), undefined);
    assert.strictEqual(match('a/{x}', 'a/1/extra', { prefix: 'x' }), undefined);
  });

  it('without a namespace, take the last level in front as the device unless the template names one', function () {
    assert.deepStrictEqual(match('v2/fw/request/{requestId}/chunk/{chunk}', 'ota/d9/v2/fw/request/3/chunk/4'), { requestId: '3', chunk: '4', device: 'd9' });
    assert.deepStrictEqual(match('{device}/x', 'gw/ns/dev/x'), { device: 'dev' });
    assert.deepStrictEqual(match('v2/fw/request/{requestId}/chunk/{chunk}', 'v2/fw/request/3/chunk/4'), { requestId: '3', chunk: '4' });
  });

  it('fill every placeholder and name the one missing', function () {
    assert.strictEqual(fill('{p}/v2/fw/response/{requestId}/chunk/{chunk}', { p: 'ota', requestId: '1', chunk: 0 }, 'x'), 'ota/v2/fw/response/1/chunk/0');
    assert.throws(() => fill('a/{device}/b', { device: '' }, 'thingsboard notice'), /thingsboard notice: the topic a\/\{device\}\/b needs \{device\}/);
  });
});
