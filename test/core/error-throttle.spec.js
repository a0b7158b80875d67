'use strict';
const assert = require('assert');
const { ErrorThrottle } = require('../../dist/core/error-throttle');

describe('error throttle', () => {
  it('reports the first error of a device, holds back the rest for the window, then says how many', () => {
    const t = new ErrorThrottle(10_000);
    assert.deepStrictEqual(t.admit('d1', 0), { report: true, held: 0 });
    for (let i = 1; i <= 5; i++) assert.deepStrictEqual(t.admit('d1', i * 1000), { report: false, held: i });
    assert.deepStrictEqual(t.admit('d2', 5000), { report: true, held: 0 }, 'another device is its own');
    assert.deepStrictEqual(t.admit('d1', 10_000), { report: true, held: 5 });
    assert.deepStrictEqual(t.admit('d1', 20_001), { report: true, held: 0 });
  });

  it('stays bounded whatever the number of device names', () => {
    const t = new ErrorThrottle(10_000, 100);
    for (let i = 0; i < 1000; i++) t.admit(`dev-${i}`, 0);
    assert.ok(t.admit('dev-5', 1).report, 'old entries were dropped, not kept forever');
  });
});
