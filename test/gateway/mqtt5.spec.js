'use strict';
const assert = require('assert');
const crypto = require('crypto');
const h = require('./helpers');

// MQTT 5 through the gateway and mosquitto: the stock ThingsBoard SDK's subscription, topic
// aliases, flow-control properties.

describe('ota-gateway: MQTT 5 devices through mosquitto', function () {
  this.timeout(15000);
  let broker, store, gateway, responder, direct;
  const clients = [];
  const images = new Map();

  before(async function () {
    if (!h.hasMosquitto()) {
      console.log(`      skipped: ${h.MOSQUITTO} is not installed (apt-get install mosquitto)`);
      this.skip();
    }
    broker = await h.startMosquitto(['max_packet_size 100000']);
    store = h.makeRepository();
    for (const id of ['sdk', 'both', 'both2', 'qos0', 'alias', 'unsub']) {
      await store.repo.devices.register({ id, dialect: 'thingsboard', token: `${id}-token` });
      images.set(id, crypto.randomBytes(9000 + images.size * 333));
    }
    gateway = await h.startGateway(store.repo, broker.url);
    responder = await h.startResponder(broker.url, images, 5);
    direct = await h.connect(broker.url, { protocolVersion: 5 });
    clients.push(responder, direct);
  });

  after(async function () {
    await h.endAll(clients);
    if (gateway) await gateway.close();
    if (broker) await broker.close();
    if (store) await store.close();
  });

  const device = async (id, options = {}) => {
    const client = await h.connect(gateway.url, { protocolVersion: 5, username: `${id}-token`, clientId: `${id}-c`, ...options });
    clients.push(client);
    return client;
  };

  it('completes a ThingsBoard chunked download for a device subscribed to v2/fw/response/+', async function () {
    const sdk = await device('sdk');
    const built = await h.thingsboardDownload(sdk, { size: images.get('sdk').length, chunkSize: 2048, requestId: 7 });
    assert.strictEqual(h.sha256(built), h.sha256(images.get('sdk')));
  });

  it('delivers each chunk once to a device that also holds an overlapping filter', async function () {
    // In one SUBSCRIBE, and in two (the wide filter first).
    const a = await device('both');
    await a.subscribeAsync({ 'v2/fw/response/#': { qos: 1 } });
    const b = await device('both2');
    await b.subscribeAsync({ 'v2/fw/response/+': { qos: 1 }, 'v2/fw/response/#': { qos: 1 } });
    for (const [client, id] of [[a, 'both'], [b, 'both2']]) {
      const counts = new Map();
      client.on('message', (topic) => counts.set(topic, (counts.get(topic) ?? 0) + 1));
      const built = await h.thingsboardDownload(client, { size: images.get(id).length });
      assert.strictEqual(h.sha256(built), h.sha256(images.get(id)));
      assert.ok([...counts.values()].every((n) => n === 1), `${id} got a chunk twice`);
    }
  });

  it('never replaces the QoS of a subscription the device made itself', async function () {
    const c = await device('qos0');
    await c.subscribeAsync({ 'v2/fw/response/+/chunk/+': { qos: 0 } });
    const got = new Promise((resolve) => c.once('message', (topic, payload, packet) => resolve(packet)));
    await c.subscribeAsync({ 'v2/fw/response/+': { qos: 1 } });
    await c.publishAsync('v2/fw/request/1/chunk/0', '100', { qos: 1 });
    const packet = await got;
    assert.strictEqual(packet.topic, 'v2/fw/response/1/chunk/0');
    assert.strictEqual(packet.qos, 0);
  });

  it('stops chunk replies once the device unsubscribes v2/fw/response/+', async function () {
    const c = await device('unsub');
    const seen = [];
    c.on('message', (topic) => seen.push(topic));
    await c.subscribeAsync({ 'v2/fw/response/+': { qos: 1 }, marker: { qos: 1 } });
    const reply = await c.unsubscribeAsync('v2/fw/response/+');
    // One reason code for the one filter the device named, not two.
    assert.deepStrictEqual(reply.reasonCodes ?? reply.granted ?? [0], [0]);
    await direct.publishAsync('ota/unsub/v2/fw/response/1/chunk/0', 'x', { qos: 1 });
    await direct.publishAsync('ota/unsub/marker', 'm', { qos: 1 });
    await h.until(() => seen.includes('marker'));
    assert.deepStrictEqual(seen, ['marker']);
  });

  it('disables topic aliases toward the device and passes flow control through', async function () {
    const straight = await h.connect(broker.url, { protocolVersion: 5, properties: { topicAliasMaximum: 5 } });
    clients.push(straight);
    const c = await device('alias', { properties: { topicAliasMaximum: 5, maximumPacketSize: 50000 } });
    const props = c.connack.properties ?? {};
    assert.ok(straight.connack.properties.topicAliasMaximum > 0, 'mosquitto offers aliases');
    assert.strictEqual(props.topicAliasMaximum, undefined);
    assert.strictEqual(props.receiveMaximum, straight.connack.properties.receiveMaximum);
    // 100000 from mosquitto, less the `ota/alias/` the gateway adds to every topic.
    assert.strictEqual(props.maximumPacketSize, 100000 - 'ota/alias/'.length);

    // Messages come down with their full topic even though the device allowed aliases.
    const got = [];
    c.on('message', (topic, payload, packet) => got.push([topic, packet.properties?.topicAlias]));
    await c.subscribeAsync('t/#');
    for (let i = 0; i < 3; i++) await direct.publishAsync('ota/alias/t/x', String(i), { qos: 1 });
    await h.until(() => got.length === 3);
    assert.deepStrictEqual(got, [['t/x', undefined], ['t/x', undefined], ['t/x', undefined]]);
  });

  it('disconnects a device that uses a topic alias it was not offered (0x94), instead of publishing to its bare namespace', async function () {
    const seen = [];
    direct.on('message', (topic, payload) => seen.push([topic, payload.toString()]));
    await direct.subscribeAsync('ota/alias/#');
    const raw = h.rawClient(gateway.port, 5);
    raw.send({ cmd: 'connect', protocolVersion: 5, clientId: 'raw-alias', username: 'alias-token', clean: true, keepalive: 30 });
    const connack = await raw.next('connack');
    assert.strictEqual(connack.reasonCode, 0);
    assert.strictEqual(connack.properties?.topicAliasMaximum, undefined, 'no aliases offered (absent means 0)');
    raw.send({ cmd: 'publish', topic: 'up/a', payload: '1', qos: 1, messageId: 1, retain: false, dup: false, properties: { topicAlias: 1 } });
    assert.strictEqual((await raw.next('disconnect')).reasonCode, 0x94);
    await raw.closed;
    // Aliases the gateway allows are resolved before rewriting: test/gateway/limits.spec.js.
    assert.deepStrictEqual(seen, []);
  });
});
