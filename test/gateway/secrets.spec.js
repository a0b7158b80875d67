'use strict';
const assert = require('assert');
const fs = require('fs');
const path = require('path');
const { spawn } = require('child_process');
const mqtt = require('mqtt');
const { helper, nodes } = require('../support/red');
const { tempDir } = require('../support/images');
const h = require('./helpers');

const gatewayNode = require('../../dist/nodes/ota-gateway.js');

// Tokens never leave the gateway: a ThingsBoard device's username is its access token, and the
// `refused` event used to carry it into flows, the debug sidebar and logs, wrong ones and (while
// the broker was down) valid ones alike. The upstream password and the repository secret neither.

const VALID = 'valid-token-0123456789';
const WRONG = 'wrong-token-9876543210';
const UPSTREAM_PASSWORD = 'upstream-pass-4242';
const SECRET = 's'.repeat(40);

/**
 * The two refusals that carried a token: a wrong one, and a valid one while the broker is down
 * (now held, then closed without a CONNACK so the device reconnects: no CONNACK code to check).
 */
async function refuseBothWays(url, downUrl) {
  await assert.rejects(h.connect(url, { username: WRONG, clientId: 'w' }), (err) => err.code === 4);
  await new Promise((resolve, reject) => {
    const client = mqtt.connect(downUrl, { username: VALID, clientId: 'v', reconnectPeriod: 0, connectTimeout: 5000 });
    client.once('connect', () => reject(new Error('connected to a dead broker')));
    client.once('error', () => client.end(true, resolve));
    client.once('close', () => client.end(true, resolve));
  });
}

/** Gives up on a dead broker quickly (the default holds a CONNECT for 8 s). */
const QUICK = { limits: { upstreamRetryMs: 300 } };

function assertNoSecrets(text, where) {
  for (const secret of [VALID, WRONG, UPSTREAM_PASSWORD, SECRET]) assert.ok(!text.includes(secret), `${where} shows ${secret}:\n${text}`);
}

function withCredentials(url) {
  return url.replace('mqtt://', `mqtt://gw:${UPSTREAM_PASSWORD}@`);
}

describe('ota-gateway: secrets', function () {
  this.timeout(15000);
  let broker, deadPort;

  before(async function () {
    broker = await h.startAedes();
    deadPort = await h.freePort();
  });
  after(async function () {
    await broker.close();
  });

  it('gives no event a username, password or token', async function () {
    const store = h.makeRepository();
    await store.repo.devices.register({ id: 'tb', dialect: 'thingsboard', token: VALID });
    const up = await h.startGateway(store.repo, withCredentials(broker.url));
    const down = await h.startGateway(store.repo, withCredentials(`mqtt://127.0.0.1:${deadPort}`), QUICK);
    const emitted = [];
    for (const g of [up, down]) {
      const emit = g.emit.bind(g);
      g.emit = (name, payload) => {
        emitted.push([name, payload instanceof Error ? payload.message : payload]);
        return emit(name, payload);
      };
    }
    try {
      await refuseBothWays(up.url, down.url);
      assert.ok(emitted.some(([name]) => name === 'refused'));
      assert.strictEqual(down.counters.brokerUnavailable, 1, 'the dead broker is counted');
      assertNoSecrets(JSON.stringify(emitted), 'a gateway event');
    } finally {
      await up.close();
      await down.close();
      await store.close();
    }
  });

  describe('the node', function () {
    let dir, port, downPort;
    afterEach(async () => {
      await helper.unload();
      fs.rmSync(dir, { recursive: true, force: true });
    });

    it('sends no token to the flow, the log or the status', async function () {
      dir = tempDir();
      [port, downPort] = [await h.freePort(), await h.freePort()];
      const gw = (id, p, url) => ({ id, z: 'f1', type: 'ota-gateway', repository: 'repo', host: '127.0.0.1', port: p, broker: withCredentials(url), upstreamRetry: '0.3', wires: [['events']] });
      await helper.load([nodes.repository, gatewayNode], [
        { id: 'f1', type: 'tab' },
        { id: 'repo', type: 'ota-repository', storageDir: dir },
        gw('up', port, broker.url),
        gw('down', downPort, `mqtt://127.0.0.1:${deadPort}`),
        { id: 'events', z: 'f1', type: 'helper' },
      ]);
      await helper.getNode('repo').repo.devices.register({ id: 'tb', dialect: 'thingsboard', token: VALID });
      const statuses = [];
      for (const id of ['up', 'down']) {
        const node = helper.getNode(id);
        const status = node.status.bind(node);
        node.status = (s) => { statuses.push(s); status(s); };
      }
      const messages = [];
      helper.getNode('events').on('input', (msg) => messages.push(msg));
      await h.waitForPort(port);
      await h.waitForPort(downPort);
      await refuseBothWays(`mqtt://127.0.0.1:${port}`, `mqtt://127.0.0.1:${downPort}`);
      await h.until(() => messages.some((m) => m.topic === 'refused') && helper.log().args.some((a) => /unavailable/.test(JSON.stringify(a))));
      assertNoSecrets(JSON.stringify(messages), 'a message');
      assertNoSecrets(JSON.stringify(statuses), 'a status');
      assertNoSecrets(JSON.stringify(helper.log().args), 'the log');
    });
  });

  describe('the command line', function () {
    const bin = h.GATEWAY_BIN;
    let store;
    before(async function () {
      store = h.makeRepository();
      await store.repo.devices.register({ id: 'tb', dialect: 'thingsboard', token: VALID });
      await store.repo.flush();
    });
    after(async function () {
      await store.close();
    });

    /** Runs the gateway over this suite's repository (helpers.js runCli). */
    const run = (args, env) => h.runCli(['--dir', store.dir, '--listen', '127.0.0.1:0', ...args], env);

    it('logs no token and no upstream password', async function () {
      const secretFile = path.join(store.dir, 'secret.txt');
      fs.writeFileSync(secretFile, 'x'.repeat(40) + '\n', { mode: 0o600 });
      const up = await run(['--upstream', withCredentials(broker.url), '--secret-file', secretFile]);
      const down = await run(['--upstream', withCredentials(`mqtt://127.0.0.1:${deadPort}`), '--upstream-retry', '0.3'], { OTA_SECRET: 'x'.repeat(40) });
      try {
        await refuseBothWays(up.url, down.url);
        await h.until(() => /refused/.test(up.output()) && /unavailable/.test(down.output()));
      } finally {
        await up.stop();
        await down.stop();
      }
      assertNoSecrets(up.output() + down.output(), 'the command line output');
    });

    it('takes no secret on the command line, where ps shows it, and says where to put it', async function () {
      const child = spawn(process.execPath, [bin, '--dir', store.dir, '--listen', '127.0.0.1:0', '--secret', SECRET], { stdio: ['ignore', 'pipe', 'pipe'] });
      let err = '';
      child.stderr.on('data', (d) => (err += d));
      // A gateway that accepted it would run on: stop it, and fail below.
      const guard = setTimeout(() => child.kill('SIGKILL'), 5000);
      const code = await new Promise((resolve) => child.once('exit', resolve));
      clearTimeout(guard);
      assert.strictEqual(code, 2);
      assert.match(err, /--secret-file/);
      assert.match(err, /OTA_SECRET/);
    });
  });
});
