'use strict';
const assert = require('assert');
const net = require('net');
const crypto = require('crypto');
const h = require('./helpers');
const { isValidReasonCode, reasonCodesOf } = require('../../dist/gateway/reason-codes');

// MQTT 5 devices (mqtt.js with protocolVersion 5, as the stock ThingsBoard Python SDK connects:
// paho.Client(protocol=5) in its tb_device_mqtt.py) in front of brokers that speak only 3.1.1:
// aedes 1.x, which answers an MQTT 5 CONNECT with 3.1.1 CONNACK 1 and closes, mosquitto told to
// take 3.1.1 from the gateway, and a broker that closes without any CONNACK.

/** A raw MQTT 5 device whose every incoming packet must carry only codes valid in MQTT 5. */
function rawDevice(port) {
  const raw = h.rawClient(port, 5);
  const bad = [];
  const next = raw.next;
  raw.next = async (cmd) => {
    const p = await next(cmd);
    for (const code of reasonCodesOf(p, 5)) if (!isValidReasonCode(p.cmd, code, 5)) bad.push(`${p.cmd} 0x${code.toString(16)}`);
    assert.deepStrictEqual(bad, [], 'every code the gateway sends is valid MQTT 5');
    return p;
  };
  return raw;
}

const connect5 = (clientId, username, extra = {}) => ({ cmd: 'connect', protocolVersion: 5, clientId, username, clean: true, keepalive: 30, ...extra });

/** Resolves with the next message on `client` whose topic is `topic`. */
const nextMessage = (client, topic) =>
  new Promise((resolve) => {
    const on = (t, payload, packet) => {
      if (t !== topic) return;
      client.off('message', on);
      resolve(packet);
    };
    client.on('message', on);
  });

/** The SUBACK codes, also when mqtt.js rejects the SUBACK for some of them (0x9E, 0xA1). */
async function subackCodes(client, map, options) {
  try {
    return (await client.subscribeAsync(map, options)).map((g) => g.qos);
  } catch (err) {
    if (!err.packet) throw err;
    return err.packet.granted;
  }
}

