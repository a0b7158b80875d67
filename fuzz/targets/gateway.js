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
const net = require('net');
const path = require('path');
const crypto = require('crypto');
const mqtt = require('mqtt');
const mqttPacket = require('mqtt-packet');
const servers = require('../../scripts/servers');
const g = require('../lib/gen');
const oracle = require('../lib/oracle');

const dist = (p) => require(path.join(__dirname, '../../dist', p));
const { OtaRepository } = dist('core/repository');
const { OtaGateway, RegistryDirectory } = dist('gateway');

// ------------------------------------------------------------------------------ the cast

/** Devices whose credentials the attacker holds. `lamp` and `1` are Tencent devices registered without a product. */
const ATTACKERS = [
  { id: 'atk-tb', dialect: 'thingsboard', token: 'atk-tb-token' },
  { id: 'atk-tg', dialect: 'tago', token: 'atk-tg-token' },
  { id: 'atk-bz', dialect: 'biotz', token: 'atk-bz-token', attributes: { customer: 'c1' } },
  { id: 'atk-tc', dialect: 'tencent', token: 'atk-tc-token', attributes: { product: 'P1' } },
  { id: 'atk-sm', dialect: 'sming', token: 'atk-sm-token', attributes: { app: 'toy' } },
  { id: 'lamp', dialect: 'tencent', token: 'lamp-token' },
  { id: '1', dialect: 'tencent', token: 'one-token' },
  { id: 'site', dialect: 'thingsboard', token: 'site-token' },
];
/** Devices the attacker must never reach; `site:42` holds a connection all along (session takeover). */
const VICTIMS = [
  { id: 'legit', dialect: 'thingsboard', token: 'legit-token' },
  { id: 'victim-tb', dialect: 'thingsboard', token: 'victim-tb-token' },
  { id: 'victim-bz', dialect: 'biotz', token: 'victim-bz-token', attributes: { customer: 'c1' } },
  { id: 'victim-tc', dialect: 'tencent', token: 'victim-tc-token', attributes: { product: 'P1' } },
  { id: 'victim-sm', dialect: 'sming', token: 'victim-sm-token', attributes: { app: 'lamp' } },
  { id: 'site:42', dialect: 'thingsboard', token: 'site42-token' },
];
const ATTACKER = new Map(ATTACKERS.map((a) => [a.id, a]));
const NAMESPACED = new Set(['thingsboard', 'tago']);

/** Retained on the broker before the attack; only the last two may be read, each by its own device. */
const RETAINED = [
  ['biotz/1/0/c1/victim-bz/subscribe/firmware/update', 'VICTIM-NOTICE biotz'],
  ['$ota/update/P1/victim-tc', 'VICTIM-NOTICE tencent'],
  ['a/lamp/u/1.0', 'VICTIM-NOTICE sming'],
  ['/a/lamp/u/1.0', 'VICTIM-NOTICE sming'],
  ['ota/victim-tb/v1/devices/me/attributes', 'VICTIM-NOTICE thingsboard'],
  ['ota/legit/v1/devices/me/attributes', 'VICTIM-NOTICE legit'],
  ['ota/site:42/v1/devices/me/attributes', 'VICTIM-NOTICE site:42'],
  ['a/toy/u/1.0', 'OWN-NOTICE atk-sm'],
  ['biotz/1/0/c1/atk-bz/subscribe/firmware/update', 'OWN-NOTICE atk-bz'],
];
/** Published every 100 ms during the attack: another device's live traffic. */
const LIVE = ['ota/victim-tb/v1/devices/me/attributes', '$ota/update/P1/victim-tc', 'biotz/1/0/c1/victim-bz/x', 'P1/victim-tc/x', 'lamp/x/y', 'x/lamp/y', 'x/1/y'];

