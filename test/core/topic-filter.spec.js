'use strict';
const assert = require('assert');
const { matches, matcher, filterRegExp } = require('../../dist/core/topic-filter');

// MQTT filter matching: the split-based check and the compiled one must agree on every pair.

describe('topic filters', function () {
  const filters = ['#', '+', 'a/#', 'a/+', '+/b', 'a/+/c', 'a/b', '+/+', 'ota/+/v2/fw/request/+/chunk/+', 'a.b/+', '$SYS/#', 'a/+/#'];
  const topics = ['a', 'a/b', 'a/b/c', 'a/', '/b', 'x/b', 'a//c', 'a.b/x', 'aXb/x', '$SYS/load', '$x', 'ota/d1/v2/fw/request/7/chunk/0', 'ota/d1/v2/fw/request/7/chunk/0/x', ''];

  it('match the MQTT rules: + one level (maybe empty), # the parent and everything below, no wildcard start for $ topics', function () {
    assert.ok(matches('a/#', 'a'));
    assert.ok(matches('a/+/c', 'a//c'));
    assert.ok(!matches('#', '$SYS/load'));
    assert.ok(matches('$SYS/#', '$SYS/load'));
    assert.ok(!matches('a.b/+', 'aXb/x'), 'a dot is a dot');
  });

  it('compiled into one expression, agree with matches() on every filter and topic', function () {
    for (const f of filters) {
      const re = filterRegExp([f]);
      for (const t of topics) assert.strictEqual(re.test(t), matches(f, t), `${f} vs ${JSON.stringify(t)}`);
    }
    const several = filterRegExp(['ota/+/v2/fw/request/+/chunk/+', 'ota/+/tago/data/post']);
    assert.ok(several.test('ota/t1/tago/data/post'));
    assert.ok(several.test('ota/d1/v2/fw/request/7/chunk/0'));
    assert.ok(!several.test('ota/d1/v1/devices/me/telemetry'));
  });

  it('compiled once per filter (matcher(), the gateway ACL rules and fences), agree with matches() on every filter and topic', function () {
    const odd = ['a/\n', 'a/b\nc', 'a/\u2028', '\n/b'];
    for (const f of [...filters, 'biotz/1/0/c.1/d+1/#', '$ota/update/+/+', 'a/(x)/[y]', '/a/app/u/#']) {
      const test = matcher(f);
      for (const t of [...topics, ...odd, 'biotz/1/0/c.1/d+1/x', 'biotz/1/0/cX1/d+1/x', '$ota/update/P/d', 'a/(x)/[y]', '/a/app/u/1.2']) {
        assert.strictEqual(test(t), matches(f, t), `${f} vs ${JSON.stringify(t)}`);
      }
    }
  });

  it('agree on topics holding line breaks (\\n, \\r, \\u2028, \\u2029): a level is anything but a slash', function () {
    const odd = ['a/\n', 'a/b\nc', 'a/\r/c', 'a/\u2028', '\n/b', 'a/b/\u2029x', 'ota/d\n1/v2/fw/request/7/chunk/0', 'a\nb/x', 'a/b\n/c/d'];
    for (const f of filters) {
      const re = filterRegExp([f]);
      for (const t of odd) assert.strictEqual(re.test(t), matches(f, t), `${f} vs ${JSON.stringify(t)}`);
    }
    assert.ok(filterRegExp(['a/#']).test('a/b\nc'), 'a/# reaches a topic with a newline below a/');
    assert.ok(!filterRegExp(['a/b']).test('a/b\n'), 'a trailing newline is part of the level');
  });
});
