'use strict';
// The servers `npm start`, the tests and the benchmarks start, on loopback ports only: the
// embedded MQTT broker (aedes 1.x, MQTT 3.1.1) and Debian's mosquitto (MQTT 5, $share).
// TCP_NODELAY on every connection, as the README tells users to configure their broker.
const fs = require('fs');
const net = require('net');
const os = require('os');
const path = require('path');
const { spawn } = require('child_process');

const MOSQUITTO = process.env.MOSQUITTO || '/usr/sbin/mosquitto';

/** A port free right now on 127.0.0.1 (for servers whose port must be known before they start). */
function freePort() {
  return new Promise((resolve, reject) => {
    const s = net.createServer();
    s.once('error', reject);
    s.listen(0, '127.0.0.1', () => {
      const { port } = s.address();
      s.close(() => resolve(port));
    });
  });
}

function haveMosquitto() {
  return fs.existsSync(MOSQUITTO);
}

/**
 * mosquitto in a child process with its own config: `listener <port> 127.0.0.1`, anonymous
 * access, `set_tcp_nodelay true`, no persistence, plus `extraConfig` lines. `port`: a given one
 * (to start a broker again where its clients expect it), else a free one.
 */
async function startMosquitto({ extraConfig = [], port: wanted = 0 } = {}) {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'mqtt-ota-mosquitto-'));
  const port = wanted || (await freePort());
  const conf = path.join(dir, 'mosquitto.conf');
  fs.writeFileSync(conf, [`listener ${port} 127.0.0.1`, 'allow_anonymous true', 'set_tcp_nodelay true', 'persistence false', ...extraConfig, ''].join('\n'));
  const child = spawn(MOSQUITTO, ['-c', conf], { stdio: ['ignore', 'ignore', 'pipe'] });
  let stderr = '';
  child.stderr.on('data', (d) => (stderr = (stderr + d).slice(-4000)));
  const exited = new Promise((resolve) => child.once('exit', resolve));
  for (let i = 0; ; i++) {
    if (child.exitCode !== null) throw new Error(`mosquitto exited: ${stderr}`);
    const ok = await new Promise((resolve) => {
      const s = net.connect(port, '127.0.0.1');
      s.once('connect', () => { s.destroy(); resolve(true); });
      s.once('error', () => resolve(false));
    });
    if (ok) break;
    if (i > 200) {
      child.kill('SIGKILL');
      throw new Error(`mosquitto did not start: ${stderr}`);
    }
    await new Promise((r) => setTimeout(r, 50));
  }
  return {
    port,
    url: `mqtt://127.0.0.1:${port}`,
    version: 5,
    pid: child.pid,
    /** Kills it as a crash would (SIGKILL): no will messages sent, no goodbye to clients. */
    async kill() {
      if (child.exitCode === null && child.signalCode === null) {
        child.kill('SIGKILL');
        await exited;
      }
    },
    async close() {
      if (child.exitCode === null && child.signalCode === null) {
        child.kill('SIGTERM');
        await exited;
      }
      fs.rmSync(dir, { recursive: true, force: true });
    },
  };
}

/**
 * @param {object} [o]
 * @param {number} [o.port=0]         0: any free port
 * @param {boolean} [o.noDelay=true]  TCP_NODELAY on the broker's side of each connection
 */
async function startAedes({ port = 0, noDelay = true } = {}) {
  const { Aedes } = require('aedes');
  const aedes = await Aedes.createBroker();
  const sockets = new Set();
  const subscribed = new Set();
  aedes.on('subscribe', (subs) => subs.forEach((s) => subscribed.add(s.topic)));
  const server = net.createServer((socket) => {
    if (noDelay) socket.setNoDelay(true);
    sockets.add(socket);
    socket.on('close', () => sockets.delete(socket));
    aedes.handle(socket);
  });
  await new Promise((resolve, reject) => {
    server.once('error', reject);
    server.listen(port, '127.0.0.1', resolve);
  });
  const actual = server.address().port;
  return {
    aedes,
    port: actual,
    url: `mqtt://127.0.0.1:${actual}`,
    /** Every filter any client subscribed to so far. */
    subscribed,
    /** Resolves once some client subscribed to every filter given. */
    async waitForSubscriptions(filters) {
      while (!filters.every((f) => subscribed.has(f))) await new Promise((r) => setTimeout(r, 10));
    },
    /** Clients connected right now. */
    clients: () => aedes.connectedClients,
    /** Cuts every connection (clients see the broker drop them). */
    dropAll() {
      for (const s of sockets) s.destroy();
    },
    async close() {
      for (const s of sockets) s.destroy();
      await new Promise((r) => aedes.close(r));
      await new Promise((r) => server.close(r));
    },
  };
}

module.exports = { startAedes, startMosquitto, haveMosquitto, freePort };
