'use strict';
const assert = require('assert');
const crypto = require('crypto');
const h = require('./helpers');

// The fleet case the gateway exists for: ThingsBoard and TagoIO devices share topic names and
// their requestIds collide, yet each ends with its own image.

function fleetSuite(title, startBroker) {
  describe(title, function () {
    let broker, store, gateway, responder, watcher;
    const devices = [];
    const images = new Map();
    const tokens = new Map();

    before(async function () {
      broker = await startBroker(this);
      store = h.makeRepository();
      for (let i = 0; i < 10; i++) {
        for (const dialect of ['thingsboard', 'tago']) {
          const id = `${dialect === 'thingsboard' ? 'tb' : 'tg'}-${i}`;
          const { token } = await store.repo.devices.register({ id, dialect, token: true });
          tokens.set(id, token);
          // Different sizes, so a chunk from another device's image cannot go unnoticed.
          images.set(id, crypto.randomBytes(6000 + i * 1500 + (dialect === 'tago' ? 700 : 0)));
        }
      }
      await store.repo.devices.register({ id: 'nosy', dialect: 'thingsboard', token: 'nosy-token' });
      gateway = await h.startGateway(store.repo, broker.url);
      responder = await h.startResponder(broker.url, images, broker.version);
    });

    after(async function () {
      await h.endAll([...devices, responder, watcher]);
      if (gateway) await gateway.close();
      if (broker) await broker.close();
      if (store) await store.close();
    });

    it('updates 10 ThingsBoard and 10 TagoIO devices at once, each to its own image', async function () {
      watcher = await h.connect(gateway.url, { protocolVersion: broker.version, username: 'nosy-token', clientId: 'nosy' });
      const spied = [];
      watcher.on('message', (topic) => spied.push(topic));
      await watcher.subscribeAsync(['#', 'ota/#', 'ota/tb-1/#', 'v2/fw/response/+/chunk/+']);

      const runs = [];
      for (const [id, image] of images) {
        const tago = id.startsWith('tg');
        const client = await h.connect(gateway.url, {
          protocolVersion: broker.version,
          clientId: `${id}-client`,
          ...(tago ? { username: 'Token', password: tokens.get(id) } : { username: tokens.get(id) }),
        });
        devices.push(client);
        const i = Number(id.split('-')[1]);
        // Half the ThingsBoard devices subscribe like the stock SDK, half with an explicit filter.
        const filter = i % 2 ? 'v2/fw/response/+/chunk/+' : 'v2/fw/response/+';
        runs.push((tago ? h.tagoDownload(client, { size: image.length }) : h.thingsboardDownload(client, { size: image.length, filter })).then((built) => [id, built]));
      }
      assert.strictEqual(gateway.counters.connected, 21);
      for (const [id, built] of await Promise.all(runs)) {
        assert.strictEqual(h.sha256(built), h.sha256(images.get(id)), `${id} built a different image`);
      }

      // A round trip through the broker after everyone finished: whatever leaked would be here.
      await watcher.publishAsync('marker', 'm', { qos: 1 });
      await h.until(() => spied.includes('marker'));
      assert.deepStrictEqual([...new Set(spied)], ['marker']);
      // And upstream, everything moved into the per-device namespaces.
      assert.ok(responder.seen.length >= 200);
      assert.ok(responder.seen.every((t) => /^ota\/(tb|tg)-\d\//.test(t)), 'a topic escaped its namespace');
    });
  });
}

describe('ota-gateway: a fleet with colliding topics', function () {
  this.timeout(30000);
  fleetSuite('through aedes (MQTT 3.1.1)', () => h.startAedes());
  fleetSuite('through mosquitto (MQTT 5)', (ctx) => {
    if (!h.hasMosquitto()) {
      console.log(`      skipped: ${h.MOSQUITTO} is not installed (apt-get install mosquitto)`);
      ctx.skip();
    }
    return h.startMosquitto();
  });
});
