'use strict';
// Real parts for the gateway specs: aedes in-process, a mosquitto of our own, a repository in a
// temp dir, mqtt.js devices, and a plain mqtt.js "server side" answering chunk requests upstream.

const fs = require('fs');
const os = require('os');
const net = require('net');
const path = require('path');
const crypto = require('crypto');
const { spawn } = require('child_process');
const mqtt = require('mqtt');
const { OtaRepository } = require('../../dist/core/repository');
const { OtaGateway, RegistryDirectory } = require('../../dist/gateway');

const servers = require('../../scripts/servers');

const MOSQUITTO = process.env.MOSQUITTO || '/usr/sbin/mosquitto';
const { freePort } = servers;
const hasMosquitto = servers.haveMosquitto;

function tempDir(prefix) {
  return fs.mkdtempSync(path.join(os.tmpdir(), prefix));
}

async function startAedes() {
  return { ...(await servers.startAedes()), version: 4 };
}

/** Our own mosquitto (MQTT 5) on a free loopback port; resolves once it accepts connections. */
const startMosquitto = (extraConfig = []) => servers.startMosquitto({ extraConfig });

function makeRepository() {
  const dir = tempDir('ota-gw-repo-');
  const repo = new OtaRepository({ dir, secret: 'x'.repeat(40) });
  return {
    repo,
    dir,
    async close() {
      await repo.flush();
      fs.rmSync(dir, { recursive: true, force: true });
    },
  };
}

async function startGateway(repo, brokerUrl, options = {}) {
  const { mode, autoRegister, product, now, ...rest } = options;
  const gateway = new OtaGateway({
    directory: new RegistryDirectory(repo.devices, { mode, autoRegister, product, now }),
    upstream: brokerUrl,
    namespace: 'ota',
    ...rest,
  });
  const address = await gateway.listen(0, '127.0.0.1');
  gateway.url = `mqtt://127.0.0.1:${address.port}`;
  gateway.port = address.port;
  return gateway;
}

const GATEWAY_BIN = path.join(__dirname, '../../bin/ota-gateway.js');

/**
 * Runs the command line gateway (bin/ota-gateway.js) with `args`, `env` over this process's, until
 * it says where devices connect; resolves with that URL and port, its output so far (a getter:
 * stdout and stderr) and a stop() that ends it with SIGTERM and resolves with its exit code.
 */
async function runCli(args, env = {}) {
  const child = spawn(process.execPath, [GATEWAY_BIN, ...args], { stdio: ['ignore', 'pipe', 'pipe'], env: { ...process.env, ...env } });
  const exited = new Promise((resolve) => child.once('exit', resolve));
  let out = '';
  child.stderr.on('data', (d) => (out += d));
  const port = await new Promise((resolve, reject) => {
    child.stdout.on('data', (d) => {
      out += d;
      const m = /devices connect to [\d.]+:(\d+)/.exec(out);
      if (m) resolve(Number(m[1]));
    });
    child.once('exit', () => reject(new Error(`ota-gateway exited: ${out}`)));
  });
  return {
    url: `mqtt://127.0.0.1:${port}`,
    port,
    output: () => out,
    stop: async () => {
      if (child.exitCode === null) child.kill('SIGTERM');
      return exited;
    },
  };
}

/** Connects an mqtt.js client; resolves with it once connected, rejects with the CONNACK error. */
function connect(url, options = {}) {
  return new Promise((resolve, reject) => {
    const client = mqtt.connect(url, { reconnectPeriod: 0, connectTimeout: 5000, ...options });
    client.once('connect', (connack) => {
      client.removeAllListeners('error');
      client.connack = connack;
      resolve(client);
    });
    client.once('error', (err) => {
      client.end(true);
      reject(err);
    });
  });
}

function endAll(clients) {
  return Promise.all(clients.filter(Boolean).map((c) => new Promise((resolve) => c.end(false, {}, resolve))));
}

const sha256 = (buf) => crypto.createHash('sha256').update(buf).digest('hex');

/**
 * The server side, as a plain mqtt.js client on the real broker: answers ThingsBoard chunk
 * requests and TagoIO firmware_request posts from the per-device namespaces.
 */
async function startResponder(brokerUrl, images, version) {
  const client = await connect(brokerUrl, { protocolVersion: version, clientId: 'responder-' + crypto.randomBytes(3).toString('hex') });
  const seen = [];
  client.on('message', (topic, payload) => {
    seen.push(topic);
    const tb = /^ota\/([^/]+)\/v2\/fw\/request\/([^/]+)\/chunk\/(\d+)$/.exec(topic);
    if (tb) {
      const image = images.get(tb[1]);
      if (!image) return;
      const n = Number(tb[3]);
      const size = Number(payload.toString()) || image.length;
      client.publish(`ota/${tb[1]}/v2/fw/response/${tb[2]}/chunk/${n}`, image.subarray(n * size, (n + 1) * size));
      return;
    }
    const tago = /^ota\/([^/]+)\/tago\/data\/post$/.exec(topic);
    if (tago) {
      let body;
      try { body = JSON.parse(payload.toString()); } catch { return; }
      if (body.variable !== 'firmware_request') return;
      const image = images.get(tago[1]);
      const i = body.value;
      const data = image.subarray(i * 1024, (i + 1) * 1024).toString('base64');
      client.publish(topic, JSON.stringify({ variable: 'firmware_block', value: i, metadata: { data } }));
    }
  });
  await client.subscribeAsync(['ota/+/v2/fw/request/+/chunk/+', 'ota/+/tago/data/post']);
  client.seen = seen;
  return client;
}

