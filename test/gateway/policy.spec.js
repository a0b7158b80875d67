'use strict';
const assert = require('assert');
const { matches, intersects, contains, meet, policyFor, NamespacePolicy, IncompleteIdentityError } = require('../../dist/gateway');

// The topic arithmetic under the gateway's rewriting and ACLs.

describe('ota-gateway topic rules', function () {
  it('matches filters as MQTT does, $-topics excepted from leading wildcards', function () {
    assert.ok(matches('v2/fw/response/+/chunk/+', 'v2/fw/response/1/chunk/0'));
    assert.ok(!matches('v2/fw/response/+', 'v2/fw/response/1/chunk/0'));
    assert.ok(matches('a/#', 'a'));
    assert.ok(!matches('#', '$ota/update/p/d'));
    assert.ok(matches('$ota/update/+/d', '$ota/update/p/d'));
  });

  it('sees which filters reach the ThingsBoard chunk topics', function () {
    for (const f of ['#', 'v2/#', 'v2/fw/response/#', '+/fw/response/+/chunk/+', 'v2/fw/response/7/chunk/#']) {
      assert.ok(intersects(f, 'v2/fw/response/+/chunk/+'), f);
    }
    for (const f of ['v2/fw/response/+', 'v2/fw/request/#', 'v1/devices/me/#', 'v2/fw/response/+/chunk']) {
      assert.ok(!intersects(f, 'v2/fw/response/+/chunk/+'), f);
    }
  });

  it('keeps a subscription inside an ACL rule only when every topic it matches is granted', function () {
    assert.ok(contains('biotz/1/0/c/d/#', 'biotz/1/0/c/d/subscribe/+/update'));
    assert.ok(!contains('biotz/1/0/c/d/#', 'biotz/1/0/+/d/#'));
    assert.ok(!contains('biotz/1/0/c/d/#', 'biotz/1/0/c/#'));
    assert.ok(contains('a/+/u/#', 'a/lamp/u/1.2'));
    assert.ok(!contains('a/lamp/u/#', '#'));
  });

  it('never lets a leading wildcard contain a $ level (MQTT 3.1.1 4.7.2)', function () {
    assert.ok(!contains('+/x/#', '$share/x/#'));
    assert.ok(!contains('#', '$SYS/#'));
    assert.ok(contains('$ota/update/P/d', '$ota/update/P/d'));
  });

  it('finds the topics two filters share', function () {
    assert.strictEqual(meet('a/+/u/#', 'a/demo/#'), 'a/demo/u/#');
    assert.strictEqual(meet('biotz/1/0/+/+/#', '+/1/#'), 'biotz/1/0/+/+/#');
    assert.strictEqual(meet('a/#', 'a'), 'a');
    assert.strictEqual(meet('a/+', 'b/+'), null);
    assert.strictEqual(meet('#', '$share/g/#'), null);
  });

  it('refuses to build rules with a placeholder the device lacks, and fills it from the gateway', function () {
    assert.throws(() => policyFor({ deviceId: 'd1', dialect: 'tencent' }, { namespace: 'ota' }), (err) => err instanceof IncompleteIdentityError && err.attribute === 'product');
    const p = policyFor({ deviceId: 'd1', dialect: 'tencent' }, { namespace: 'ota', attributes: { product: 'P' } });
    assert.strictEqual(p.subscribe('$ota/update/P/d1'), '$ota/update/P/d1');
    assert.strictEqual(p.subscribe('+/d1/#'), null);
    // The record wins over the gateway's default.
    const q = policyFor({ deviceId: 'd1', dialect: 'tencent', attributes: { product: 'Q' } }, { namespace: 'ota', attributes: { product: 'P' } });
    assert.strictEqual(q.publish('Q/d1/x'), 'Q/d1/x');
  });

  it('grants no $share, $SYS or $delayed topic even where custom rules name them', function () {
    const rules = { tencent: [{ pattern: '$share/{device}/#', subscribe: true, publish: true }, { pattern: '$delayed/#', subscribe: true, publish: true }] };
    const p = policyFor({ deviceId: 'd1', dialect: 'tencent', attributes: { product: 'P' } }, { namespace: 'ota', aclRules: rules });
    assert.strictEqual(p.subscribe('$share/d1/#'), null);
    assert.strictEqual(p.publish('$delayed/1/a/demo/u/1.0'), null);
  });

  it('keeps a device out of every other device\'s space and every notice, whatever its topics spell', function () {
    // Product `a`, device `demo`: its own `a/demo/#` holds the Sming notices of app `demo`.
    const p = policyFor({ deviceId: 'demo', dialect: 'tencent', attributes: { product: 'a' } }, { namespace: 'ota' });
    assert.strictEqual(p.publish('a/demo/u/1.0'), null);
    assert.strictEqual(p.subscribe('a/demo/#'), null);
    assert.strictEqual(p.publish('a/demo/status'), 'a/demo/status');
    // Product `ota`: the ThingsBoard/TagoIO namespaces are nobody's but their devices'.
    const o = policyFor({ deviceId: 'x', dialect: 'tencent', attributes: { product: 'ota' } }, { namespace: 'ota' });
    assert.strictEqual(o.subscribe('ota/x/#'), null);
  });

  it('namespaces ThingsBoard and TagoIO devices and restores their topics on the way down', function () {
    const p = policyFor({ deviceId: 'd1', dialect: 'thingsboard' }, { namespace: 'ota' });
    assert.ok(p instanceof NamespacePolicy);
    assert.strictEqual(p.publish('v1/devices/me/telemetry'), 'ota/d1/v1/devices/me/telemetry');
    assert.strictEqual(p.subscribe('#'), 'ota/d1/#');
    assert.strictEqual(p.down('ota/d1/v2/fw/response/1/chunk/0'), 'v2/fw/response/1/chunk/0');
    assert.strictEqual(p.down('ota/d2/v2/fw/response/1/chunk/0'), null);
    assert.strictEqual(p.publish(''), null);
    assert.strictEqual(p.subscribe('a/#/b'), null);
  });

  it('lets a Biotz device subscribe to its notice but never publish on it', function () {
    const p = policyFor({ deviceId: 'd1', dialect: 'biotz', attributes: { customer: 'c' } }, { namespace: 'ota' });
    const notice = 'biotz/1/0/c/d1/subscribe/firmware/update';
    assert.strictEqual(p.subscribe(notice), notice);
    assert.strictEqual(p.publish(notice), null);
    assert.strictEqual(p.publish('biotz/1/0/c/d1/publish/telemetry'), 'biotz/1/0/c/d1/publish/telemetry');
    assert.strictEqual(p.publish('biotz/1/0/c/d2/publish/telemetry'), null);
  });

  it('takes ACL rules from the options, placeholders filled from the device record', function () {
    const rules = { tencent: [{ pattern: 'custom/{product}/{device}/#', subscribe: true, publish: true }] };
    const p = policyFor({ deviceId: 'd1', dialect: 'tencent', attributes: { product: 'P' } }, { namespace: 'ota', aclRules: rules });
    assert.strictEqual(p.publish('custom/P/d1/x'), 'custom/P/d1/x');
    assert.strictEqual(p.publish('$ota/report/P/d1'), null);
  });
});
