'use strict';
const assert = require('assert');
const crypto = require('crypto');
const mqttPacket = require('mqtt-packet');
const h = require('./helpers');
const { onBothBrokers, closedWithin } = require('./brokers');

// One device's traffic must not delay everybody else's. Found: a device flooding QoS 1 publishes
// the ACL refuses (answered by the gateway itself, so the broker's flow control never saw them)
// made a legitimate device's chunks time out and GET /ota/rollout take 5-6 s.

/** `count` PUBLISH packets on a topic a Biotz device may not use, as one buffer. */
function refusedPublishes(count, qos, version = 4) {
  const packets = [];
  for (let i = 0; i < count; i++) {
    packets.push(mqttPacket.generate({ cmd: 'publish', topic: 'x', payload: '', qos, messageId: qos ? (i % 65535) + 1 : undefined, retain: false, dup: false }, { protocolVersion: version }));
  }
  return Buffer.concat(packets);
}

onBothBrokers('ota-gateway fairness', (startBroker) => {
  let broker, store, responder;
  const gateways = [];
  const clients = [];
  const images = new Map();

  before(async function () {
    broker = await startBroker(this);
    store = h.makeRepository();
    await store.repo.devices.register({ id: 'tb', dialect: 'thingsboard', token: 'tb-token' });
    await store.repo.devices.register({ id: 'bz', dialect: 'biotz', attributes: { customer: 'c1' } });
    images.set('tb', crypto.randomBytes(64 * 1024));
    responder = await h.startResponder(broker.url, images, broker.version);
    clients.push(responder);
  });

  after(async function () {
    await h.endAll(clients);
    for (const g of gateways) await g.close();
    if (broker) await broker.close();
    if (store) await store.close();
  });

  const gatewayWith = async (limits) => {
    const g = await h.startGateway(store.repo, broker.url, { limits });
    gateways.push(g);
    return g;
  };
  const flooder = async (gateway) => {
    const raw = h.rawClient(gateway.port, broker.version);
    raw.send({ cmd: 'connect', protocolVersion: broker.version, clientId: 'bz', clean: true, keepalive: 60 });
    const connack = await raw.next('connack');
    assert.strictEqual(broker.version === 5 ? connack.reasonCode : connack.returnCode, 0);
    return raw;
  };

  it('disconnects a device once the ACL refused more than maxRefused of its publishes in a window, while another device downloads', async function () {
    const gateway = await gatewayWith({ maxRefused: 50 });
    const device = await h.connect(gateway.url, { protocolVersion: broker.version, username: 'tb-token', clientId: 'tb' });
    clients.push(device);
    const download = h.thingsboardDownload(device, { size: images.get('tb').length, chunkSize: 1024 });
    const raw = await flooder(gateway);
    raw.write(refusedPublishes(5000, 1, broker.version));
    if (broker.version === 5) assert.strictEqual((await raw.next('disconnect')).reasonCode, 0x87);
    assert.ok(await closedWithin(raw, 5000), 'the flooding device is still connected');
    assert.ok(gateway.counters.deniedPublish < 5000, `all ${gateway.counters.deniedPublish} refused publishes were handled`);
    assert.strictEqual(h.sha256(await download), h.sha256(images.get('tb')));
  });

  it('handles at most packetsPerTurn packets of one connection per turn of the event loop', async function () {
    const gateway = await gatewayWith({ maxRefused: 1e9, packetsPerTurn: 16 });
    const raw = await flooder(gateway);
    const total = 3000;
    let last = gateway.counters.deniedPublish;
    const start = last;
    let largest = 0;
    raw.write(refusedPublishes(total, 0, broker.version));
    // One sample per turn of the event loop (a setImmediate queued from a setImmediate runs in the next one).
    await new Promise((resolve) => {
      const sample = () => {
        const now = gateway.counters.deniedPublish;
        largest = Math.max(largest, now - last);
        last = now;
        if (now - start >= total) resolve();
        else setImmediate(sample);
      };
      setImmediate(sample);
    });
    assert.ok(largest <= 16, `${largest} packets of one connection were handled in one turn`);
    await raw.end();
  });
});
