'use strict';
const assert = require('assert');
const { image, environment, receive, helper, NODES } = require('../fixtures/setup');
const { deliveryFlow } = require('../fixtures/flows');
const devices = require('../fixtures/devices');

// "Reply directly": chunk-server subscribes on the chosen mqtt-broker config node and publishes
// the chunks on that connection, with no mqtt in or mqtt out wired for them.

describe('chunk-server replying directly on a broker', function () {
  const env = environment();
  before(env.start);
  after(env.stop);
  afterEach(env.unload);

  const FILTER = 'ota/+/v2/fw/request/+/chunk/+';
  const settings = { dialect: 'thingsboard', assign: { prefix: 'ota/{device}/' }, chunk: { prefix: 'ota/{device}/', broker: 'broker' }, waitFor: [FILTER] };
  let repo;
  let fw;
  let bytes;
  let client;
  let received;

  beforeEach(async function () {
    repo = await env.load(settings);
    bytes = image(10000);
    fw = (await repo.firmware.store({ image: bytes, title: 'app', version: '5.0.0' })).record;
    await repo.devices.register({ id: 'd1', dialect: 'thingsboard' });
    repo.rollout.assign('d1', 'thingsboard', fw);
    client = await devices.connect(env.broker.url, 'raw');
    received = [];
    client.on('message', (topic, payload) => received.push([topic, payload]));
    await client.subscribeAsync(['ota/d1/v2/fw/response/#', 'ota/d1/v2/fw/error'], { qos: 1 });
  });
  afterEach(async () => client.endAsync());

  /** Publishes a request; resolves with the payload of the first message on `reply`. */
  async function ask(topic, payload, reply) {
    const from = received.length;
    await client.publishAsync(topic, payload, { qos: 1 });
    for (;;) {
      const hit = received.slice(from).find(([t]) => t === reply);
      if (hit) return hit[1];
      await new Promise((r) => setTimeout(r, 5));
    }
  }

  it('serves a device the whole image, one reply per request, with progress on the second output', async function () {
    const progress = [];
    helper.getNode('progress').on('input', (msg) => progress.push(msg.payload));
    const parts = [];
    for (let n = 0; n < 3; n++) parts.push(await ask(`ota/d1/v2/fw/request/1/chunk/${n}`, '4096', `ota/d1/v2/fw/response/1/chunk/${n}`));
    assert.strictEqual(devices.sha256(Buffer.concat(parts)), fw.checksums.sha256);
    // The mqtt out wired to the first output would have sent each chunk a second time.
    await ask('ota/d1/v2/fw/request/1/chunk/3', '4096', 'ota/d1/v2/fw/response/1/chunk/3');
    assert.strictEqual(received.filter(([t]) => t.startsWith('ota/d1/v2/fw/response/1/chunk/')).length, 4);
    while (!progress.some((p) => p.state === 'downloaded')) await new Promise((r) => setTimeout(r, 5));
    assert.deepStrictEqual(progress.map((p) => [p.device, p.state, p.percent]).at(-1), ['d1', 'downloaded', 100]);
  });

  it('updates a ThingsBoard device end to end: notice from ota-assign, every chunk from the broker connection', async function () {
    const other = (await repo.firmware.store({ image: image(7000, 'b'), title: 'app', version: '6.0.0' })).record;
    await repo.devices.register({ id: 'dev-b', dialect: 'thingsboard' });
    const run = devices.thingsboard({ url: env.broker.url, prefix: 'ota/dev-b/', clientId: 'b', chunkSize: 512 });
    await env.broker.waitForSubscriptions(['ota/dev-b/v1/devices/me/attributes']);
    assert.strictEqual(await receive(helper.getNode('assign'), { firmware: other.id, devices: 'dev-b' }), undefined);
    const { image: got } = await run;
    assert.strictEqual(devices.sha256(got), other.checksums.sha256);
  });

  it('answers a bad request with an error to the device and to catch nodes with the request topic and payload', async function () {
    const node = helper.getNode('chunks');
    const reported = new Promise((resolve) => node.once('call:error', (call) => resolve(call.args)));
    const p = await ask('ota/d1/v2/fw/request/1/chunk/0', '70000', 'ota/d1/v2/fw/error');
    assert.match(p.toString(), /over the limit of 65536/);
    const [err, msg] = await reported;
    assert.match(String(err), /d1.*over the limit/);
    assert.strictEqual(msg.topic, 'ota/d1/v2/fw/request/1/chunk/0');
    assert.strictEqual(msg.payload.toString(), '70000');
    const good = await ask('ota/d1/v2/fw/request/2/chunk/1', '100', 'ota/d1/v2/fw/response/2/chunk/1');
    assert.deepStrictEqual(good, bytes.subarray(100, 200));
  });

  it('still answers messages wired in, on its first output', async function () {
    const out = new Promise((resolve) => helper.getNode('out').once('input', resolve));
    helper.getNode('chunks').receive({ topic: 'ota/d1/v2/fw/request/9/chunk/2', payload: Buffer.from('1000') });
    const msg = await out;
    assert.strictEqual(msg.topic, 'ota/d1/v2/fw/response/9/chunk/2');
    assert.deepStrictEqual(msg.payload, bytes.subarray(2000, 3000));
  });

  it('serves again after the broker drops every connection and Node-RED reconnects', async function () {
    await env.unload();
    helper.settings({ mqttReconnectTime: 100 });
    try {
      await env.load(settings);
      repo = helper.getNode('repo').repo;
      fw = (await repo.firmware.store({ image: bytes, title: 'app', version: '5.0.0' })).record;
      await repo.devices.register({ id: 'd1', dialect: 'thingsboard' });
      repo.rollout.assign('d1', 'thingsboard', fw);
      await ask('ota/d1/v2/fw/request/1/chunk/0', '100', 'ota/d1/v2/fw/response/1/chunk/0');
      env.broker.subscribed.clear();
      env.broker.dropAll();
      await env.broker.waitForSubscriptions([FILTER]); // Node-RED's client is back and subscribed again
      client = await devices.connect(env.broker.url, 'raw');
      received = [];
      client.on('message', (topic, payload) => received.push([topic, payload]));
      await client.subscribeAsync(['ota/d1/v2/fw/response/#'], { qos: 1 });
      const again = await ask('ota/d1/v2/fw/request/1/chunk/1', '100', 'ota/d1/v2/fw/response/1/chunk/1');
      assert.deepStrictEqual(again, bytes.subarray(100, 200));
    } finally {
      helper.settings({});
    }
  });

  it('follows the broker node to its new client after a disconnect and connect (an mqtt in "connect" action)', async function () {
    const conn = helper.getNode('broker');
    const before = conn.client;
    await new Promise((resolve) => conn.disconnect(resolve));
    env.broker.subscribed.clear();
    conn.connect();
    await env.broker.waitForSubscriptions([FILTER]);
    assert.notStrictEqual(conn.client, before, 'core made a new client');
    const chunk = await ask('ota/d1/v2/fw/request/3/chunk/2', '100', 'ota/d1/v2/fw/response/3/chunk/2');
    assert.deepStrictEqual(chunk, bytes.subarray(200, 300));
  });

  it('gives up its subscription when redeployed without a broker, while the connection serves the rest', async function () {
    const unsubscribed = [];
    const onUnsub = (topics) => unsubscribed.push(...topics);
    env.broker.aedes.on('unsubscribe', onUnsub);
    try {
      // The user opens the node, sets "Reply directly" back to none and deploys the modified node.
      const flow = deliveryFlow({ dir: repo.dir, port: env.broker.port, ...settings });
      flow.find((n) => n.id === 'chunks').broker = '';
      await helper.setFlows(flow, 'nodes', { repo: { secret: 'a-test-secret-of-at-least-32-characters!' } });
      while (!unsubscribed.includes(FILTER)) await new Promise((r) => setTimeout(r, 5));
      assert.ok(env.broker.clients() >= 2, 'the broker connection stays up for ota-assign and mqtt out');
    } finally {
      env.broker.aedes.removeListener('unsubscribe', onUnsub);
    }
  });

  it('reports a broker that does not exist, with a red status', async function () {
    await env.unload();
    const flow = deliveryFlow({ dir: repo.dir, port: env.broker.port, dialect: 'thingsboard', chunk: { broker: 'gone' } });
    await helper.load(NODES, flow, { repo: { secret: 'a-test-secret-of-at-least-32-characters!' } });
    // Both happened while the flow started; Node-RED's log holds the error.
    const logged = helper.log().getCalls().map((c) => c.args[0]).filter((m) => m && m.id === 'chunks' && m.level === 20);
    assert.strictEqual(logged.length, 1);
    assert.strictEqual(String(logged[0].msg), 'chunk-server.errors.noBroker'); // the test helper leaves i18n keys as they are
    const status = helper.getNode('chunks').status.getCalls().filter((c) => c.thisValue.id === 'chunks').map((c) => c.args[0]);
    assert.deepStrictEqual(status.at(-1), { fill: 'red', shape: 'ring', text: 'chunk-server.status.noBroker' });
  });
});