/** Every one of these specs, on a broker that speaks 3.1.1 to the gateway. */
function bridgedBehaviour(ctx) {
  const device = async (id, options = {}) => {
    const client = await h.connect(ctx.gateway.url, { protocolVersion: 5, username: `${id}-token`, clientId: `${id}-c`, ...options });
    ctx.clients.push(client);
    return client;
  };

  it('accepts the device with a valid MQTT 5 CONNACK stating what the broker cannot do', async function () {
    const c = await device('plain');
    assert.strictEqual(c.connack.reasonCode, 0);
    const props = c.connack.properties ?? {};
    assert.strictEqual(props.sharedSubscriptionAvailable, false);
    assert.strictEqual(props.subscriptionIdentifiersAvailable, false);
    assert.strictEqual(props.topicAliasMaximum, undefined);
  });

  it('completes a ThingsBoard chunked download subscribed to v2/fw/response/+ (the stock SDK)', async function () {
    const c = await device('tb');
    const built = await h.thingsboardDownload(c, { size: ctx.images.get('tb').length, chunkSize: 1500 });
    assert.strictEqual(h.sha256(built), h.sha256(ctx.images.get('tb')));
  });

  it('carries QoS 0, 1 and 2 both ways', async function () {
    const c = await device('qos');
    const up = [];
    ctx.direct.on('message', (topic, payload, packet) => topic.startsWith('ota/qos/up/') && up.push([topic, packet.qos]));
    await ctx.direct.subscribeAsync('ota/qos/up/#', { qos: 2 });
    const down = [];
    c.on('message', (topic, payload, packet) => down.push([topic, packet.qos, payload.toString()]));
    const granted = await c.subscribeAsync('down/#', { qos: 2 });
    assert.strictEqual(granted[0].qos, 2);
    for (const qos of [0, 1, 2]) await c.publishAsync(`up/${qos}`, 'x', { qos });
    for (const qos of [0, 1, 2]) await ctx.direct.publishAsync(`ota/qos/down/${qos}`, `d${qos}`, { qos });
    await h.until(() => up.length === 3 && down.length === 3);
    assert.deepStrictEqual(up.sort(), [['ota/qos/up/0', 0], ['ota/qos/up/1', 1], ['ota/qos/up/2', 2]]);
    assert.deepStrictEqual(down.sort(), [['down/0', 0, 'd0'], ['down/1', 1, 'd1'], ['down/2', 2, 'd2']]);
  });

  it('delivers a message with user properties, content type and payload format, without them', async function () {
    const c = await device('props');
    const got = nextMessage(ctx.direct, 'ota/props/annotated');
    await ctx.direct.subscribeAsync('ota/props/annotated', { qos: 1 });
    const before = { ...ctx.gateway.protocol.counters.dropped };
    await c.publishAsync('annotated', 'body', { qos: 1, properties: { userProperties: { a: '1' }, contentType: 'text/plain', payloadFormatIndicator: true } });
    const packet = await got;
    assert.strictEqual(packet.payload.toString(), 'body');
    const dropped = ctx.gateway.protocol.counters.dropped;
    for (const name of ['userProperties', 'contentType', 'payloadFormatIndicator']) assert.strictEqual(dropped[name], (before[name] ?? 0) + 1, name);
  });

  it('refuses with 0x83 a request carrying a response topic, and a retained message with an expiry', async function () {
    const c = await device('refuse');
    const seen = [];
    ctx.direct.on('message', (topic) => topic.startsWith('ota/refuse/') && seen.push(topic));
    await ctx.direct.subscribeAsync('ota/refuse/#', { qos: 1 });
    await assert.rejects(c.publishAsync('ask', 'q', { qos: 1, properties: { responseTopic: 'answer', correlationData: Buffer.from('1') } }), (err) => err.code === 0x83);
    await assert.rejects(c.publishAsync('status', 'on', { qos: 1, retain: true, properties: { messageExpiryInterval: 60 } }), (err) => err.code === 0x83);
    await c.publishAsync('marker', 'm', { qos: 1 });
    await h.until(() => seen.includes('ota/refuse/marker'));
    assert.deepStrictEqual(seen, ['ota/refuse/marker']);
  });

  it('refuses per filter the subscription options a 3.1.1 broker cannot honour, grants the rest', async function () {
    const c = await device('subopts');
    const codes = await subackCodes(c, {
      plain: { qos: 1 },
      'no/local': { qos: 1, nl: true },
      'as/published': { qos: 1, rap: true },
      'no/retained': { qos: 1, rh: 2 },
      'new/only': { qos: 1, rh: 1 },
      '$share/g/x': { qos: 1 },
    });
    assert.deepStrictEqual(codes, [1, 0x83, 0x83, 0x83, 1, 0x9e]);
    // Retain handling 1 again on a filter it holds: 3.1.1 would resend the retained messages.
    assert.deepStrictEqual(await subackCodes(c, { 'new/only': { qos: 1, rh: 1 } }), [0x83]);
    assert.deepStrictEqual(await subackCodes(c, 'with/id', { qos: 1, properties: { subscriptionIdentifier: 7 } }), [0xa1]);
  });

  it('answers an UNSUBSCRIBE with one 0x00 per filter', async function () {
    const c = await device('unsub');
    await c.subscribeAsync(['a', 'b'], { qos: 1 });
    const reply = await c.unsubscribeAsync(['a', 'b']);
    assert.deepStrictEqual(reply.granted ?? reply.reasonCodes, [0, 0]);
  });

  it('refuses enhanced authentication at CONNECT with 0x8C, and an AUTH packet with DISCONNECT 0x82', async function () {
    const a = rawDevice(ctx.gateway.port);
    a.send(connect5('auth-a', 'auth-token', { properties: { authenticationMethod: 'SCRAM-SHA-1' } }));
    assert.strictEqual((await a.next('connack')).reasonCode, 0x8c);
    await a.closed;
    const b = rawDevice(ctx.gateway.port);
    b.send(connect5('auth-b', 'auth-token'));
    assert.strictEqual((await b.next('connack')).reasonCode, 0);
    b.send({ cmd: 'auth', reasonCode: 0x18, properties: { authenticationMethod: 'SCRAM-SHA-1' } });
    assert.strictEqual((await b.next('disconnect')).reasonCode, 0x82);
    await b.closed;
  });

  it('publishes the will when the device disconnects with reason 0x04', async function () {
    const got = nextMessage(ctx.direct, 'ota/will/gone');
    await ctx.direct.subscribeAsync('ota/will/gone', { qos: 1 });
    const raw = rawDevice(ctx.gateway.port);
    raw.send(connect5('will-c', 'will-token', { will: { topic: 'gone', payload: Buffer.from('bye'), qos: 1, retain: false, properties: { willDelayInterval: 0 } } }));
    assert.strictEqual((await raw.next('connack')).reasonCode, 0);
    raw.send({ cmd: 'disconnect', reasonCode: 0x04 });
    assert.strictEqual((await got).payload.toString(), 'bye');
    await raw.closed;
  });

  it('tells a device asking for a fresh session that lasts that it ends with the connection', async function () {
    const c = await device('expiry', { clean: true, properties: { sessionExpiryInterval: 300 } });
    assert.strictEqual(c.connack.properties.sessionExpiryInterval, 0);
  });

  it('drops a message over the device\'s maximum packet size and delivers the next', async function () {
    const c = await device('small', { properties: { maximumPacketSize: 300 } });
    const got = [];
    c.on('message', (topic, payload) => got.push(payload.length));
    await c.subscribeAsync('big/#', { qos: 1 });
    await ctx.direct.publishAsync('ota/small/big/1', Buffer.alloc(1000), { qos: 1 });
    await ctx.direct.publishAsync('ota/small/big/2', Buffer.alloc(100), { qos: 1 });
    await h.until(() => got.length >= 1);
    await h.sleep(50);
    assert.deepStrictEqual(got, [100]);
    assert.ok(c.connected);
  });
}

