#!/usr/bin/env node
'use strict';
// `npm run bench:sidebar`: what one open editor receives from the OTA sidebar's live feed during
// a rollout, and how long a device event takes to reach it, at 1,000 and 10,000 devices.
//
//   node bench/sidebar.js [--devices 1000,10000] [--rate 2000] [--json]
//
// Stock Node-RED (child process) with an ota-repository and ThingsBoard telemetry wired into a
// progress-parser, on an in-process aedes. The fleet is written into the repository's files
// before start (registering 10,000 devices one request at a time measures something else), every
// device assigned and notified. A publisher then walks every device through DOWNLOADING,
// DOWNLOADED, VERIFIED, UPDATING, UPDATED (5 events each) at --rate events a second, while a
// websocket client does what the editor does on /comms: subscribe to ota-sidebar/# (and to
// status/#, the node statuses every editor also receives). Probe devices outside the rollout get
// one FAILED event with a unique error every 250 ms; the time until their row arrives is the
// latency (the editor paints it at its next animation frame, about 16 ms later).
const fs = require('fs');
const os = require('os');
const path = require('path');
const mqtt = require('mqtt');
const WebSocket = require('ws');
const { startNodeRed } = require('../scripts/node-red-runtime');
const { startAedes } = require('../scripts/servers');

const PROBES = 20;
const STEPS = ['DOWNLOADING', 'DOWNLOADED', 'VERIFIED', 'UPDATING', 'UPDATED'];

function args(argv) {
  const o = { devices: [1000, 10000], rate: 2000, json: false };
  for (let i = 0; i < argv.length; i++) {
    if (argv[i] === '--devices') o.devices = argv[++i].split(',').map(Number);
    else if (argv[i] === '--rate') o.rate = Number(argv[++i]);
    else if (argv[i] === '--json') o.json = true;
  }
  return o;
}

function seedRepository(dir, count) {
  fs.mkdirSync(dir, { recursive: true, mode: 0o700 });
  const at = new Date().toISOString();
  const devices = [];
  const states = [];
  for (let n = 0; n < count + PROBES; n++) {
    const id = n < count ? `dev-${String(n).padStart(5, '0')}` : `probe-${n - count}`;
    devices.push({ id, dialect: 'thingsboard', attributes: {}, tags: [n < count ? 'fleet' : 'probe'], createdAt: at });
    if (n < count) {
      states.push({ device: id, dialect: 'thingsboard', firmware: 'bench-2', target: { title: 'bench', version: '2.0.0' }, state: 'notified', current: { title: 'bench', version: '1.0.0' }, attempts: 1, assignedAt: at, notifiedAt: at, stateSince: at, progressAt: at });
    }
  }
  fs.writeFileSync(path.join(dir, 'devices.json'), JSON.stringify(devices), { mode: 0o600 });
  fs.writeFileSync(path.join(dir, 'device-states.json'), JSON.stringify(states), { mode: 0o600 });
}

function flow(brokerPort) {
  return [
    { id: 'b1', type: 'tab', label: 'sidebar bench' },
    { id: 'r1', type: 'ota-repository', name: 'bench', storageDir: 'mqtt-ota', tcpNoDelay: true },
    { id: 'm1', type: 'mqtt-broker', broker: '127.0.0.1', port: String(brokerPort), clientid: '', autoConnect: true, usetls: false, protocolVersion: '4', keepalive: '60', cleansession: true },
    { id: 'i1', type: 'mqtt in', z: 'b1', topic: 'ota/+/v1/devices/me/telemetry', qos: '0', datatype: 'auto-detect', broker: 'm1', wires: [['p1']] },
    { id: 'p1', type: 'progress-parser', z: 'b1', repository: 'r1', dialect: 'auto', timeout: 1800, retries: 3, backoff: 60, wires: [[], []] },
  ];
}

function percentile(sorted, p) {
  if (!sorted.length) return NaN;
  return sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))];
}

