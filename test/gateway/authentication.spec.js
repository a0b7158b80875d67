'use strict';
const assert = require('assert');
const { OtaGateway, RegistryDirectory } = require('../../dist/gateway');
const h = require('./helpers');

// A device directory that never answers (a custom one whose backend hangs) costs the device a
// connection closed without CONNACK, which it retries (a CONNACK "server unavailable" would stop
// mqtt.js reconnecting), never a connection held open for ever; the other devices carry on.

describe('ota-gateway: authentication that does not answer', function () {
  this.timeout(15000);
  let broker, store, gateway;
  const errors = [];

  before(async function () {
    broker = await h.startAedes();
    store = h.makeRepository();
    await store.repo.devices.register({ id: 'good', dialect: 'thingsboard', token: 'good-token' });
    const registry = new RegistryDirectory(store.repo.devices);
    const directory = {
      authenticate: (creds) => (creds.clientId === 'stuck' ? new Promise(() => {}) : registry.authenticate(creds)),
    };
    gateway = new OtaGateway({ directory, upstream: broker.url, namespace: 'ota', authTimeoutMs: 200 });
    gateway.on('error', (err) => errors.push(err.message));
    const address = await gateway.listen(0, '127.0.0.1');
    gateway.url = `mqtt://127.0.0.1:${address.port}`;
    gateway.port = address.port;
  });

  after(async function () {
    if (gateway) await gateway.close();
    if (broker) await broker.close();
    if (store) await store.close();
  });

  it('closes the device without a CONNACK after authTimeoutMs, reports it, and lets others in', async function () {
    const started = Date.now();
    const raw = h.rawClient(gateway.port);
    raw.send({ cmd: 'connect', protocolVersion: 4, clientId: 'stuck', username: 'whatever', clean: true, keepalive: 60 });
    await raw.closed;
    assert.deepStrictEqual(raw.packets, [], 'no CONNACK: mqtt.js stops reconnecting on a refusing one');
    assert.ok(Date.now() - started >= 150, 'not before the timeout');
    assert.ok(errors.some((e) => /authenticating "stuck" took over 200 ms/.test(e)), errors.join('\n'));
    const good = await h.connect(gateway.url, { clientId: 'good', username: 'good-token' });
    assert.ok(good.connected);
    await h.endAll([good]);
  });
});