const IDS = ['plain', 'tb', 'qos', 'props', 'refuse', 'subopts', 'unsub', 'auth', 'will', 'expiry', 'small'];

async function setUp(ctx, brokerUrl, version, options = {}) {
  ctx.store = h.makeRepository();
  for (const id of IDS) {
    await ctx.store.repo.devices.register({ id, dialect: 'thingsboard', token: `${id}-token` });
    ctx.images.set(id, crypto.randomBytes(7000 + ctx.images.size * 77));
  }
  ctx.gateway = await h.startGateway(ctx.store.repo, brokerUrl, options);
  ctx.gateway.on('protocol', (n) => ctx.notices.push(n));
  ctx.responder = await h.startResponder(brokerUrl, ctx.images, version);
  ctx.direct = await h.connect(brokerUrl, { protocolVersion: version });
  ctx.clients.push(ctx.responder, ctx.direct);
}

async function tearDown(ctx) {
  await h.endAll(ctx.clients);
  if (ctx.gateway) await ctx.gateway.close();
  if (ctx.broker) await ctx.broker.close();
  if (ctx.store) await ctx.store.close();
}

const fresh = () => ({ clients: [], images: new Map(), notices: [] });

describe('ota-gateway: MQTT 5 devices bridged to aedes (MQTT 3.1.1 only), upstream protocol auto', function () {
  this.timeout(15000);
  const ctx = fresh();
  before(async () => {
    ctx.broker = await h.startAedes();
    await setUp(ctx, ctx.broker.url, 4);
  });
  after(() => tearDown(ctx));

  bridgedBehaviour(ctx);

  it('logged once that the broker refuses MQTT 5 and what to configure', function () {
    assert.strictEqual(ctx.notices.length, 1);
    assert.strictEqual(ctx.notices[0].kind, 'bridging');
    assert.match(ctx.notices[0].message, /refuses MQTT 5|unacceptable protocol version/);
    assert.match(ctx.notices[0].message, /upstream protocol/);
    assert.ok(ctx.gateway.protocol.counters.bridged >= IDS.length);
  });
});

describe('ota-gateway: upstream protocol 5 on aedes', function () {
  this.timeout(15000);
  const ctx = fresh();
  before(async () => {
    ctx.broker = await h.startAedes();
    await setUp(ctx, ctx.broker.url, 4, { upstreamProtocol: '5' });
  });
  after(() => tearDown(ctx));

  it('refuses MQTT 5 devices with 0x84 (not the invalid 0x01), saying once what to configure', async function () {
    for (const id of ['plain', 'tb']) {
      const raw = rawDevice(ctx.gateway.port);
      raw.send(connect5(`${id}-c`, `${id}-token`));
      assert.strictEqual((await raw.next('connack')).reasonCode, 0x84);
      await raw.closed;
    }
    assert.strictEqual(ctx.notices.length, 1);
    assert.strictEqual(ctx.notices[0].kind, 'refused-v5');
    assert.match(ctx.notices[0].message, /auto or 3\.1\.1/);
  });

  it('still serves MQTT 3.1.1 devices as 3.1.1', async function () {
    const c = await h.connect(ctx.gateway.url, { username: 'qos-token', clientId: 'qos4' });
    ctx.clients.push(c);
    assert.strictEqual(c.connack.returnCode, 0);
  });
});