async function run(count, rate) {
  const userDir = fs.mkdtempSync(path.join(os.tmpdir(), 'mqtt-ota-bench-sidebar-'));
  const broker = await startAedes();
  let red;
  let ws;
  let pub;
  try {
    seedRepository(path.join(userDir, 'mqtt-ota'), count);
    red = await startNodeRed({ userDir, flows: flow(new URL(broker.url).port) });
    pub = mqtt.connect(broker.url, { clientId: 'bench-sidebar' });
    await new Promise((resolve, reject) => pub.once('connect', resolve).once('error', reject));

    ws = new WebSocket(`${red.url.replace('http', 'ws')}/comms`);
    const traffic = { ours: 0, status: 0, messages: 0, rows: 0, maxPending: 0 };
    const waiting = new Map(); // probe error text -> sent at
    const latencies = [];
    let updatedRows = 0;
    ws.on('message', (data) => {
      const text = String(data);
      for (const m of JSON.parse(text)) {
        const size = Buffer.byteLength(JSON.stringify(m));
        if (m.topic.startsWith('ota-sidebar/')) {
          traffic.ours += size;
          traffic.messages += 1;
        } else traffic.status += size;
        if (m.topic.endsWith('/devices') && m.data) {
          traffic.rows += m.data.rows.length;
          traffic.maxPending = Math.max(traffic.maxPending, m.data.pending);
          for (const row of m.data.rows) {
            if (row[2] === 'updated') updatedRows += 1;
            const sent = row[7] && waiting.get(row[7]);
            if (sent) {
              latencies.push(Date.now() - sent);
              waiting.delete(row[7]);
            }
          }
        }
      }
    });
    await new Promise((resolve, reject) => ws.once('open', resolve).once('error', reject));
    ws.send(JSON.stringify({ subscribe: 'ota-sidebar/#' }));
    ws.send(JSON.stringify({ subscribe: 'status/#' }));
    await new Promise((r) => setTimeout(r, 1500));
    traffic.ours = 0;
    traffic.status = 0;

    const started = Date.now();
    let probeN = 0;
    const probe = setInterval(() => {
      const id = `probe-${probeN % PROBES}`;
      const error = `probe ${probeN++}`;
      waiting.set(error, Date.now());
      pub.publish(`ota/${id}/v1/devices/me/telemetry`, JSON.stringify({ fw_state: 'FAILED', fw_error: error }));
    }, 250);
    // Each device's steps in turn, spread over the run at `rate` events a second.
    const total = count * STEPS.length;
    let sent = 0;
    await new Promise((resolve) => {
      const tick = setInterval(() => {
        const due = Math.min(total, Math.round(((Date.now() - started) / 1000) * rate));
        for (; sent < due; sent++) {
          const step = Math.floor(sent / count);
          const id = `dev-${String(sent % count).padStart(5, '0')}`;
          const body = step === STEPS.length - 1 ? { fw_state: 'UPDATED', current_fw_title: 'bench', current_fw_version: '2.0.0' } : { fw_state: STEPS[step] };
          pub.publish(`ota/${id}/v1/devices/me/telemetry`, JSON.stringify(body));
        }
        if (sent >= total) {
          clearInterval(tick);
          resolve();
        }
      }, 10);
    });
    const publishedMs = Date.now() - started;
    // Until every device's last row arrived (the table shows 100 %), at most 60 s more.
    const until = Date.now() + 60000;
    while (updatedRows < count && Date.now() < until) await new Promise((r) => setTimeout(r, 100));
    clearInterval(probe);
    const seconds = (Date.now() - started) / 1000;
    latencies.sort((a, b) => a - b);
    return {
      devices: count,
      events: total,
      rate,
      publishSeconds: +(publishedMs / 1000).toFixed(1),
      seconds: +seconds.toFixed(1),
      allRowsUpdated: updatedRows >= count,
      feedKBps: +(traffic.ours / 1024 / seconds).toFixed(1),
      statusKBps: +(traffic.status / 1024 / seconds).toFixed(1),
      feedMessagesPerSecond: +(traffic.messages / seconds).toFixed(1),
      rowsSent: traffic.rows,
      maxRowsWaiting: traffic.maxPending,
      eventToRowMs: { median: percentile(latencies, 50), p95: percentile(latencies, 95), max: latencies[latencies.length - 1], probes: latencies.length },
    };
  } finally {
    if (ws) ws.terminate();
    if (pub) pub.end(true);
    if (red) await red.stop();
    await broker.close();
    fs.rmSync(userDir, { recursive: true, force: true });
  }
}

async function main() {
  const o = args(process.argv.slice(2));
  const results = [];
  for (const n of o.devices) {
    const r = await run(n, o.rate);
    results.push(r);
    console.log(o.json ? JSON.stringify(r) : `${n} devices, ${r.events} events at ${r.rate}/s: feed ${r.feedKBps} KB/s (+ node statuses ${r.statusKBps} KB/s), ${r.feedMessagesPerSecond} messages/s; event to row median ${r.eventToRowMs.median} ms, p95 ${r.eventToRowMs.p95} ms, max ${r.eventToRowMs.max} ms (${r.eventToRowMs.probes} probes); rows waiting at most ${r.maxRowsWaiting}; all rows updated: ${r.allRowsUpdated} after ${r.seconds} s`);
  }
}

main().catch((err) => {
  console.error(err);
  process.exit(1);
});
