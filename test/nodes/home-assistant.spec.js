'use strict';
// The repository node's Home Assistant opt-in in the real Node-RED runtime (test helper): off by
// default (no connection, nothing published), a clear error and no crash for a missing broker
// node or a bad prefix, and on a redeploy the bridge says offline and the new one online again.
const assert = require('assert');
const fs = require('fs');
const mqtt = require('mqtt');
const { helper, nodes } = require('../support/red');
const { tempDir } = require('../support/images');
const { catalogues, translated } = require('../support/i18n');
const { startAedes } = require('../../scripts/servers');
const mqttNodes = require('@node-red/nodes/core/network/10-mqtt.js');
const { OtaRepository } = require('../../dist/core/repository');
const { startPostgres } = require('../support/postgres');

describe('ota-repository: Home Assistant opt-in', function () {
  this.timeout(20000);
  let broker, dir, watcher;
  const seen = [];

  const repository = translated(nodes.repository);
  before(async () => {
    await catalogues();
    broker = await startAedes();
    watcher = await mqtt.connectAsync(broker.url, { reconnectPeriod: 0 });
    watcher.on('message', (topic, payload) => seen.push({ topic, payload: payload.toString() }));
    await watcher.subscribeAsync(['homeassistant/#', 'mqtt-ota/#'], { qos: 1 });
  });
  after(async () => {
    await watcher?.endAsync();
    await broker?.close();
  });
  beforeEach(() => {
    dir = tempDir('ha-node-');
    seen.length = 0;
  });
  afterEach(async () => {
    await helper.unload();
    fs.rmSync(dir, { recursive: true, force: true });
  });

  const port = () => String(new URL(broker.url).port);
  const flow = (repo) => [
    { id: 'b1', type: 'mqtt-broker', broker: '127.0.0.1', port: port(), clientid: '', protocolVersion: '4', keepalive: '60', cleansession: true },
    { id: 'r1', type: 'ota-repository', storageDir: dir, ...repo },
    { id: 'c1', type: 'catch', scope: null, wires: [] },
  ];
  const until = async (what, fn) => {
    const end = Date.now() + 5000;
    while (!fn()) {
      if (Date.now() > end) throw new Error(`not ${what}`);
      await new Promise((r) => setTimeout(r, 20));
    }
  };

  it('publishes nothing and connects nowhere while switched off', async () => {
    const before = broker.clients();
    await helper.load([repository, mqttNodes, nodes.catch], flow({}));
    await new Promise((r) => setTimeout(r, 300));
    assert.deepStrictEqual(seen, []);
    assert.strictEqual(broker.clients(), before);
  });

  it('says what to do when no mqtt-broker is picked, and when the prefix is bad, without crashing', async () => {
    const errors = () => helper.log().args.map((a) => a[0]).filter((e) => e && e.level === 20).map((e) => e.msg);
    await helper.load([repository, mqttNodes, nodes.catch], flow({ haEnabled: true }));
    assert.ok(helper.getNode('r1').repo, 'the repository still works');
    assert.ok(errors().some((m) => /Home Assistant: pick the mqtt-broker node/.test(m)), errors().join('\n'));
    await helper.unload();
    await helper.load([repository, mqttNodes, nodes.catch], flow({ haEnabled: true, haBroker: 'b1', haPrefix: 'home/#' }));
    assert.ok(helper.getNode('r1').repo);
    assert.ok(errors().some((m) => /discovery prefix must be/.test(m)), errors().join('\n'));
    await new Promise((r) => setTimeout(r, 200));
    assert.deepStrictEqual(seen, []);
  });

  it('goes online, publishes a registered device, says offline on close', async () => {
    // Left by a device deleted while Node-RED was away, and a stale retained Install.
    await watcher.publishAsync('homeassistant/update/mqtt-ota/ghost/config', '{"state_topic":"mqtt-ota/devices/ghost/state"}', { qos: 1, retain: true });
    await helper.load([repository, mqttNodes, nodes.catch], flow({ haEnabled: true, haBroker: 'b1' }));
    const repo = helper.getNode('r1').repo;
    await repo.devices.register({ id: 'plug.1', dialect: 'tencent', attributes: { product: 'P' } });
    await until('the config', () => seen.some((m) => m.topic.startsWith('homeassistant/update/mqtt-ota/plug_1_') && m.payload));
    assert.ok(seen.some((m) => m.topic === 'mqtt-ota/bridge/availability' && m.payload === 'online'));
    await until('the ghost removed', () => seen.some((m) => m.topic === 'homeassistant/update/mqtt-ota/ghost/config' && m.payload === ''));
    await helper.unload();
    await until('offline', () => seen.filter((m) => m.topic === 'mqtt-ota/bridge/availability').at(-1).payload === 'offline');
  });

  it('on a shared database runs on the driving Node-RED only, moves with the lease, and stays online', async function () {
    // Two Node-REDs on one PostgreSQL with Home Assistant on in both published every entity
    // twice and took each Install twice. Here the other instance drives first.
    const cluster = await startPostgres();
    if (!cluster) this.skip();
    const other = { dir: tempDir('ha-other-') };
    try {
      const url = await cluster.createDatabase();
      other.repo = new OtaRepository({ dir: other.dir, storage: { kind: 'postgres', connectionString: url } });
      await other.repo.ready;
      await until('the other instance driving', () => other.repo.isDriver);
      const availability = () => seen.filter((m) => m.topic === 'mqtt-ota/bridge/availability').map((m) => m.payload);
      await helper.load([repository, mqttNodes, nodes.catch], flow({ haEnabled: true, haBroker: 'b1', backend: 'postgres' }), { r1: { postgresUrl: url } });
      await helper.getNode('r1').repo.ready;
      await new Promise((r) => setTimeout(r, 1000));
      assert.deepStrictEqual(availability(), [], 'nothing from an instance that does not drive');
      await other.repo.close(); // hands the lease back
      await until('online on the new driver', () => availability().at(-1) === 'online');
      // The last will of the instance that drove before, arriving late: online again at once.
      await watcher.publishAsync('mqtt-ota/bridge/availability', 'offline', { qos: 1, retain: true });
      await until('online again', () => availability().at(-1) === 'online' && availability().length >= 3);
    } finally {
      await other.repo?.close();
      await helper.unload();
      await cluster.stop();
      fs.rmSync(other.dir, { recursive: true, force: true });
    }
  });
});