describe('ota-gateway: a broker that closes an MQTT 5 CONNECT without CONNACK', function () {
  this.timeout(15000);
  const ctx = fresh();
  let front, aedes;
  before(async () => {
    aedes = await h.startAedes();
    // In front of aedes: drops any connection whose CONNECT says protocol level 5.
    front = net.createServer((socket) => {
      socket.once('data', (data) => {
        const level = data[data.indexOf('MQTT') + 4];
        if (level === 5) return socket.destroy();
        const back = net.connect(aedes.port, '127.0.0.1', () => back.write(data));
        socket.pipe(back).pipe(socket);
        socket.on('error', () => back.destroy());
        back.on('error', () => socket.destroy());
        socket.on('close', () => back.destroy());
      });
    });
    await new Promise((r) => front.listen(0, '127.0.0.1', r));
    ctx.broker = { close: async () => { await new Promise((r) => front.close(r)); await aedes.close(); } };
    await setUp(ctx, `mqtt://127.0.0.1:${front.address().port}`, 4);
  });
  after(() => tearDown(ctx));

  it('connects the device as 3.1.1 on a second try and learns to bridge', async function () {
    const c = await h.connect(ctx.gateway.url, { protocolVersion: 5, username: 'plain-token', clientId: 'plain-c' });
    ctx.clients.push(c);
    assert.strictEqual(c.connack.reasonCode, 0);
    assert.deepStrictEqual(ctx.notices.map((n) => n.kind), ['bridging']);
    assert.match(ctx.notices[0].message, /without CONNACK/);
    const d = await h.connect(ctx.gateway.url, { protocolVersion: 5, username: 'tb-token', clientId: 'tb-c' });
    ctx.clients.push(d);
    const built = await h.thingsboardDownload(d, { size: ctx.images.get('tb').length });
    assert.strictEqual(h.sha256(built), h.sha256(ctx.images.get('tb')));
  });
});

describe('ota-gateway: MQTT 5 devices through mosquitto', function () {
  this.timeout(15000);

  describe('upstream protocol 3.1.1 (forced)', function () {
    const ctx = fresh();
    before(async function () {
      if (!h.hasMosquitto()) this.skip();
      ctx.broker = await h.startMosquitto();
      await setUp(ctx, ctx.broker.url, 5, { upstreamProtocol: '3.1.1' });
    });
    after(() => tearDown(ctx));

    bridgedBehaviour(ctx);

    it('probed nothing and logged nothing', function () {
      assert.deepStrictEqual(ctx.notices, []);
    });
  });

  describe('upstream protocol auto', function () {
    const ctx = fresh();
    before(async function () {
      if (!h.hasMosquitto()) this.skip();
      ctx.broker = await h.startMosquitto();
      await setUp(ctx, ctx.broker.url, 5);
    });
    after(() => tearDown(ctx));

    it('speaks MQTT 5 to the broker: properties and subscription options pass through', async function () {
      const c = await h.connect(ctx.gateway.url, { protocolVersion: 5, username: 'props-token', clientId: 'props-c' });
      ctx.clients.push(c);
      const got = nextMessage(ctx.direct, 'ota/props/annotated');
      await ctx.direct.subscribeAsync('ota/props/annotated', { qos: 1 });
      await c.publishAsync('annotated', 'body', { qos: 1, properties: { userProperties: { a: '1' }, responseTopic: 'answer' } });
      const packet = await got;
      assert.deepStrictEqual({ ...packet.properties.userProperties }, { a: '1' });
      assert.strictEqual(packet.properties.responseTopic, 'ota/props/answer');
      const granted = await c.subscribeAsync({ 'no/local': { qos: 1, nl: true } });
      assert.strictEqual(granted[0].qos, 1);
      assert.deepStrictEqual(ctx.notices, []);
      assert.strictEqual(ctx.gateway.protocol.counters.bridged, 0);
    });
  });
});
