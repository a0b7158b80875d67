'use strict';
// The brokers a benchmark run starts for itself, on 127.0.0.1 only: mosquitto (Debian's, with
// TCP_NODELAY on as the README tells users to configure it) and aedes in a child process.
const fs = require('fs');
const os = require('os');
const path = require('path');
const { spawn } = require('child_process');
const net = require('net');
const { freePort, spawnReady, stopChild } = require('./proc');

const MOSQUITTO = process.env.MOSQUITTO || '/usr/sbin/mosquitto';

function haveMosquitto() {
  return fs.existsSync(MOSQUITTO);
}

async function waitListening(port, ms) {
  const deadline = Date.now() + ms;
  for (;;) {
    const ok = await new Promise((resolve) => {
      const s = net.connect(port, '127.0.0.1', () => { s.destroy(); resolve(true); });
      s.on('error', () => resolve(false));
    });
    if (ok) return;
    if (Date.now() > deadline) throw new Error(`nothing listening on ${port} after ${ms} ms`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

async function startMosquitto() {
  const port = await freePort();
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'ota-bench-mosquitto-'));
  const conf = path.join(dir, 'mosquitto.conf');
  fs.writeFileSync(conf, [
    `listener ${port} 127.0.0.1`,
    'allow_anonymous true',
    'set_tcp_nodelay true',
    'persistence false',
    // One Node-RED connection carries every device's requests: never drop queued QoS 1 messages.
    'max_queued_messages 1000000',
    'log_dest stderr',
    'log_type error',
    '',
  ].join('\n'));
  const child = spawn(MOSQUITTO, ['-c', conf], { stdio: ['ignore', 'ignore', 'inherit'] });
  await waitListening(port, 10000);
  return {
    name: 'mosquitto',
    url: `mqtt://127.0.0.1:${port}`,
    pid: child.pid,
    async stop() {
      await stopChild(child);
      fs.rmSync(dir, { recursive: true, force: true });
    },
  };
}

async function startAedes() {
  const { child, info } = await spawnReady(path.join(__dirname, 'aedes-child.js'));
  return {
    name: 'aedes',
    url: `mqtt://127.0.0.1:${info.port}`,
    pid: child.pid,
    stop: () => stopChild(child),
  };
}

module.exports = { startMosquitto, startAedes, haveMosquitto };