/** Filters an attacker tries, given its own id and attributes. */
function evilFilters(a) {
  const p = a.attributes?.product ?? 'P1';
  return [
    '#', '+/#', '+/+/#', '$SYS/#', `$SYS/${a.id}/#`, '$share/x/#', `$share/${a.id}/#`, `$share/${p}/#`, `$share/x/${p}/${a.id}/#`,
    `+/${a.id}/#`, `${a.id}/${a.id}/#`, 'biotz/1/0/c1/victim-bz/#', 'biotz/1/0/+/+/subscribe/firmware/update', '$ota/update/P1/victim-tc', '$ota/#',
    'a/lamp/u/#', 'a/+/u/#', '/a/lamp/u/#', 'ota/victim-tb/#', 'ota/+/v2/fw/response/#', 'v2/fw/response/+', 'v1/devices/me/attributes', '../legit/#',
    ...oracle.ownTopics(a.dialect, a.id, a.attributes).sub.map((f) => (NAMESPACED.has(a.dialect) ? f.replace(`ota/${a.id}/`, '') : f)),
  ];
}

function evilTopics(a) {
  return [
    'biotz/1/0/c1/victim-bz/subscribe/firmware/update', `biotz/1/0/c1/${a.id}/subscribe/firmware/update`, '$ota/update/P1/victim-tc', '$ota/report/P1/victim-tc',
    'a/lamp/u/9.9', '/a/lamp/u/9.9', 'a/toy/u/9.9', `x/${a.id}/y`, `a/${a.id}/u/9.9`, `biotz/${a.id}/0/c1/victim-bz/subscribe/firmware/update`,
    'ota/victim-tb/v1/devices/me/attributes', '../victim-tb/v1', 'v1/devices/me/telemetry', 'v2/fw/request/1/chunk/0', '$SYS/x', 'tago/data/post',
    `P1/${a.id}/data`, `$ota/report/P1/${a.id}`,
  ];
}

// ------------------------------------------------------------------------------ helpers

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

function fdCount() {
  try {
    return fs.readdirSync('/proc/self/fd').length;
  } catch {
    return -1;
  }
}

function generate(packet, protocolVersion) {
  try {
    return mqttPacket.generate(packet, { protocolVersion });
  } catch {
    return null;
  }
}

