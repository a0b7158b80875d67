'use strict';
// Target 3: the gateway under attack. A real OtaGateway in front of aedes (and mosquitto when
// installed); thousands of hostile connections on raw sockets (random bytes, malformed and
// truncated packets, huge claimed lengths, slowloris CONNECTs, floods of refused publishes and
// subscribes, topic aliases, valid-but-hostile MQTT from mqtt-packet's generate) while one
// well-behaved ThingsBoard device downloads an image in chunks from a plain mqtt.js responder.
//
// An escape is anything a hostile client gets or does that it must not (see lib/oracle.js):
// a message from another device's topics or a retained notice it cannot read, a CONNACK 0
// without valid credentials, a SUBACK granting a filter outside its own topics, a publish of
// its own reaching the broker outside its own topics (a watcher on the broker sees every
// message), another device's connection taken over, or the legitimate download corrupted.

const fs = require('fs');
const os = require('os');
const path = require('path');
const crypto = require('crypto');
const mqtt = require('mqtt');
const servers = require('../../scripts/servers');
const oracle = require('../lib/oracle');
const { ATTACKERS, VICTIMS, ATTACKER, RETAINED, LIVE } = require('../lib/gateway-cast');
const { SCENARIOS, hostile } = require('../lib/hostile');

const dist = (p) => require(path.join(__dirname, '../../dist', p));
const { OtaRepository } = dist('core/repository');
const { OtaGateway, RegistryDirectory } = dist('gateway');

// ------------------------------------------------------------------------------ helpers

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

function fdCount() {
  try {
    return fs.readdirSync('/proc/self/fd').length;
  } catch {
    return -1;
  }
}

/** The legitimate image: every 19 bytes say LEGIT-IMAGE, so any chunk of it is recognisable. */
function legitImage(size) {
  let text = '';
  for (let i = 0; text.length < size; i++) text += `LEGIT-IMAGE-${String(i).padStart(6, '0')}\n`;
  return Buffer.from(text.slice(0, size));
}

function connectClient(url, options) {
  return new Promise((resolve, reject) => {
    const client = mqtt.connect(url, { reconnectPeriod: 0, connectTimeout: 10000, ...options });
    client.once('connect', () => {
      client.removeAllListeners('error');
      client.on('error', () => undefined);
      resolve(client);
    });
    client.once('error', (err) => {
      client.end(true);
      reject(err);
    });
  });
}

const endClient = (c) => new Promise((r) => (c ? c.end(true, {}, r) : r()));


// ------------------------------------------------------------------------- one broker run

