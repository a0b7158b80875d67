'use strict';
const assert = require('assert');
const fs = require('fs');
const { helper, nodes } = require('../support/red');
const { tempDir } = require('../support/images');
const h = require('./helpers');

const gatewayNode = require('../../dist/nodes/ota-gateway.js');

// The gateway as a Node-RED node: configured from the editor, devices from the repository.

describe('ota-gateway node', function () {
  this.timeout(15000);
  let broker, dir, port;
  const clients = [];

  before(async () => {
    broker = await h.startAedes();
  });
  after(async () => {
    await broker.close();
  });
  beforeEach(async () => {
    dir = tempDir();
    port = await h.freePort();
    await helper.load([nodes.repository, gatewayNode], [
      { id: 'f1', type: 'tab' },
      { id: 'repo', type: 'ota-repository', storageDir: dir },
      { id: 'gw', z: 'f1', type: 'ota-gateway', repository: 'repo', host: '127.0.0.1', port, broker: broker.url, namespace: 'fleet', identity: 'auto', wires: [['events']] },
      { id: 'events', z: 'f1', type: 'helper' },
    ]);
    await helper.getNode('repo').repo.devices.register({ id: 'tb-1', dialect: 'thingsboard', token: 'tb-1-token' });
  });
  afterEach(async () => {
    await h.endAll(clients.splice(0));
    await helper.unload();
    fs.rmSync(dir, { recursive: true, force: true });
  });

  function statuses(node) {
    const seen = [];
    const status = node.status.bind(node);
    node.status = (s) => { seen.push(s); status(s); };
    return seen;
  }

  it('lets a repository device in, namespaced, and shows how many are connected', async function () {
    const gw = helper.getNode('gw');
    const seen = statuses(gw);
    const events = [];
    helper.getNode('events').on('input', (msg) => events.push(msg));
    const url = `mqtt://127.0.0.1:${port}`;
    await h.waitForPort(port);

    const device = await h.connect(url, { username: 'tb-1-token', clientId: 'dev' });
    clients.push(device);
    const server = await h.connect(broker.url);
    clients.push(server);
    const got = new Promise((resolve) => device.once('message', (topic) => resolve(topic)));
    await device.subscribeAsync('v1/devices/me/attributes');
    await server.publishAsync('fleet/tb-1/v1/devices/me/attributes', '{}');
    assert.strictEqual(await got, 'v1/devices/me/attributes');

    // Green once a device is in (the helper runtime leaves the i18n key untranslated).
    await h.until(() => seen.some((s) => s.fill === 'green' && /connected/.test(s.text)));
    await h.until(() => events.some((m) => m.topic === 'connect' && m.payload.deviceId === 'tb-1'));

    await assert.rejects(h.connect(url, { username: 'wrong', clientId: 'x' }), (err) => err.code === 4);
    await h.until(() => events.some((m) => m.topic === 'refused' && m.payload.reason === 'bad_credentials'));
  });

  it('lets an MQTT 5 device in through aedes (MQTT 3.1.1 only) and warns once that it bridges', async function () {
    const gw = helper.getNode('gw');
    const warnings = [];
    const warn = gw.warn.bind(gw);
    gw.warn = (text) => { warnings.push(text); warn(text); };
    await h.waitForPort(port);
    for (const clientId of ['v5-a', 'v5-b']) {
      const device = await h.connect(`mqtt://127.0.0.1:${port}`, { protocolVersion: 5, username: 'tb-1-token', clientId });
      clients.push(device);
      assert.strictEqual(device.connack.reasonCode, 0);
    }
    // The helper runtime leaves i18n keys untranslated: one protocol warning, the bridging one.
    assert.deepStrictEqual(warnings.filter((w) => /bridging|refused-v/.test(w)), ['ota-gateway.warn.bridging']);
  });

  it('refuses a Tasmota plug\'s group and fallback subscriptions quietly, and still warns when it reaches for another plug\'s commands', async function () {
    const repo = helper.getNode('repo').repo;
    await repo.devices.register({ id: 'plug-1', dialect: 'tasmota', token: 'plug-1-token' });
    await repo.devices.register({ id: 'plug-2', dialect: 'tasmota', token: 'plug-2-token' });
    const gw = helper.getNode('gw');
    const warnings = [];
    const warn = gw.warn.bind(gw);
    gw.warn = (text) => { warnings.push(text); warn(text); };
    await h.waitForPort(port);
    const plug = await h.connect(`mqtt://127.0.0.1:${port}`, { username: 'plug-1-token', clientId: 'DVES_00A1B2' });
    clients.push(plug);
    const granted = await plug.subscribeAsync({ 'cmnd/plug-1/#': { qos: 0 }, 'cmnd/tasmotas/#': { qos: 0 }, 'cmnd/DVES_00A1B2_fb/#': { qos: 0 } }).catch((err) => err.packet.granted);
    assert.deepStrictEqual(granted.map((g) => (typeof g === 'number' ? g : g.qos)), [0, 128, 128]);
    assert.deepStrictEqual(warnings, []);
    await plug.subscribeAsync('cmnd/plug-2/#').catch(() => undefined);
    await h.until(() => warnings.length > 0);
    assert.deepStrictEqual(warnings, ['ota-gateway.warn.denied']);
  });

  it('tells the repository when a device connects, what the broker granted it, and when it leaves', async function () {
    const repo = helper.getNode('repo').repo;
    await repo.devices.register({ id: 'sm-1', dialect: 'sming', attributes: { app: 'demo' } });
    const seen = [];
    repo.on('presence', (e) => seen.push(e));
    await h.waitForPort(port);
    const device = await h.connect(`mqtt://127.0.0.1:${port}`, { clientId: 'sm-1', reconnectPeriod: 0 });
    await h.until(() => seen.some((e) => e.event === 'connect'));
    // One filter outside its ACL is refused: only the granted one is reported.
    await new Promise((resolve) => device.subscribe(['a/demo/u/1.0', 'a/other/u/1.0'], { qos: 1 }, () => resolve()));
    await h.until(() => seen.some((e) => e.event === 'subscribe'));
    device.end(true);
    await h.until(() => seen.some((e) => e.event === 'disconnect'));
    assert.deepStrictEqual(seen.map((e) => [e.device, e.dialect, e.event, e.filters]), [
      ['sm-1', 'sming', 'connect', undefined],
      ['sm-1', 'sming', 'subscribe', ['a/demo/u/1.0']],
      ['sm-1', 'sming', 'disconnect', undefined],
    ]);
    assert.ok(seen.every((e) => e.session === seen[0].session && !Number.isNaN(Date.parse(e.at))));
  });

  it('closes its port and the devices\' connections on redeploy', async function () {
    await h.waitForPort(port);
    const device = await h.connect(`mqtt://127.0.0.1:${port}`, { username: 'tb-1-token', clientId: 'dev', reconnectPeriod: 0 });
    const closed = new Promise((resolve) => device.once('close', resolve));
    await helper.unload();
    await closed;
    device.end(true);
    // The port is free again: a new gateway can take it.
    await helper.load([nodes.repository, gatewayNode], [
      { id: 'repo', type: 'ota-repository', storageDir: dir },
      { id: 'gw', type: 'ota-gateway', repository: 'repo', host: '127.0.0.1', port, broker: broker.url },
    ]);
    await h.waitForPort(port);
    const again = await h.connect(`mqtt://127.0.0.1:${port}`, { username: 'tb-1-token', clientId: 'dev' });
    clients.push(again);
  });

  it('stays deployed without a repository, and lets no device in', async function () {
    await helper.unload();
    await helper.load([nodes.repository, gatewayNode], [{ id: 'gw', type: 'ota-gateway', host: '127.0.0.1', port, broker: broker.url }]);
    assert.ok(helper.getNode('gw'), 'the node is deployed');
    const refused = await new Promise((resolve) => {
      const s = require('net').connect(port, '127.0.0.1');
      s.once('connect', () => { s.destroy(); resolve(false); });
      s.once('error', (err) => resolve(err.code === 'ECONNREFUSED'));
    });
    assert.ok(refused, 'nothing listens without a repository');
  });
});
