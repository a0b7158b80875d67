'use strict';
const assert = require('assert');
const crypto = require('crypto');
const { signedCredentials, checkSignature, parseDeviceSecret, tencentClientId } = require('../../../dist/core/dialects/tencent-identity');

// The login of Tencent's IoT Explorer C SDK (mqtt_client.c:86, mqtt_client_connect.c:129-158).

describe('tencent identity', function () {
  const secret = 'VI04Eh4N8VgM29U/dnu9cQ==';
  const key = Buffer.from(secret, 'base64');
  const now = 1_800_000_000;

  it('signs as the SDK does: {clientId};{sdkappid};{connid};{expiry}, lower-case hex HMAC-SHA1 of it, then ;hmacsha1', function () {
    const clientId = tencentClientId('P1', 'dev001');
    assert.strictEqual(clientId, 'P1dev001');
    const { username, password } = signedCredentials(clientId, secret, { connId: 'aB3dE' });
    assert.strictEqual(username, 'P1dev001;21010406;aB3dE;9223372036854775807');
    assert.strictEqual(password, `${crypto.createHmac('sha1', key).update(username).digest('hex')};hmacsha1`);
    assert.match(signedCredentials(clientId, secret).username, /^P1dev001;21010406;[A-Za-z0-9]{5};9223372036854775807$/);
  });

  it('takes a signature up to the clock skew past its expiry, and LONG_MAX (the SDK\'s "never")', function () {
    const at = (expiry) => checkSignature({ clientId: 'P1dev001', ...signedCredentials('P1dev001', secret, { expiry }) }, key, now, 300);
    assert.deepStrictEqual(at(now - 300), { ok: true });
    assert.deepStrictEqual(at(now - 301), { ok: false, reason: 'expired' });
    assert.deepStrictEqual(at('9223372036854775807'), { ok: true });
    assert.deepStrictEqual(at('99999999999999999999'), { ok: true });
  });

  it('refuses what is not the SDK\'s shape, another client\'s username, and a wrong HMAC', function () {
    const good = { clientId: 'P1dev001', ...signedCredentials('P1dev001', secret) };
    const cases = [
      [{ ...good, username: undefined }, 'malformed'],
      [{ ...good, username: `${'x'.repeat(300)};21010406;aB3dE;1` }, 'malformed'],
      [{ ...good, username: 'P1dev001;21010406;aB3dE;-1' }, 'malformed'],
      [{ ...good, password: good.password.replace('hmacsha1', 'hmacsha256') }, 'malformed'],
      [{ ...good, password: good.password.toUpperCase() }, 'malformed'],
      [{ ...good, clientId: 'P1dev002' }, 'wrong_client'],
      [{ ...good, password: `${'0'.repeat(40)};hmacsha1` }, 'bad_signature'],
    ];
    for (const [creds, reason] of cases) assert.deepStrictEqual(checkSignature(creds, key, now), { ok: false, reason }, JSON.stringify(creds).slice(0, 80));
    const sha256 = { clientId: 'P1dev001', ...signedCredentials('P1dev001', secret, { algorithm: 'hmacsha256' }) };
    assert.deepStrictEqual(checkSignature(sha256, key, now), { ok: true });
  });

  it('takes a device secret as Tencent shows it (base64, at most 64 bytes: the SDK\'s HMAC key limit)', function () {
    assert.deepStrictEqual(parseDeviceSecret(secret), key);
    for (const bad of ['', 'not base64!', 'abc', Buffer.alloc(65).toString('base64'), 42, null]) {
      assert.throws(() => parseDeviceSecret(bad), (err) => err.field === 'deviceSecret');
    }
  });
});