async function runOn(brokerName, { rng, escapes, total, concurrency }) {
  const broker = brokerName === 'mosquitto' ? await servers.startMosquitto() : { ...(await servers.startAedes()), version: 4 };
  const v5 = broker.version === 5;
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'ota-fuzz-gw-'));
  const repo = new OtaRepository({ dir, secret: 'g'.repeat(40) });
  for (const d of [...ATTACKERS, ...VICTIMS]) await repo.devices.register({ id: d.id, dialect: d.dialect, token: d.token, attributes: d.attributes ?? {} });
  const gateway = new OtaGateway({ directory: new RegistryDirectory(repo.devices), upstream: broker.url, namespace: oracle.NAMESPACE });
  gateway.on('error', () => undefined);
  const { port } = await gateway.listen(0, '127.0.0.1');
  const gatewayUrl = `mqtt://127.0.0.1:${port}`;
  const stats = { connections: 0, packets: 0, bytes: 0, byScenario: new Map() };
  const clients = [];
  const intervals = [];
  const found = (cls, detail, reproducer) => escapes.add(`${brokerName}: ${cls}`, detail, reproducer);

  // --- the server side: responder for the legitimate device, a watcher on everything
  const image = legitImage(128 * 1024);
  const imageSha = crypto.createHash('sha256').update(image).digest('hex');
  const responder = await connectClient(broker.url, { clientId: 'fuzz-responder', protocolVersion: broker.version });
  clients.push(responder);
  responder.on('message', (topic, payload) => {
    const m = /^ota\/legit\/v2\/fw\/request\/([^/]+)\/chunk\/(\d+)$/.exec(topic);
    if (!m) return;
    const size = Number(payload.toString()) || image.length;
    const n = Number(m[2]);
    responder.publish(`ota/legit/v2/fw/response/${m[1]}/chunk/${n}`, image.subarray(n * size, (n + 1) * size), { qos: 0 });
  });
  await responder.subscribeAsync('ota/legit/v2/fw/request/+/chunk/+', { qos: 0 });
  for (const [topic, text] of RETAINED) await responder.publishAsync(topic, text, { qos: 1, retain: true });

  /** Every message on the broker: a hostile marker outside its device's own topics is an escape. */
  const sent = new Map(); // marker -> what was sent, for the reproducer
  const watcher = await connectClient(broker.url, { clientId: 'fuzz-watcher', protocolVersion: broker.version });
  clients.push(watcher);
  watcher.on('message', (topic, payload, packet) => {
    const m = /HOSTILE:([^:]*):(\d+:\d+)/.exec(payload.toString('latin1'));
    if (!m) return;
    const what = sent.get(m[2]) ?? { note: 'mutated or will message' };
    if (m[1] === 'anon') return found('an unauthenticated client\'s message reached the broker', topic, what);
    const a = ATTACKER.get(m[1]);
    if (!a) return;
    const bad = oracle.publishViolation(a.dialect, a.id, a.attributes, topic);
    if (bad) found(`${a.dialect} device published outside its own topics${/notice/.test(bad) ? ' (on a notice topic)' : ''}${packet.retain ? ' (retained)' : ''}`, `${a.id}: ${bad}`, { device: a.id, ...what });
  });
  await watcher.subscribeAsync(['#', '$ota/#', '$share/#'].map((t) => ({ topic: t, qos: 0 })).reduce((o, s) => ({ ...o, [s.topic]: { qos: 0 } }), {}));

  // --- the device whose connection must survive: `site:42`, whose upstream id another device could forge
  let takeovers = 0;
  const sentinel = await connectClient(gatewayUrl, { clientId: 'site:42', username: 'site42-token', clean: false, protocolVersion: 4 });
  clients.push(sentinel);
  sentinel.on('close', () => {
    if (!stopping) takeovers++;
  });
  let stopping = false;

  intervals.push(setInterval(() => {
    for (const t of LIVE) responder.publish(t, `VICTIM-LIVE ${t}`, { qos: 0 });
  }, 100));

  // --- the legitimate ThingsBoard device, downloading over and over
  const rtts = [];
  let downloads = 0;
  let corrupt = 0;
  let timeouts = 0;
  const legit = await connectClient(gatewayUrl, { clientId: 'legit', username: 'legit-token', protocolVersion: broker.version });
  clients.push(legit);
  await legit.subscribeAsync('v2/fw/response/+', { qos: 0 });
  const chunkSize = 1024;
  const total_chunks = Math.ceil(image.length / chunkSize);
  let requestId = 0;
  const legitLoop = (async () => {
    while (!stopping) {
      requestId++;
      const parts = [];
      const prefix = `v2/fw/response/${requestId}/chunk/`;
      const done = await new Promise((resolve) => {
        let sentAt = 0;
        let timer;
        const ask = (n) => {
          sentAt = process.hrtime.bigint();
          legit.publish(`v2/fw/request/${requestId}/chunk/${n}`, String(chunkSize), { qos: 0 });
          clearTimeout(timer);
          timer = setTimeout(() => {
            timeouts++;
            if (stopping) return finish(false);
            ask(parts.length);
          }, 5000);
        };
        const finish = (ok) => {
          clearTimeout(timer);
          legit.removeListener('message', onMessage);
          resolve(ok);
        };
        const onMessage = (topic, payload) => {
          if (!topic.startsWith(prefix)) return;
          const n = Number(topic.slice(prefix.length));
          if (n !== parts.length) return;
          rtts.push(Number(process.hrtime.bigint() - sentAt) / 1e6);
          parts.push(Buffer.from(payload));
          if (parts.length === total_chunks) finish(true);
          else ask(parts.length);
        };
        legit.on('message', onMessage);
        ask(0);
      });
      if (!done) break;
      downloads++;
      if (crypto.createHash('sha256').update(Buffer.concat(parts)).digest('hex') !== imageSha) corrupt++;
    }
  })();

  // --- the attack
  await sleep(300);
  if (globalThis.gc) globalThis.gc();
  const memory = () => {
    const m = process.memoryUsage();
    return { rss: m.rss, heap: m.heapUsed, buffers: m.arrayBuffers, fds: fdCount() };
  };
  const before = memory();
  let peakRss = before.rss;
  intervals.push(setInterval(() => {
    peakRss = Math.max(peakRss, process.memoryUsage().rss);
  }, 200));
  const started = Date.now();
  let launched = 0;
  const worker = async () => {
    while (launched < total) {
      const n = launched++;
      const r = rng.fork(`c${n}`);
      const scenario = r.weighted(SCENARIOS.filter(([, s]) => v5 || !s.v5only).map(([w, s]) => [w, s]));
      const row = stats.byScenario.get(scenario.name) ?? { connections: 0, packets: 0 };
      stats.byScenario.set(scenario.name, row);
      const conn = hostile(port, r, n, v5, sent, found);
      try {
        await scenario.run(conn, r);
      } catch (err) {
        found('fuzzer error', String(err && err.stack), { scenario: scenario.name });
      }
      await conn.close();
      stats.connections++;
      stats.packets += conn.packets;
      stats.bytes += conn.bytes;
      row.connections++;
      row.packets += conn.packets;
    }
  };
  await Promise.all(Array.from({ length: concurrency }, worker));
  const attackSeconds = (Date.now() - started) / 1000;

  // Let the download run a moment after the attack (until one completed, at most 20 s), then stop.
  for (const until = Date.now() + 20000; downloads < 1 && Date.now() < until; ) await sleep(50);
  await sleep(500);
  stopping = true;
  await legitLoop;
  for (const i of intervals) clearInterval(i);
  await sleep(500);
  if (globalThis.gc) globalThis.gc();
  const after = memory();
  if (takeovers) found('another device\'s connection was taken over (upstream client id collision)', 'site:42 was disconnected during the attack', { device: 'site', clientId: '42:site:42', victim: 'site:42 with client id site:42' });
  if (corrupt) found('the legitimate download was corrupted', `${corrupt} of ${downloads} downloads had the wrong SHA-256`, {});
  if (!downloads) found('the legitimate device never completed a download', `${timeouts} chunk timeouts`, {});

  const sorted = [...rtts].sort((a, b) => a - b);
  const pct = (p) => (sorted.length ? sorted[Math.min(sorted.length - 1, Math.floor(p * sorted.length))] : NaN);
  const counters = { ...gateway.counters };
  stopping = true;
  await Promise.all(clients.map(endClient));
  await gateway.close();
  await broker.close();
  await repo.flush();
  fs.rmSync(dir, { recursive: true, force: true });
  return {
    broker: brokerName,
    stats,
    attackSeconds,
    rtt: { median: pct(0.5), p99: pct(0.99), worst: sorted[sorted.length - 1] ?? NaN, chunks: sorted.length },
    downloads,
    corrupt,
    timeouts,
    shaOk: downloads > 0 && corrupt === 0,
    before,
    after,
    peakRss,
    counters,
    takeovers,
  };
}

