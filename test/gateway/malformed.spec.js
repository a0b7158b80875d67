'use strict';
const assert = require('assert');
const mqttPacket = require('mqtt-packet');
const h = require('./helpers');

// Bad bytes from one device end that device's connection, and nothing else.

describe('ota-gateway: malformed packets', function () {
  this.timeout(15000);
  let broker, store, gateway, good, server;
  const events = [];

  before(async function () {
    broker = await h.startAedes();
    store = h.makeRepository();
    await store.repo.devices.register({ id: 'good', dialect: 'thingsboard', token: 'good-token' });
    await store.repo.devices.register({ id: 'bad', dialect: 'thingsboard', token: 'bad-token' });
    gateway = await h.startGateway(store.repo, broker.url, { connectTimeoutMs: 1000 });
    gateway.on('malformed', (e) => events.push(e));
    good = await h.connect(gateway.url, { username: 'good-token', clientId: 'good' });
    server = await h.connect(broker.url, { clientId: 'server-side' });
    await good.subscribeAsync('echo', { qos: 1 });
  });

  after(async function () {
    await h.endAll([good, server]);
    if (gateway) await gateway.close();
    if (broker) await broker.close();
    if (store) await store.close();
  });

  /** The healthy device still gets a message through gateway and broker. */
  async function goodDeviceCarriesOn(n) {
    const got = new Promise((resolve) => good.once('message', (topic, payload) => resolve(payload.toString())));
    await server.publishAsync('ota/good/echo', String(n), { qos: 1 });
    assert.strictEqual(await got, String(n));
    assert.ok(good.connected);
  }

  /** A device that connected properly, about to misbehave. */
  async function connectedRaw() {
    const raw = h.rawClient(gateway.port);
    raw.send({ cmd: 'connect', protocolVersion: 4, clientId: 'bad', username: 'bad-token', clean: true, keepalive: 60 });
    assert.strictEqual((await raw.next('connack')).returnCode, 0);
    return raw;
  }

  const connectBytes = () => mqttPacket.generate({ cmd: 'connect', protocolVersion: 4, clientId: 'bad', username: 'bad-token', clean: true, keepalive: 60 });

  const cases = {
    'garbage instead of a CONNECT': async () => {
      const raw = h.rawClient(gateway.port);
      raw.write(Buffer.from('GET / HTTP/1.1\r\nHost: x\r\n\r\n'));
      return raw;
    },
    'a remaining length longer than four bytes': async () => {
      const raw = h.rawClient(gateway.port);
      raw.write(Buffer.from([0x10, 0xff, 0xff, 0xff, 0xff, 0x7f]));
      return raw;
    },
    'a CONNECT cut short inside its own length': async () => {
      const raw = h.rawClient(gateway.port);
      const bytes = Buffer.from(connectBytes());
      bytes[1] = 8; // claims 8 bytes: the protocol name fits, the rest is missing
      raw.write(bytes.subarray(0, 10));
      return raw;
    },
    'a truncated CONNECT left hanging': async () => {
      const raw = h.rawClient(gateway.port);
      raw.write(connectBytes().subarray(0, 7));
      return raw;
    },
    'a truncated PUBLISH, then the device hangs up': async () => {
      const raw = await connectedRaw();
      const publish = mqttPacket.generate({ cmd: 'publish', topic: 'v1/devices/me/telemetry', payload: Buffer.alloc(500), qos: 0, retain: false, dup: false });
      raw.write(publish.subarray(0, 40));
      raw.socket.end();
      return raw;
    },
    'a reserved packet type after CONNECT': async () => {
      const raw = await connectedRaw();
      raw.write(Buffer.from([0x00, 0x00]));
      return raw;
    },
    'random bytes after CONNECT': async () => {
      const raw = await connectedRaw();
      raw.write(Buffer.from([0xf0, 0x03, 0x01, 0x02, 0x03, 0xde, 0xad, 0xbe, 0xef]));
      return raw;
    },
    'a second CONNECT': async () => {
      const raw = await connectedRaw();
      raw.write(connectBytes());
      return raw;
    },
  };

  let n = 0;
  for (const [name, misbehave] of Object.entries(cases)) {
    it(`closes only that device's connection on ${name}`, async function () {
      const raw = await misbehave();
      await raw.closed;
      // Its upstream connection is gone too: the broker is left with the good device and us.
      await h.until(() => gateway.counters.connected === 1 && broker.clients() === 2);
      await goodDeviceCarriesOn(++n);
      // And the gateway still lets new devices in.
      const again = await h.connect(gateway.url, { username: 'bad-token', clientId: 'after' });
      await h.endAll([again]);
    });
  }

  it('takes packets sent right behind CONNECT, before its CONNACK, in order', async function () {
    const raw = h.rawClient(gateway.port);
    const bytes = [
      connectBytes(),
      mqttPacket.generate({ cmd: 'subscribe', messageId: 5, subscriptions: [{ topic: 'loop', qos: 1 }] }),
      mqttPacket.generate({ cmd: 'publish', topic: 'loop', payload: 'hi', qos: 1, messageId: 6, retain: false, dup: false }),
    ];
    raw.write(Buffer.concat(bytes));
    assert.strictEqual((await raw.next('connack')).returnCode, 0);
    assert.deepStrictEqual((await raw.next('suback')).granted, [1]);
    const msg = await raw.next('publish');
    assert.strictEqual(msg.topic, 'loop');
    assert.strictEqual(msg.payload.toString(), 'hi');
    await raw.end();
  });

  it('moves a device\'s will into its namespace, and the broker sends it when the device vanishes', async function () {
    const got = new Promise((resolve) => server.on('message', (topic, payload) => topic === 'ota/bad/status' && resolve(payload.toString())));
    await server.subscribeAsync('ota/bad/status');
    const raw = h.rawClient(gateway.port);
    raw.send({ cmd: 'connect', protocolVersion: 4, clientId: 'will', username: 'bad-token', clean: true, keepalive: 60, will: { topic: 'status', payload: Buffer.from('gone'), qos: 1, retain: false } });
    assert.strictEqual((await raw.next('connack')).returnCode, 0);
    raw.socket.destroy();
    assert.strictEqual(await got, 'gone');
  });

  it('counted what it closed', function () {
    assert.ok(gateway.counters.malformed >= 6, `malformed: ${gateway.counters.malformed}`);
    assert.ok(events.every((e) => typeof e.message === 'string' && e.message.length > 0));
  });
});
