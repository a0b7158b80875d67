'use strict';
const assert = require('assert');
const path = require('path');
const { spawn } = require('child_process');
const h = require('./helpers');

// bin/ota-gateway.js: the same front door without Node-RED, over a repository directory.

describe('ota-gateway command line', function () {
  this.timeout(20000);
  let broker, store, child, exited, url;
  const clients = [];

  before(async function () {
    broker = await h.startAedes();
    store = h.makeRepository();
    await store.repo.devices.register({ id: 'cli-1', dialect: 'tago', token: 'cli-1-token' });
    await store.repo.flush();
    child = spawn(process.execPath, [path.join(__dirname, '../../bin/ota-gateway.js'), '--dir', store.dir, '--listen', '127.0.0.1:0', '--upstream', broker.url, '--ns', 'cli'], {
      stdio: ['ignore', 'pipe', 'pipe'],
      env: { ...process.env, OTA_SECRET: 'x'.repeat(40) },
    });
    exited = new Promise((resolve) => child.once('exit', (code) => resolve(code)));
    let out = '';
    child.stderr.on('data', (d) => (out += d));
    url = await new Promise((resolve, reject) => {
      child.stdout.on('data', (d) => {
        out += d;
        const m = /devices connect to [\d.]+:(\d+)/.exec(out);
        if (m) resolve(`mqtt://127.0.0.1:${m[1]}`);
      });
      child.once('exit', () => reject(new Error(`ota-gateway exited: ${out}`)));
    });
  });

  after(async function () {
    await h.endAll(clients);
    if (child && child.exitCode === null) {
      child.kill('SIGTERM');
      await exited;
    }
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

  it('stops cleanly on SIGTERM', async function () {
    child.kill('SIGTERM');
    assert.strictEqual(await exited, 0);
  });
});
