'use strict';
const assert = require('assert');
const fs = require('fs');
const { helper, nodes } = require('../support/red');
const { tempDir } = require('../support/images');
const h = require('./helpers');
const { upstreamFromBrokerNode, brokerSource } = require('../../dist/nodes/broker-url.js');

const gatewayNode = require('../../dist/nodes/ota-gateway.js');
const mqttNodes = require('@node-red/nodes/core/network/10-mqtt.js');
const tlsNodes = require('@node-red/nodes/core/network/05-tls.js');
const { execFileSync } = require('child_process');
const path = require('path');
const tls = require('tls');

// The gateway node had a broker URL and credentials of its own: an imported flow whose mqtt-broker
// node pointed at the user's broker still sent devices to mqtt://localhost:1883, without the
// broker's username and password. It now uses the flow's mqtt-broker config node; version 1 flows
// (a URL, no version) keep working.

describe('ota-gateway node: which broker it proxies to', function () {
  this.timeout(15000);
  let broker, dir, port;
  const clients = [];

  before(async () => {
    broker = await h.startAedes();
    // The broker takes only Node-RED's own account.
    broker.aedes.authenticate = (_client, username, password, done) => done(null, username === 'node-red' && String(password) === 's3cret');
  });
  after(async () => {
    await broker.close();
  });
  beforeEach(async () => {
    dir = tempDir();
    port = await h.freePort();
  });
  afterEach(async () => {
    await h.endAll(clients.splice(0));
    await helper.unload();
    fs.rmSync(dir, { recursive: true, force: true });
  });

  async function deploy(gateway, credentials = {}) {
    await helper.load([nodes.repository, gatewayNode, mqttNodes], [
      { id: 'f1', type: 'tab' },
      { id: 'repo', type: 'ota-repository', storageDir: dir },
      { id: 'mqtt', type: 'mqtt-broker', name: 'local broker', broker: '127.0.0.1', port: String(broker.port), protocolVersion: '4', autoConnect: true },
      { id: 'gw', z: 'f1', type: 'ota-gateway', repository: 'repo', host: '127.0.0.1', port, namespace: 'fleet', ...gateway, wires: [[]] },
    ], { mqtt: { user: 'node-red', password: 's3cret' }, ...credentials });
    await helper.getNode('repo').repo.devices.register({ id: 'tb-1', dialect: 'thingsboard', token: 'tb-1-token' });
  }

  /** A device publishes through the gateway; a client on the broker sees it in the device's namespace. */
  async function deviceReachesBroker() {
    await h.waitForPort(port);
    const server = await h.connect(broker.url, { username: 'node-red', password: 's3cret' });
    clients.push(server);
    await server.subscribeAsync('fleet/tb-1/#');
    const got = new Promise((resolve) => server.once('message', (topic, payload) => resolve([topic, String(payload)])));
    const device = await h.connect(`mqtt://127.0.0.1:${port}`, { username: 'tb-1-token', clientId: 'dev' });
    clients.push(device);
    await device.publishAsync('v1/devices/me/telemetry', '{"fw_state":"DOWNLOADING"}', { qos: 1 });
    assert.deepStrictEqual(await got, ['fleet/tb-1/v1/devices/me/telemetry', '{"fw_state":"DOWNLOADING"}']);
  }

  it('connects devices to the host, port and account of the flow\'s mqtt-broker node', async () => {
    await deploy({ mqttBroker: 'mqtt', version: 2 });
    await deviceReachesBroker();
  });

  it('keeps a version 1 flow working: its broker URL and its own username and password', async () => {
    await deploy({ broker: broker.url }, { gw: { username: 'node-red', password: 's3cret' } });
    await deviceReachesBroker();
  });

  it('says which setting is missing when a version 2 gateway has no broker', async () => {
    await deploy({ version: 2 });
    const gw = helper.getNode('gw');
    await h.until(() => helper.log().args.some((a) => a[0].id === 'gw' && a[0].level === helper.log().ERROR));
    const error = helper.log().args.find((a) => a[0].id === 'gw' && a[0].level === helper.log().ERROR)[0].msg;
    assert.match(String(error), /noBroker|No MQTT broker selected/);
    assert.ok(gw, 'the node exists and reported');
  });

  it('reaches a TLS broker with the CA of the broker node\'s tls-config node (a private CA, verified)', async () => {
    // A certificate of our own for 127.0.0.1: only a client given this CA accepts the broker.
    const certDir = tempDir();
    const key = path.join(certDir, 'key.pem');
    const cert = path.join(certDir, 'cert.pem');
    execFileSync('openssl', ['req', '-x509', '-newkey', 'rsa:2048', '-nodes', '-keyout', key, '-out', cert, '-days', '1', '-subj', '/CN=127.0.0.1', '-addext', 'subjectAltName=IP:127.0.0.1'], { stdio: 'ignore' });
    const { Aedes } = require('aedes');
    const aedes = await Aedes.createBroker();
    const server = tls.createServer({ key: fs.readFileSync(key), cert: fs.readFileSync(cert) }, (socket) => aedes.handle(socket));
    await new Promise((resolve) => server.listen(0, '127.0.0.1', resolve));
    const seen = new Promise((resolve) => aedes.on('publish', (packet) => { if (packet.topic.startsWith('fleet/')) resolve(packet.topic); }));
    try {
      await helper.load([nodes.repository, gatewayNode, tlsNodes, mqttNodes], [
        { id: 'f1', type: 'tab' },
        { id: 'repo', type: 'ota-repository', storageDir: dir },
        { id: 'tls', type: 'tls-config', cert: '', key: '', ca: cert, verifyservercert: true },
        { id: 'mqtts', type: 'mqtt-broker', broker: '127.0.0.1', port: String(server.address().port), usetls: true, tls: 'tls', protocolVersion: '4' },
        { id: 'gw', z: 'f1', type: 'ota-gateway', repository: 'repo', host: '127.0.0.1', port, namespace: 'fleet', mqttBroker: 'mqtts', version: 2, wires: [[]] },
      ]);
      await helper.getNode('repo').repo.devices.register({ id: 'tb-1', dialect: 'thingsboard', token: 'tb-1-token' });
      await h.waitForPort(port);
      const device = await h.connect(`mqtt://127.0.0.1:${port}`, { username: 'tb-1-token', clientId: 'dev' });
      clients.push(device);
      await device.publishAsync('v1/devices/me/telemetry', '{}', { qos: 1 });
      assert.strictEqual(await seen, 'fleet/tb-1/v1/devices/me/telemetry');
    } finally {
      await h.endAll(clients.splice(0));
      await helper.unload();
      await new Promise((r) => aedes.close(r));
      await new Promise((r) => server.close(r));
      fs.rmSync(certDir, { recursive: true, force: true });
    }
  });

  it('reads a TLS broker\'s CA, client certificate and verification, and MQTT 5, from the broker node', () => {
    const upstream = upstreamFromBrokerNode({
      id: 'b', name: 'cloud', brokerurl: 'mqtts://broker.example:8883',
      options: { username: 'u', password: 'p', protocolVersion: 5, ca: 'CA', cert: 'CERT', key: 'KEY', rejectUnauthorized: true, servername: 'broker.example', clientId: 'x', keepalive: 60 },
    });
    assert.deepStrictEqual(upstream.tls, { ca: 'CA', cert: 'CERT', key: 'KEY', servername: 'broker.example', rejectUnauthorized: true });
    assert.strictEqual(upstream.protocol, '5');
    assert.strictEqual(upstream.username, 'u');
    assert.ok(!upstream.label.includes('p@'), 'no password in the log label');
    assert.throws(() => upstreamFromBrokerNode({ id: 'w', brokerurl: 'ws://broker.example/mqtt', options: {} }), /over TCP or TLS/);
  });

  it('migrates: a version 1 flow without a URL meant mqtt://localhost:1883; version 2 must pick', () => {
    assert.deepStrictEqual(brokerSource({}), { url: 'mqtt://localhost:1883' });
    assert.deepStrictEqual(brokerSource({ broker: 'mqtt://b:1' }), { url: 'mqtt://b:1' });
    assert.deepStrictEqual(brokerSource({ version: 2, broker: '' }), null);
    assert.deepStrictEqual(brokerSource({ version: 2, mqttBroker: 'id', broker: 'mqtt://b:1' }), { node: 'id' });
  });
});