/**
 * A ThingsBoard-style device: requestId 1 like every other device (they collide on a plain
 * broker), asks chunk after chunk, appends what comes back, resolves with the image it built.
 */
async function thingsboardDownload(client, { size, chunkSize = 1024, requestId = 1, filter = 'v2/fw/response/+' }) {
  const total = Math.ceil(size / chunkSize);
  const parts = [];
  await client.subscribeAsync(filter, { qos: 1 });
  return new Promise((resolve, reject) => {
    const prefix = `v2/fw/response/${requestId}/chunk/`;
    client.on('message', (topic, payload) => {
      if (!topic.startsWith(prefix)) return;
      const n = Number(topic.slice(prefix.length));
      if (n !== parts.length) return reject(new Error(`chunk ${n} arrived, expected ${parts.length}`));
      parts.push(Buffer.from(payload));
      if (parts.length === total) resolve(Buffer.concat(parts));
      else ask(parts.length);
    });
    const ask = (n) => client.publish(`v2/fw/request/${requestId}/chunk/${n}`, String(chunkSize), { qos: 1 });
    ask(0);
  });
}

/** A TagoIO-style device: firmware_request i on tago/data/post, firmware_block i comes back. */
async function tagoDownload(client, { size }) {
  const total = Math.ceil(size / 1024);
  const parts = [];
  await client.subscribeAsync('tago/data/post', { qos: 1 });
  return new Promise((resolve, reject) => {
    client.on('message', (topic, payload) => {
      let body;
      try { body = JSON.parse(payload.toString()); } catch { return; }
      if (body.variable !== 'firmware_block') return;
      if (body.value !== parts.length) return reject(new Error(`block ${body.value} arrived, expected ${parts.length}`));
      parts.push(Buffer.from(body.metadata.data, 'base64'));
      if (parts.length === total) resolve(Buffer.concat(parts));
      else ask(parts.length);
    });
    const ask = (i) => client.publish('tago/data/post', JSON.stringify({ variable: 'firmware_request', value: i }), { qos: 1 });
    ask(0);
  });
}

/** Resolves once something accepts connections on the port. */
async function waitForPort(port) {
  for (;;) {
    const ok = await new Promise((resolve) => {
      const s = net.connect(port, '127.0.0.1');
      s.once('connect', () => { s.destroy(); resolve(true); });
      s.once('error', () => resolve(false));
    });
    if (ok) return;
    await sleep(20);
  }
}

/** A bare TCP client speaking mqtt-packet, for what mqtt.js would never send. */
function rawClient(port, protocolVersion = 4) {
  const mqttPacket = require('mqtt-packet');
  const socket = net.connect(port, '127.0.0.1');
  socket.setNoDelay(true);
  const parser = mqttPacket.parser({ protocolVersion });
  const packets = [];
  const waiters = [];
  parser.on('packet', (p) => {
    const w = waiters.findIndex((x) => x.cmd === p.cmd);
    if (w < 0) packets.push(p);
    else waiters.splice(w, 1)[0].resolve(p);
  });
  socket.on('data', (d) => parser.parse(d));
  socket.on('error', () => {});
  const closed = new Promise((resolve) => socket.once('close', resolve));
  return {
    socket,
    packets,
    closed,
    send: (packet) => socket.write(mqttPacket.generate(packet, { protocolVersion })),
    write: (bytes) => socket.write(bytes),
    next: (cmd) => {
      const i = packets.findIndex((p) => p.cmd === cmd);
      if (i >= 0) return Promise.resolve(packets.splice(i, 1)[0]);
      return new Promise((resolve) => waiters.push({ cmd, resolve }));
    },
    end: () => new Promise((resolve) => { socket.end(); closed.then(resolve); }),
  };
}

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

/** Resolves once `predicate()` holds (polling); the test's own timeout bounds it. */
async function until(predicate) {
  while (!predicate()) await sleep(10);
}

module.exports = {
  MOSQUITTO,
  hasMosquitto,
  startAedes,
  startMosquitto,
  makeRepository,
  startGateway,
  runCli,
  GATEWAY_BIN,
  connect,
  endAll,
  sha256,
  startResponder,
  thingsboardDownload,
  tagoDownload,
  sleep,
  until,
  rawClient,
  freePort,
  waitForPort,
};