/** A CONNECT with an empty client id and clean session 0 (mqtt-packet refuses to write one). */
function emptyIdConnect(version, username) {
  const bytes = generate({ cmd: 'connect', protocolVersion: version, clientId: 'Z', clean: false, keepalive: 30, username }, version);
  const at = version === 5 ? 13 : 12; // fixed header (2) + variable header (10, +1 for v5 properties length)
  if (!bytes || bytes[1] > 127 || bytes[at] !== 0 || bytes[at + 1] !== 1) return null;
  const out = Buffer.concat([bytes.subarray(0, at), Buffer.from([0, 0]), bytes.subarray(at + 3)]);
  out[1] -= 1;
  return out;
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

// --------------------------------------------------------------------- hostile connections

/**
 * A raw socket to the gateway that counts what it sends and checks everything it receives.
 * `identity` is null (no valid credentials) or the attacker device it logged in as.
 */
function hostile(port, rng, n, v5, sent, found) {
  const socket = net.connect(port, '127.0.0.1');
  socket.setNoDelay(true);
  socket.on('error', () => undefined);
  const conn = {
    socket,
    n,
    seq: 0,
    packets: 0,
    bytes: 0,
    version: 4,
    identity: null,
    claimed: null,
    connack: null,
    subscribed: [],
    pendingSubs: new Map(),
    closed: new Promise((resolve) => socket.once('close', resolve)),
    write(bytes) {
      if (!bytes || socket.destroyed) return;
      conn.packets++;
      conn.bytes += bytes.length;
      socket.write(bytes);
    },
    send(packet) {
      conn.write(generate(packet, conn.version));
    },
    /** A payload marker naming who sends (the device logged in as, else anon) and which packet. */
    marker() {
      conn.seq++;
      return `HOSTILE:${conn.identity ? conn.identity.id : 'anon'}:${n}:${conn.seq}`;
    },
    remember(packet) {
      if (sent.size > 20000) sent.delete(sent.keys().next().value);
      const { payload, ...rest } = packet;
      sent.set(`${n}:${conn.seq}`, { ...rest, payload: String(payload).slice(0, 40), identity: conn.identity?.id ?? 'anon', version: conn.version });
    },
    async close() {
      socket.end();
      const timer = setTimeout(() => socket.destroy(), 1000);
      await conn.closed;
      clearTimeout(timer);
    },
  };
  let parser = null;
  const makeParser = () => {
    parser = mqttPacket.parser({ protocolVersion: conn.version });
    parser.on('packet', (p) => received(conn, p, found));
    parser.on('error', () => undefined);
  };
  socket.on('data', (d) => {
    if (!parser) makeParser();
    try {
      parser.parse(d);
    } catch {
      // a packet we cannot read is not an escape by itself
    }
  });
  conn.setVersion = (v) => {
    conn.version = v;
    parser = null;
  };
  return conn;
}

/**
 * Whether made-up credentials happen to be valid, the way the directory reads them: a token as
 * username (TagoIO: username `Token`, token as password), or a device id as client id with its
 * token as password or username. Nothing else (every device here has a token).
 */
function validCredentials(claimed) {
  if (!claimed || claimed.mutated) return false;
  const all = [...ATTACKERS, ...VICTIMS];
  const token = claimed.username === 'Token' ? claimed.password : claimed.username;
  if (token && all.some((d) => d.token === token)) return true;
  const byId = all.find((d) => d.id === claimed.clientId);
  return Boolean(byId && [claimed.password, claimed.username].includes(byId.token));
}

function received(conn, p, found) {
  const who = conn.identity ? `${conn.identity.dialect} device ${conn.identity.id}` : 'unauthenticated client';
  if (p.cmd === 'connack') {
    const code = conn.version === 5 ? p.reasonCode : p.returnCode;
    conn.connack = code;
    if (code === 0 && !conn.identity && !validCredentials(conn.claimed)) found('CONNACK 0 without valid credentials', `claimed ${JSON.stringify(conn.claimed)}`, { connect: conn.claimed });
    if (code === 0 && conn.emptyIdClean0) found(`empty client id with clean session 0 accepted (MQTT ${conn.version === 5 ? '5 wants 0x85' : '3.1.1 wants return code 2'})`, who, { connect: conn.claimed });
    return;
  }
  if (p.cmd === 'suback' && conn.identity) {
    const filters = conn.pendingSubs.get(p.messageId);
    if (!filters) return;
    conn.pendingSubs.delete(p.messageId);
    const a = conn.identity;
    (p.granted || []).forEach((code, k) => {
      const f = filters[k];
      if (f === undefined || typeof code !== 'number' || code >= 0x80) return;
      const upstream = NAMESPACED.has(a.dialect) ? `${oracle.NAMESPACE}/${a.id}/${f}` : f;
      const bad = oracle.subscribeViolation(a.dialect, a.id, a.attributes, upstream);
      if (bad) found(`${a.dialect} device granted a filter outside its own topics${/^\$share/.test(f) ? ' ($share)' : /^\$SYS/.test(f) ? ' ($SYS)' : ''}`, `${a.id}: ${bad}`, { device: a.id, subscribe: f });
    });
    return;
  }
  if (p.cmd !== 'publish') return;
  const text = Buffer.isBuffer(p.payload) ? p.payload.toString('latin1') : String(p.payload);
  const repro = { device: conn.identity?.id ?? 'anon', subscribed: conn.subscribed.slice(-8), received: p.topic, retain: p.retain };
  if (!conn.identity || conn.connack !== 0) return found('an unauthenticated client received a message', `${p.topic}`, repro);
  if (text.includes('LEGIT-IMAGE')) return found('received the legitimate device\'s chunks', `${who} on ${p.topic}`, repro);
  if (text.includes('VICTIM-')) return found(p.retain ? 'received a retained notice it cannot read' : 'received another device\'s message', `${who} on ${p.topic}: ${text.slice(0, 40)}`, repro);
  const m = /HOSTILE:([^:]*):/.exec(text);
  if (m && m[1] !== conn.identity.id && ATTACKER.has(m[1])) return found('received another device\'s message', `${who} got ${m[1]}'s on ${p.topic}`, repro);
  const a = conn.identity;
  // A namespaced device sees its own namespace only, whatever the names in it (`$SYS/x` included).
  if (!NAMESPACED.has(a.dialect)) {
    if (/^\$SYS/.test(p.topic)) return found('received $SYS', `${who} on ${p.topic}`, repro);
    const own = oracle.ownTopics(a.dialect, a.id, a.attributes).sub;
    if (!own.some((f) => oracle.topicMatches(f, p.topic))) return found('received a message outside its own topics', `${who} on ${p.topic}`, repro);
  }
}

/** Logs in: as an attacker device (valid credentials) or with made-up ones; waits for the CONNACK. */
async function login(conn, rng, { asAttacker, version = 4, wait = true }) {
  conn.setVersion(version);
  let packet;
  if (asAttacker) {
    const a = rng.pick(ATTACKERS);
    conn.identity = a;
    packet = { cmd: 'connect', protocolVersion: version, clientId: rng.chance(0.3) ? `${a.id}-${conn.n}` : a.id, clean: true, keepalive: rng.pick([0, 5, 60]), username: a.token };
  } else {
    packet = {
      cmd: 'connect', protocolVersion: version, clientId: rng.pick([`anon-${conn.n}`, 'legit', 'victim-tb', 'site:42', 'atk-tb', g.randomText(rng, 8).split('\u0000').join('')]), clean: true, keepalive: 30,
      ...(rng.chance(0.8) ? { username: rng.pick(['legit-tokem', 'Token', 'victim-tb-token ', '', g.string(rng), 'x'.repeat(300)]) } : {}),
      ...(rng.chance(0.5) ? { password: Buffer.from(rng.pick(['legit-tokem', 'x', g.string(rng)])) } : {}),
    };
    if (packet.username === 'Token') packet.password = Buffer.from('atk-tg-tokem');
  }
  if (version === 5 && rng.chance(0.5)) packet.properties = { topicAliasMaximum: rng.pick([0, 10, 65535]), maximumPacketSize: rng.pick([100, 65536]), receiveMaximum: rng.pick([1, 65535]) };
  if (rng.chance(0.2)) {
    const willTopic = rng.pick(conn.identity ? evilTopics(conn.identity) : ['a/lamp/u/9.9']);
    packet.will = { topic: willTopic, payload: Buffer.from(conn.marker()), qos: 1, retain: rng.chance(0.5) };
    conn.remember({ cmd: 'will', topic: willTopic, retain: packet.will.retain, payload: '' });
  }
  conn.claimed = { clientId: packet.clientId, username: packet.username, password: packet.password && String(packet.password) };
  conn.send(packet);
  if (!wait) return;
  const until = Date.now() + 3000;
  while (conn.connack === null && Date.now() < until && !conn.socket.destroyed) await sleep(10);
}

/** One hostile MQTT packet from an authenticated attacker. */
function hostilePacket(conn, rng, aliases) {
  const a = conn.identity;
  const kind = rng.weighted([[4, 'publish'], [3, 'subscribe'], [1, 'unsubscribe'], [0.5, 'pingreq'], [0.5, 'pubrel'], [conn.version === 5 ? 2 : 0, 'alias']]);
  const messageId = rng.range(1000, 65535);
  if (kind === 'subscribe') {
    // Our own ids for SUBSCRIBE, never reused on a connection: each SUBACK maps to its filters.
    const subId = (conn.nextSubId = (conn.nextSubId ?? 0) + 1);
    const filters = Array.from({ length: rng.range(1, 4) }, () => (rng.chance(0.8) ? rng.pick(evilFilters(a)) : g.mutateTopic(rng, rng.pick(evilFilters(a)), [a.id, '$share'])));
    conn.pendingSubs.set(subId, filters);
    conn.subscribed.push(...filters);
    return { cmd: 'subscribe', messageId: subId, subscriptions: filters.map((topic) => ({ topic, qos: rng.int(3), ...(conn.version === 5 ? { nl: rng.chance(0.5), rap: rng.chance(0.5), rh: rng.int(3) } : {}) })) };
  }
  if (kind === 'unsubscribe') return { cmd: 'unsubscribe', messageId, unsubscriptions: [rng.pick(evilFilters(a))] };
  if (kind === 'pingreq') return { cmd: 'pingreq' };
  if (kind === 'pubrel') return { cmd: 'pubrel', messageId };
  const topic = rng.chance(0.85) ? rng.pick(evilTopics(a)) : g.mutateTopic(rng, rng.pick(evilTopics(a)), [a.id]);
  const qos = rng.int(3);
  const payload = Buffer.from(`${conn.marker()} ${rng.chance(0.1) ? 'x'.repeat(rng.range(100, 5000)) : ''}`);
  const packet = { cmd: 'publish', topic, payload, qos, retain: rng.chance(0.4), dup: false, ...(qos ? { messageId } : {}) };
  if (kind === 'alias') {
    // Topic aliases the gateway never offered: set one with a (long) topic, then use it alone.
    const alias = rng.range(1, 200);
    if (aliases.has(alias) && rng.chance(0.5)) packet.topic = '';
    else {
      packet.topic = rng.chance(0.5) ? topic : `${topic}/${'y'.repeat(rng.range(10, 4000))}`;
      aliases.add(alias);
    }
    packet.properties = { topicAlias: alias };
  }
  conn.remember(packet);
  return packet;
}

const SCENARIOS = [
  [10, { name: 'random bytes', async run(conn, rng) {
    for (let i = rng.range(1, 4); i > 0; i--) {
      conn.write(rng.bytes(rng.range(1, 512)));
      await sleep(rng.range(0, 30));
    }
    await sleep(rng.range(20, 150));
  } }],
  [12, { name: 'malformed packets', async run(conn, rng) {
    const asAttacker = rng.chance(0.5);
    const version = rng.chance(0.3) ? 5 : 4;
    if (rng.chance(0.5)) {
      await login(conn, rng, { asAttacker, version });
      const aliases = new Set();
      for (let i = rng.range(1, 6); i > 0; i--) {
        const bytes = asAttacker && conn.connack === 0 ? generate(hostilePacket(conn, rng, aliases), version) : generate({ cmd: 'publish', topic: 'a/lamp/u/9.9', payload: conn.marker(), qos: 1, messageId: 7, retain: true }, version);
        conn.write(bytes && rng.chance(0.7) ? g.mutateBytes(rng, bytes) : bytes);
      }
    } else {
      const bytes = generate({ cmd: 'connect', protocolVersion: version, clientId: `anon-${conn.n}`, username: rng.pick(['legit-tokem', 'x']), keepalive: 30, clean: true }, version);
      conn.claimed = { mutated: true };
      conn.write(g.mutateBytes(rng, bytes, rng.range(1, 5)));
    }
    await sleep(rng.range(50, 300));
  } }],
  [6, { name: 'huge claimed length', async run(conn, rng) {
    const header = Buffer.from([rng.pick([0x10, 0x30, 0x82, 0x10]), 0xff, 0xff, 0xff, 0x7f]);
    conn.write(header);
    const kb = rng.pick([1, 16, 64, 256]);
    for (let sentKb = 0; sentKb < kb && !conn.socket.destroyed; sentKb += 16) {
      conn.write(Buffer.alloc(Math.min(16, kb - sentKb) * 1024, 0x41));
      await sleep(5);
    }
    await sleep(rng.range(50, 300));
  } }],
  [5, { name: 'slowloris CONNECT', async run(conn, rng) {
    const bytes = generate({ cmd: 'connect', protocolVersion: 4, clientId: `slow-${conn.n}`, username: 'legit-tokem', keepalive: 30, clean: true }, 4);
    conn.claimed = { clientId: `slow-${conn.n}`, username: 'legit-tokem' };
    const deadline = Date.now() + rng.range(300, 1500);
    for (let i = 0; i < bytes.length - 1 && Date.now() < deadline && !conn.socket.destroyed; i++) {
      conn.write(bytes.subarray(i, i + 1));
      await sleep(rng.range(40, 200));
    }
  } }],
  [30, { name: 'hostile MQTT (valid credentials)', async run(conn, rng) {
    const version = rng.chance(0.4) ? 5 : 4;
    await login(conn, rng, { asAttacker: true, version });
    if (conn.connack !== 0) return;
    const aliases = new Set();
    const flood = rng.chance(0.2) ? rng.range(200, 1000) : rng.range(3, 40);
    for (let i = 0; i < flood && !conn.socket.destroyed; i++) {
      conn.send(hostilePacket(conn, rng, aliases));
      if ((i & 31) === 31) await sleep(1);
    }
    await sleep(rng.range(200, 700));
  } }],
  [10, { name: 'refused logins and floods', async run(conn, rng) {
    await login(conn, rng, { asAttacker: false, version: rng.chance(0.3) ? 5 : 4, wait: rng.chance(0.5) });
    for (let i = rng.range(1, 50); i > 0 && !conn.socket.destroyed; i--) {
      conn.send(rng.chance(0.5)
        ? { cmd: 'subscribe', messageId: rng.range(1, 9999), subscriptions: [{ topic: rng.pick(['#', '$share/x/#', 'ota/legit/#']), qos: 1 }] }
        : { cmd: 'publish', topic: rng.pick(['a/lamp/u/9.9', 'ota/legit/v1/devices/me/attributes', '$ota/update/P1/victim-tc']), payload: conn.marker(), qos: 1, messageId: 3, retain: true, dup: false });
    }
    await sleep(rng.range(50, 300));
  } }],
  [5, { name: 'generated oddities', async run(conn, rng) {
    const version = rng.pick([3, 4, 4, 5]);
    const pick = rng.int(6);
    if (pick === 0) {
      // An empty client id with clean session 0: MQTT 3.1.1 3.1.3-8 says refuse (code 2), MQTT 5 0x85.
      const a = rng.pick(ATTACKERS);
      conn.setVersion(version === 3 ? 4 : version);
      conn.identity = a;
      conn.emptyIdClean0 = true;
      conn.claimed = { clientId: '', clean: false, username: a.token };
      conn.write(emptyIdConnect(conn.version, a.token));
      await sleep(300);
      return;
    }
    if (pick === 1) {
      // Takeover attempt: device `site` with a client id that makes the same upstream id as `site:42`.
      conn.setVersion(4);
      conn.identity = ATTACKER.get('site');
      conn.claimed = { clientId: '42:site:42', username: 'site-token' };
      conn.send({ cmd: 'connect', protocolVersion: 4, clientId: '42:site:42', username: 'site-token', clean: rng.chance(0.5), keepalive: 30 });
      await sleep(300);
      return;
    }
    if (pick === 2) {
      conn.send({ cmd: rng.pick(['subscribe', 'publish', 'pingreq', 'disconnect']), messageId: 1, subscriptions: [{ topic: '#', qos: 0 }], topic: 'a/lamp/u/9.9', payload: conn.marker(), qos: 1, retain: true });
      await sleep(100);
      return;
    }
    await login(conn, rng, { asAttacker: rng.chance(0.7), version: version === 3 ? 4 : version });
    for (let i = rng.range(1, 5); i > 0; i--) conn.send({ cmd: 'connect', protocolVersion: 4, clientId: 'again', clean: true, keepalive: 1 });
    await sleep(100);
  } }],
];

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
