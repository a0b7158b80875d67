'use strict';
const assert = require('assert');
const { image, environment, receive, nextError, helper } = require('../fixtures/setup');
const devices = require('../fixtures/devices');

// Bad input never stops the server: every bad request gets a clear error (to the device and to a
// catch node) and the next good request is served.

describe('chunk-server', function () {
  const env = environment();
  before(env.start);
  after(env.stop);
  afterEach(env.unload);

  const ns = { dialect: '', chunkFilters: ['ota/+/v2/fw/request/+/chunk/+', 'ota/+/tago/data/post'], assign: { prefix: 'ota/{device}/' }, chunk: { prefix: 'ota/{device}/', maxChunkSize: 65536 } };
  let repo;
  let fw;
  let client;
  let bytes;

  /** Publishes a request and resolves with [topic, payload] of the first reply on `replies`. */
  function ask(topic, payload, replies) {
    return new Promise((resolve) => {
      const onMessage = (t, p, packet) => {
        // A retained notice (the Tago manifest behind the gateway) is no reply.
        if (packet.retain) return;
        if (!replies.some((r) => (r.endsWith('#') ? t.startsWith(r.slice(0, -1)) : t === r))) return;
        if (t.endsWith('tago/data/post') && p.toString() === String(payload)) return; // our own request
        client.removeListener('message', onMessage);
        resolve([t, p]);
      };
      client.on('message', onMessage);
      client.publish(topic, payload, { qos: 1 });
    });
  }

  beforeEach(async function () {
    repo = await env.load(ns);
    bytes = image(10000);
    fw = (await repo.firmware.store({ image: bytes, title: 'app', version: '5.0.0' })).record;
    await repo.devices.register({ id: 'd1', dialect: 'thingsboard' });
    await repo.devices.register({ id: 't1', dialect: 'tago' });
    await receive(helper.getNode('assign'), { firmware: fw, devices: ['d1', 't1'] });
    client = await devices.connect(env.broker.url, 'raw');
    await client.subscribeAsync(['ota/+/v2/fw/response/#', 'ota/+/v2/fw/error', 'ota/+/tago/data/post']);
  });
  afterEach(async () => client.endAsync());

  it('serves [size*n, size*n+size), the same bytes again, zero bytes past the end, and the whole image for an empty first request', async function () {
    const [, c3] = await ask('ota/d1/v2/fw/request/1/chunk/3', '1000', ['ota/d1/v2/fw/response/1/chunk/3']);
    assert.deepStrictEqual(c3, bytes.subarray(3000, 4000));
    const [, again] = await ask('ota/d1/v2/fw/request/1/chunk/3', '', ['ota/d1/v2/fw/response/1/chunk/3']);
    assert.deepStrictEqual(again, c3, 'empty payload: the size last used for this requestId');
    const [, past] = await ask('ota/d1/v2/fw/request/1/chunk/10', '1000', ['ota/d1/v2/fw/response/1/chunk/10']);
    assert.strictEqual(past.length, 0);
    const [, whole] = await ask('ota/d1/v2/fw/request/2/chunk/0', '', ['ota/d1/v2/fw/response/2/chunk/0']);
    assert.strictEqual(devices.sha256(whole), fw.checksums.sha256);
  });

  const bad = [
    ['a non-numeric index', 'ota/d1/v2/fw/request/1/chunk/abc', '100', /chunk index "abc"/],
    ['a negative index', 'ota/d1/v2/fw/request/1/chunk/-1', '100', /chunk index "-1"/],
    ['chunk size 0', 'ota/d1/v2/fw/request/1/chunk/0', '0', /chunk size 0/],
    ['a chunk size over the cap', 'ota/d1/v2/fw/request/1/chunk/0', '70000', /over the limit of 65536/],
    ['a chunk size that is not a number', 'ota/d1/v2/fw/request/1/chunk/0', '{"size":1}', /not a positive integer/],
    ['an unknown requestId with an empty size past chunk 0', 'ota/d1/v2/fw/request/77/chunk/4', '', /unknown requestId 77/],
  ];
  for (const [what, topic, payload, message] of bad) {
    it(`answers ${what} with an error on v2/fw/error and a node error, then serves the next request`, async function () {
      const nodeError = nextError(helper.getNode('chunks'));
      const [t, p] = await ask(topic, payload, ['ota/d1/v2/fw/error']);
      assert.strictEqual(t, 'ota/d1/v2/fw/error');
      assert.match(p.toString(), message);
      assert.match(String(await nodeError), message);
      const [, good] = await ask('ota/d1/v2/fw/request/5/chunk/1', '4096', ['ota/d1/v2/fw/response/5/chunk/1']);
      assert.deepStrictEqual(good, bytes.subarray(4096, 8192));
    });
  }

  it('answers every bad request of a flooding device, but reports it to the log and catch nodes once per 10 s', async function () {
    const node = helper.getNode('chunks');
    const reported = [];
    node.on('call:error', (call) => reported.push(String(call.args[0])));
    for (let i = 0; i < 20; i++) {
      const [t] = await ask('ota/d1/v2/fw/request/1/chunk/x', '100', ['ota/d1/v2/fw/error']);
      assert.strictEqual(t, 'ota/d1/v2/fw/error');
    }
    await ask('ota/t1/tago/data/post', '{"variable":"firmware_request","value":-3}', ['ota/t1/tago/data/post']);
    assert.strictEqual(reported.length, 2, reported.join('\n'));
    assert.match(reported[0], /d1/);
    assert.match(reported[1], /tago device t1/, 'another device\'s error is still reported');
    const [, good] = await ask('ota/d1/v2/fw/request/1/chunk/0', '100', ['ota/d1/v2/fw/response/1/chunk/0']);
    assert.deepStrictEqual(good, bytes.subarray(0, 100));
  });

  it('answers an unknown device and a device with no assignment with an error', async function () {
    const [, p] = await ask('ota/ghost/v2/fw/request/1/chunk/0', '100', ['ota/ghost/v2/fw/error']);
    assert.match(p.toString(), /unknown device ghost/);
    await repo.devices.register({ id: 'idle', dialect: 'thingsboard' });
    const [, q] = await ask('ota/idle/v2/fw/request/1/chunk/0', '100', ['ota/idle/v2/fw/error']);
    assert.match(q.toString(), /no firmware is assigned/);
    const [, good] = await ask('ota/d1/v2/fw/request/1/chunk/0', '100', ['ota/d1/v2/fw/response/1/chunk/0']);
    assert.deepStrictEqual(good, bytes.subarray(0, 100));
  });

  it('keeps serving the firmware a requestId pinned when the assignment changes, until a new requestId', async function () {
    await ask('ota/d1/v2/fw/request/1/chunk/0', '100', ['ota/d1/v2/fw/response/1/chunk/0']);
    const other = (await repo.firmware.store({ image: image(300, 'other'), title: 'app', version: '6.0.0' })).record;
    await receive(helper.getNode('assign'), { firmware: other, devices: 'd1' });
    const [, old] = await ask('ota/d1/v2/fw/request/1/chunk/1', '100', ['ota/d1/v2/fw/response/1/chunk/1']);
    assert.deepStrictEqual(old, bytes.subarray(100, 200));
    const [, fresh] = await ask('ota/d1/v2/fw/request/2/chunk/0', '', ['ota/d1/v2/fw/response/2/chunk/0']);
    assert.strictEqual(devices.sha256(fresh), other.checksums.sha256);
  });

  it('tago: malformed JSON and bad indices get firmware_error, the next request its block', async function () {
    for (const [payload, message] of [['{"variable":"firmware_request",', /malformed JSON/], ['{"variable":"firmware_request","value":-3}', /not a non-negative integer/], ['{"variable":"firmware_request","value":"two"}', /not a non-negative integer/]]) {
      const [, p] = await ask('ota/t1/tago/data/post', payload, ['ota/t1/tago/data/post']);
      const reply = JSON.parse(p);
      assert.strictEqual(reply.variable, 'firmware_error');
      assert.match(reply.value, message);
    }
    const [, p] = await ask('ota/t1/tago/data/post', '{"variable":"firmware_request","value":2}', ['ota/t1/tago/data/post']);
    const block = JSON.parse(p);
    assert.deepStrictEqual([block.variable, block.value], ['firmware_block', 2]);
    assert.deepStrictEqual(Buffer.from(block.metadata.data, 'base64'), bytes.subarray(8192, 10000));
  });

  it('answers chunk requests for a deleted firmware with an error', async function () {
    repo.rollout.unassign('d1');
    repo.rollout.unassign('t1');
    await repo.deleteFirmware(fw.id);
    // An assignment left pointing at a deleted firmware (a store edited by hand, a race).
    const ghost = { ...fw };
    repo.rollout.assign('d1', 'thingsboard', ghost);
    const [, p] = await ask('ota/d1/v2/fw/request/1/chunk/0', '100', ['ota/d1/v2/fw/error']);
    assert.match(p.toString(), /was deleted/);
  });
});
