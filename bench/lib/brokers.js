'use strict';
// The brokers a benchmark run starts for itself, on 127.0.0.1 only: mosquitto (Debian's, with
// TCP_NODELAY on as the README tells users to configure it) and aedes in a child process.
const path = require('path');
const { spawnReady, stopChild } = require('./proc');

const servers = require('../../scripts/servers');

const haveMosquitto = servers.haveMosquitto;

async function startMosquitto() {
  const m = await servers.startMosquitto({
    // One Node-RED connection carries every device's requests: never drop queued QoS 1 messages.
    extraConfig: ['max_queued_messages 1000000', 'log_dest stderr', 'log_type error'],
  });
  return { name: 'mosquitto', url: m.url, pid: m.pid, stop: () => m.close() };
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
