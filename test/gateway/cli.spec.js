'use strict';
const assert = require('assert');
const { spawn } = require('child_process');
const h = require('./helpers');

// bin/ota-gateway.js: the same front door without Node-RED, over a repository directory.

describe('ota-gateway command line', function () {
  this.timeout(20000);
  let broker, store, cli, url;
  const clients = [];

  before(async function () {
    broker = await h.startAedes();
    store = h.makeRepository();
    await store.repo.devices.register({ id: 'cli-1', dialect: 'tago', token: 'cli-1-token' });
    await store.repo.flush();
    cli = await h.runCli(['--dir', store.dir, '--listen', '127.0.0.1:0', '--upstream', broker.url, '--ns', 'cli'], { OTA_SECRET: 'x'.repeat(40) });
    url = cli.url;
  });

  after(async function () {
    await h.endAll(clients);
    if (cli) await cli.stop();
    if (broker) await broker.close();
    if (store) await store.close();
  });

  it('proxies a TagoIO device into its namespace and refuses a wrong token', async function () {
    const device = await h.connect(url, { username: 'Token', password: 'cli-1-token', clientId: 'board' });
    clients.push(device);
    const server = await h.connect(broker.url);
    clients.push(server);
    const got = new Promise((resolve) => device.once('message', (topic, payload) => resolve([topic, payload.toString()])));
    await device.subscribeAsync('tago/data/post');
    await server.publishAsync('cli/cli-1/tago/data/post', '{"variable":"firmware_manifest"}');
    assert.deepStrictEqual(await got, ['tago/data/post', '{"variable":"firmware_manifest"}']);
    await assert.rejects(h.connect(url, { username: 'Token', password: 'nope', clientId: 'board2' }), (err) => err.code === 4);
  });

  it('bridges an MQTT 5 device to the embedded broker (3.1.1 only) and logs that once', async function () {
    for (const clientId of ['v5-a', 'v5-b']) {
      const device = await h.connect(url, { protocolVersion: 5, username: 'Token', password: 'cli-1-token', clientId });
      clients.push(device);
      assert.strictEqual(device.connack.reasonCode, 0);
    }
    assert.strictEqual(cli.output().match(/MQTT 5 devices are bridged to MQTT 3\.1\.1/g).length, 1);
  });

  it('refuses an unknown --upstream-protocol before listening', async function () {
    const bad = spawn(process.execPath, [h.GATEWAY_BIN, '--dir', store.dir, '--upstream-protocol', '4'], { stdio: ['ignore', 'ignore', 'pipe'] });
    let err = '';
    bad.stderr.on('data', (d) => (err += d));
    assert.strictEqual(await new Promise((resolve) => bad.once('exit', resolve)), 2);
    assert.match(err, /--upstream-protocol must be auto, 5 or 3\.1\.1/);
  });

  it('stops cleanly on SIGTERM', async function () {
    assert.strictEqual(await cli.stop(), 0);
  });
});
