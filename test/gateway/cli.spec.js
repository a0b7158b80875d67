'use strict';
const assert = require('assert');
const { spawn } = require('child_process');
const h = require('./helpers');
const { gatewayRig } = require('./brokers');

// bin/ota-gateway.js: the same front door without Node-RED, over a repository directory.

describe('ota-gateway command line', function () {
  this.timeout(20000);
  const rig = gatewayRig(() => h.startAedes(), {
    devices: [{ id: 'cli-1', dialect: 'tago', token: 'cli-1-token' }],
    server: false,
    cli: ['--ns', 'cli'],
    env: { OTA_SECRET: 'x'.repeat(40) },
  });

  it('proxies a TagoIO device into its namespace and refuses a wrong token', async function () {
    const device = await h.connect(rig.gateway.url, { username: 'Token', password: 'cli-1-token', clientId: 'board' });
    rig.clients.push(device);
    const server = await h.connect(rig.broker.url);
    rig.clients.push(server);
    const got = new Promise((resolve) => device.once('message', (topic, payload) => resolve([topic, payload.toString()])));
    await device.subscribeAsync('tago/data/post');
    await server.publishAsync('cli/cli-1/tago/data/post', '{"variable":"firmware_manifest"}');
    assert.deepStrictEqual(await got, ['tago/data/post', '{"variable":"firmware_manifest"}']);
    await assert.rejects(h.connect(rig.gateway.url, { username: 'Token', password: 'nope', clientId: 'board2' }), (err) => err.code === 4);
  });

  it('bridges an MQTT 5 device to the embedded broker (3.1.1 only) and logs that once', async function () {
    for (const clientId of ['v5-a', 'v5-b']) {
      const device = await h.connect(rig.gateway.url, { protocolVersion: 5, username: 'Token', password: 'cli-1-token', clientId });
      rig.clients.push(device);
      assert.strictEqual(device.connack.reasonCode, 0);
    }
    assert.strictEqual(rig.gateway.output().match(/MQTT 5 devices are bridged to MQTT 3\.1\.1/g).length, 1);
  });

  it('refuses an unknown --upstream-protocol before listening', async function () {
    const bad = spawn(process.execPath, [h.GATEWAY_BIN, '--dir', rig.store.dir, '--upstream-protocol', '4'], { stdio: ['ignore', 'ignore', 'pipe'] });
    let err = '';
    bad.stderr.on('data', (d) => (err += d));
    assert.strictEqual(await new Promise((resolve) => bad.once('exit', resolve)), 2);
    assert.match(err, /--upstream-protocol must be auto, 5 or 3\.1\.1/);
  });

  it('stops cleanly on SIGTERM', async function () {
    assert.strictEqual(await rig.gateway.stop(), 0);
  });
});
