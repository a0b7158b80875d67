'use strict';
// Load generator, run as a forked child (its CPU is then its own): N simulated ThingsBoard
// devices d0..d{N-1} (topics {prefix}/{dev}/v2/fw/..., the gateway's namespace shape), each in a loop "request chunk n, wait for it, request n+1" (wrapping at the end of
// the image), against one target at a time. Driven by the parent over IPC:
//   {cmd:'connect', url, devices, filters}   -> {ok:'connect', ms}
//   {cmd:'run', target, qos, chunk, imageSize, warmup, seconds, timeoutMs, pids} -> {ok:'run', result}
//   {cmd:'close'}                            -> exits
// Every loop is bounded: by the run's duration, and each request by timeoutMs.
const mqtt = require('mqtt');
const { performance } = require('perf_hooks');
const { cpuMicros } = require('./proc');
const { percentile } = require('./stats');

const LATENCY_CAP = 500000;
let devices = [];

function fill(template, dev, rid, n) {
  return template.replace('{dev}', dev).replace('{rid}', rid).replace('{n}', n);
}

function connectOne(url, i, salt, filters) {
  return new Promise((resolve, reject) => {
    const rid = String(salt * 100000 + i);
    const client = mqtt.connect(url, { clientId: `bench-dev-${salt}-${i}`, reconnectPeriod: 0, keepalive: 120, connectTimeout: 30000 });
    const dev = { client, name: `d${i}`, rid, pending: null };
    client.once('connect', () => {
      if (client.stream.setNoDelay) client.stream.setNoDelay(true);
      client.subscribe(filters.map((f) => fill(f, dev.name, rid, '+')), { qos: 1 }, (err) => (err ? reject(err) : resolve(dev)));
    });
    client.once('error', reject);
    client.on('message', (topic, payload) => {
      const p = dev.pending;
      if (p && topic === p.topic) {
        dev.pending = null;
        clearTimeout(p.timer);
        p.done(payload);
      }
    });
  });
}

async function connect({ url, devices: count, filters }) {
  const t = Date.now();
  const salt = (process.pid % 9000) + 1000;
  for (let i = 0; i < count; i += 100) {
    const batch = [];
    for (let j = i; j < Math.min(count, i + 100); j++) batch.push(connectOne(url, j, salt, filters));
    devices.push(...(await Promise.all(batch)));
  }
  return { ms: Date.now() - t };
}

function run({ target, qos, chunk, imageSize, warmup, seconds, timeoutMs, pids }) {
  const chunks = Math.ceil(imageSize / chunk);
  const expected = (n) => Math.max(0, Math.min(chunk, imageSize - n * chunk));
  const lat = [];
  let count = 0;
  let bytes = 0;
  let errors = 0;
  let timeouts = 0;
  let stopped = false;
  let measuring = false;
  let t0;
  let t1;
  let cpu0;

  const loops = devices.map((dev, idx) => new Promise((resolve) => {
    let n = idx % chunks; // devices start spread over the image
    const next = () => {
      if (stopped) return resolve();
      const sent = performance.now();
      const topic = fill(target.response, dev.name, dev.rid, n);
      dev.pending = {
        topic,
        timer: setTimeout(() => { dev.pending = null; timeouts++; n = (n + 1) % chunks; next(); }, timeoutMs),
        done: (payload) => {
          const now = performance.now();
          if (measuring) {
            count++;
            bytes += payload.length;
            if (payload.length !== expected(n)) errors++;
            if (lat.length < LATENCY_CAP) lat.push((now - sent) * 1000);
          }
          n = (n + 1) % chunks;
          next();
        },
      };
      dev.client.publish(fill(target.request, dev.name, dev.rid, n), String(chunk), { qos });
    };
    next();
  }));

  const sample = () => ({ broker: cpuMicros(pids.broker), server: cpuMicros(pids.server), self: process.cpuUsage() });
  return new Promise((resolve) => {
    setTimeout(() => {
      cpu0 = sample();
      t0 = performance.now();
      measuring = true;
      setTimeout(async () => {
        measuring = false;
        t1 = performance.now();
        const cpu1 = sample();
        stopped = true;
        // Outstanding requests end by answer or timeout; bound the wait anyway.
        await Promise.race([Promise.all(loops), new Promise((r) => setTimeout(r, timeoutMs + 1000))]);
        const secs = (t1 - t0) / 1000;
        const self = (cpu1.self.user + cpu1.self.system) - (cpu0.self.user + cpu0.self.system);
        resolve({
          chunks: count, seconds: secs, chunksPerSec: count / secs, mibPerSec: bytes / secs / 1048576,
          p50ms: percentile(lat, 50) / 1000, p99ms: percentile(lat, 99) / 1000,
          cpuUsPerChunk: {
            broker: (cpu1.broker - cpu0.broker) / count,
            server: (cpu1.server - cpu0.server) / count,
            loadgen: self / count,
          },
          errors, timeouts,
        });
      }, seconds * 1000);
    }, warmup * 1000);
  });
}

process.on('message', async (m) => {
  try {
    if (m.cmd === 'connect') process.send({ ok: 'connect', ...(await connect(m)) });
    else if (m.cmd === 'run') process.send({ ok: 'run', result: await run(m) });
    else if (m.cmd === 'close') {
      await Promise.race([
        Promise.all(devices.map((d) => new Promise((r) => d.client.end(false, r)))),
        new Promise((r) => setTimeout(r, 5000)),
      ]);
      devices = [];
      process.exit(0);
    }
  } catch (err) {
    process.send({ error: String(err && err.stack || err) });
  }
});
process.on('disconnect', () => process.exit(0));
