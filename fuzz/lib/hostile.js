'use strict';
// The hostile clients of the gateway fuzz (fuzz/targets/gateway.js): raw sockets that log in
// (or fail to), send what the scenario says, and check everything they receive against what
// their identity may see (lib/oracle.js). Each scenario is one connection.

const net = require('net');
const mqttPacket = require('mqtt-packet');
const g = require('./gen');
const oracle = require('./oracle');
const { ATTACKERS, ATTACKER, NAMESPACED, evilFilters, evilTopics, validCredentials } = require('./gateway-cast');

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

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
      if (sent.size > 50000) sent.delete(sent.keys().next().value);
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

module.exports = { SCENARIOS, hostile, generate };
