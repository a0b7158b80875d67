'use strict';
const assert = require('assert');
const h = require('./helpers');
const { onBothBrokers, gatewayRig, closedWithin } = require('./brokers');

// What one connection may cost: packet sizes before and after authentication, and topic aliases.
// Found: mqtt-packet's parser buffered a whole claimed 256 MB CONNECT (four unauthenticated
// sockets took Node-RED from 307 MB to 964 MB), and aliases of refused publishes were kept
// although the gateway advertised none (5,000 aliases of 60 KB: 1.5 GB). The MQTT 5 cases run
// on aedes too: it speaks 3.1.1 only, and the gateway bridges MQTT 5 devices to it, limits and all.

/** A fixed header claiming `size` bytes of remaining length, for packet type `type`. */
function header(type, size) {
  const bytes = [type];
  do {
    let b = size % 128;
    size = Math.floor(size / 128);
    if (size > 0) b |= 0x80;
    bytes.push(b);
  } while (size > 0);
  return Buffer.from(bytes);
}

onBothBrokers('ota-gateway limits', (startBroker) => {
  const rig = gatewayRig(startBroker, {
    devices: [
      { id: 'tb', dialect: 'thingsboard', token: 'tb-token' },
      { id: 'bz', dialect: 'biotz', attributes: { customer: 'c1' } },
    ],
    options: { limits: { maxPacketBytes: 4096, topicAliasMaximum: 4 } },
  });

  const connected = async (version, { username = 'tb-token', clientId = 'raw' } = {}) => {
    const raw = h.rawClient(rig.gateway.port, version);
    raw.send({ cmd: 'connect', protocolVersion: version, clientId, ...(username ? { username } : {}), clean: true, keepalive: 60 });
    const connack = await raw.next('connack');
    assert.strictEqual(version === 5 ? connack.reasonCode : connack.returnCode, 0);
    raw.connack = connack;
    return raw;
  };

  it('closes an unauthenticated connection whose CONNECT claims 256 MB, on its header, without buffering it', async function () {
    const before = rig.gateway.counters.tooLarge;
    const raws = [];
    for (let i = 0; i < 4; i++) {
      const raw = h.rawClient(rig.gateway.port);
      raw.write(header(0x10, 268_435_455 - 5));
      raw.write(Buffer.alloc(64 * 1024, 0x41));
      raws.push(raw);
    }
    for (const raw of raws) assert.ok(await closedWithin(raw, 3000), 'the gateway kept reading a 256 MB CONNECT');
    assert.strictEqual(rig.gateway.counters.tooLarge - before, 4);
  });

  it('closes a connection that opens with anything but a CONNECT, on its first byte', async function () {
    const raw = h.rawClient(rig.gateway.port);
    raw.write(header(0x30, 200_000_000));
    assert.ok(await closedWithin(raw, 3000));
  });

  it('takes a packet up to the configured size after authentication and closes the connection on a larger one', async function () {
    const raw = await connected(4);
    const got = new Promise((resolve) => rig.server.on('message', (topic, payload) => topic === 'ota/tb/big' && resolve(payload.length)));
    await rig.server.subscribeAsync('ota/tb/big', { qos: 1 });
    raw.send({ cmd: 'publish', topic: 'big', payload: Buffer.alloc(4000), qos: 0, retain: false, dup: false });
    assert.strictEqual(await got, 4000);
    const before = rig.gateway.counters.tooLarge;
    raw.write(header(0x30, 10_000_000));
    assert.ok(await closedWithin(raw, 3000), 'a 10 MB PUBLISH was read on');
    assert.strictEqual(rig.gateway.counters.tooLarge - before, 1);
  });

  it('tells an MQTT 5 device its maximum packet size and topic alias maximum, and answers a packet over it with DISCONNECT 0x95', async function () {
    const raw = await connected(5);
    assert.strictEqual(raw.connack.properties.maximumPacketSize, 4096);
    assert.strictEqual(raw.connack.properties.topicAliasMaximum, 4);
    raw.write(header(0x30, 5000));
    assert.strictEqual((await raw.next('disconnect')).reasonCode, 0x95);
    assert.ok(await closedWithin(raw, 3000));
  });

  it('resolves the topic aliases it allows before rewriting, and disconnects an alias above the maximum with 0x94', async function () {
    const seen = [];
    rig.server.on('message', (topic, payload) => topic.startsWith('ota/tb/al/') && seen.push([topic, payload.toString()]));
    await rig.server.subscribeAsync('ota/tb/al/#', { qos: 1 });
    const raw = await connected(5);
    const pub = (topic, payload, alias, messageId) => raw.send({ cmd: 'publish', topic, payload, qos: 1, messageId, retain: false, dup: false, properties: { topicAlias: alias } });
    pub('al/x', '1', 4, 1);
    pub('', '2', 4, 2);
    await raw.next('puback');
    await raw.next('puback');
    await h.until(() => seen.length === 2);
    assert.deepStrictEqual(seen, [['ota/tb/al/x', '1'], ['ota/tb/al/x', '2']]);
    pub('al/y', '3', 5, 3);
    assert.strictEqual((await raw.next('disconnect')).reasonCode, 0x94);
    assert.ok(await closedWithin(raw, 3000));
  });

  it('keeps no alias for a publish the ACL refused: using it later is a protocol error (0x82)', async function () {
    const raw = await connected(5, { username: null, clientId: 'bz' });
    raw.send({ cmd: 'publish', topic: 'someone/else', payload: Buffer.alloc(3000), qos: 1, messageId: 1, retain: false, dup: false, properties: { topicAlias: 1 } });
    assert.strictEqual((await raw.next('puback')).reasonCode, 0x87);
    raw.send({ cmd: 'publish', topic: '', payload: 'again', qos: 1, messageId: 2, retain: false, dup: false, properties: { topicAlias: 1 } });
    assert.strictEqual((await raw.next('disconnect')).reasonCode, 0x82);
    assert.ok(await closedWithin(raw, 3000));
  });
});
