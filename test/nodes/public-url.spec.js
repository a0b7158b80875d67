'use strict';
const assert = require('assert');
const { defaultPublicUrl } = require('../../dist/nodes/public-url.js');

// The examples' repository had Public URL http://localhost:1880: a Biotz or Tencent device on the
// network got a download URL pointing at itself. Left empty, it is this machine's address.

describe('the repository\'s default public URL', () => {
  const lan = { lo: [{ family: 'IPv4', address: '127.0.0.1', internal: true }], eth0: [{ family: 'IPv6', address: 'fe80::1', internal: false }, { family: 'IPv4', address: '192.168.1.20', internal: false }] };

  it('is this machine\'s network address and Node-RED\'s port, never localhost, when Node-RED listens everywhere', () => {
    assert.strictEqual(defaultPublicUrl({ uiPort: 1880 }, lan), 'http://192.168.1.20:1880');
    assert.strictEqual(defaultPublicUrl({ uiHost: '0.0.0.0', uiPort: 8080, https: {}, httpNodeRoot: '/api/' }, lan), 'https://192.168.1.20:8080/api');
  });

  it('is the address Node-RED is bound to when it is bound to one', () => {
    assert.strictEqual(defaultPublicUrl({ uiHost: '10.0.0.5', uiPort: 1880 }, lan), 'http://10.0.0.5:1880');
    assert.strictEqual(defaultPublicUrl({ uiHost: '::1', uiPort: 1880 }, lan), 'http://[::1]:1880');
  });

  it('falls back to loopback on a machine without a network', () => {
    assert.strictEqual(defaultPublicUrl({}, { lo: lan.lo }), 'http://127.0.0.1:1880');
  });
});