// ------------------------------------------------------------------------------------ run

const mb = (b) => `${(b / 1048576).toFixed(0)} MB`;
const ms = (v) => (Number.isFinite(v) ? `${v.toFixed(1)} ms` : 'n/a');

async function run({ rng, counts = {}, quick, brokers, escapes }) {
  const total = counts.connections ?? (quick ? 300 : 10_000);
  const concurrency = counts.concurrency ?? (quick ? 50 : 200);
  const names = brokers ?? ['aedes', ...(servers.haveMosquitto() ? ['mosquitto'] : [])];
  const rows = [];
  const notes = [];
  let inputs = 0;
  for (const name of names) {
    const r = await runOn(name, { rng: rng.fork(name), escapes, total, concurrency });
    inputs += r.stats.connections;
    for (const [scenario, s] of r.stats.byScenario) rows.push([`${name}: ${scenario}`, s.connections, s.packets]);
    notes.push(
      `${name}: ${r.stats.connections.toLocaleString('en-US')} connections, ${r.stats.packets.toLocaleString('en-US')} packets (${mb(r.stats.bytes)}) in ${r.attackSeconds.toFixed(1)} s, ${concurrency} at a time`,
      `${name}: legitimate device: ${r.downloads} downloads of 128 KiB, SHA-256 ${r.shaOk ? 'right' : 'WRONG or none'}, ${r.rtt.chunks} chunks, round trip median ${ms(r.rtt.median)}, p99 ${ms(r.rtt.p99)}, worst ${ms(r.rtt.worst)}, ${r.timeouts} chunk timeouts (5 s)`,
      `${name}: RSS ${mb(r.before.rss)} -> ${mb(r.after.rss)} (peak ${mb(r.peakRss)}), JS heap ${mb(r.before.heap)} -> ${mb(r.after.heap)}, buffers ${mb(r.before.buffers)} -> ${mb(r.after.buffers)}, open fds ${r.before.fds} -> ${r.after.fds} (gateway, brokers' clients and fuzzer share this process)`,
      `${name}: gateway counters ${JSON.stringify(r.counters)}`,
    );
  }
  return { header: ['scenario', 'connections', 'packets'], rows, notes, inputs };
}

module.exports = { run };
