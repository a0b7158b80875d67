'use strict';
const assert = require('assert');
const { startFleet, hasNoDelay } = require('../../dist/sim');
const { computeChecksums } = require('../../dist/core/firmware/checksums');
const { startBroker, serverClient, makeImage, sha256, until } = require('./helpers');

// A fake ThingsBoard written from the seed: answers attribute requests with the fw_* shared
// attributes, serves chunk requests from the image (size from the payload, zero length past the
// end), and records every telemetry message.
async function fakeThingsBoard(url, image, { version = '1.1.0', title = 'sim-firmware', algorithm = 'CRC32' } = {}) {
  const sums = computeChecksums(image);
  const key = { CRC32: 'crc32', SHA256: 'sha256', MD5: 'md5', MURMUR3_128: 'murmur3_128' }[algorithm];
  const shared = { fw_title: title, fw_version: version, fw_size: image.length, fw_checksum_algorithm: algorithm, fw_checksum: sums[key], fw_tag: `${title} ${version}` };
  const srv = await serverClient(url, ['v1/devices/me/telemetry', 'v1/devices/me/attributes/request/+', 'v2/fw/request/+/chunk/+']);
  const state = { telemetry: [], chunkRequests: [], attributeRequests: 0 };
  srv.on('message', (topic, payload) => {
    if (topic === 'v1/devices/me/telemetry') {
      state.telemetry.push(JSON.parse(payload.toString()));
      return;
    }
    let m = /^v1\/devices\/me\/attributes\/request\/(\d+)$/.exec(topic);
    if (m) {
      state.attributeRequests++;
      const body = JSON.parse(payload.toString());
      const keys = body.sharedKeys.split(',');
      const answer = Object.fromEntries(keys.filter((k) => k in shared).map((k) => [k, shared[k]]));
      srv.publish(`v1/devices/me/attributes/response/${m[1]}`, JSON.stringify({ shared: answer }));
      return;
    }
    m = /^v2\/fw\/request\/(\d+)\/chunk\/(\d+)$/.exec(topic);
    if (m) {
      const size = payload.length ? Number(payload.toString()) : image.length;
      const n = Number(m[2]);
      state.chunkRequests.push({ requestId: Number(m[1]), n, size });
      srv.publish(`v2/fw/response/${m[1]}/chunk/${n}`, image.subarray(n * size, n * size + size));
    }
  });
  const states = () => state.telemetry.filter((t) => t.fw_state).map((t) => t.fw_state);
  // The device's state changes before its telemetry reaches us: wait for the report itself.
  const reported = (fwState, times = 1) => until(srv, 'message', () => states().filter((s) => s === fwState).length >= times);
  return { srv, state, shared, states, reported };
}

describe('sim: ThingsBoard devices', function () {
  let broker;
  let fleet;
  let server;
  const image = makeImage(10_123, 7);

  before(async () => { broker = await startBroker(); });
  afterEach(async () => {
    if (fleet) await fleet.stop();
    if (server) await server.srv.endAsync();
    fleet = undefined;
    server = undefined;
  });
  after(async () => { await broker.close(); });

  it('downloads in chunks, verifies the CRC32 and reports every fw_state in order', async () => {
    server = await fakeThingsBoard(broker.url, image);
    fleet = await startFleet({ broker: broker.url, dialect: 'thingsboard', count: 1, chunkSize: 1000, tokenPattern: 'tok-{n}' });
    await fleet.waitAllUpdated(15_000, '1.1.0');
    await server.reported('UPDATED');
    const d = fleet.devices[0];
    assert.strictEqual(d.sha256, sha256(image));
    assert.deepStrictEqual(server.states(), ['DOWNLOADING', 'DOWNLOADED', 'VERIFIED', 'UPDATING', 'UPDATED']);
    const first = server.state.telemetry[0];
    assert.deepStrictEqual(first, { current_fw_title: 'sim-firmware', current_fw_version: '1.0.0' });
    const last = server.state.telemetry[server.state.telemetry.length - 1];
    assert.deepStrictEqual(last, { current_fw_title: 'sim-firmware', current_fw_version: '1.1.0', fw_state: 'UPDATED' });
    // Chunk size as text, 11 chunks for 10 123 bytes, indexes from 0, one request id.
    assert.deepStrictEqual(server.state.chunkRequests.map((r) => r.n), [...Array(11).keys()]);
    assert.ok(server.state.chunkRequests.every((r) => r.size === 1000 && r.requestId === 1));
    assert.deepStrictEqual(d.history.map((h) => h.state), ['idle', 'notified', 'downloading', 'downloaded', 'verified', 'updating', 'updated']);
  });

  it('connects with TCP_NODELAY set', async () => {
    server = await fakeThingsBoard(broker.url, image);
    fleet = await startFleet({ broker: broker.url, dialect: 'thingsboard', count: 1 });
    assert.strictEqual(hasNoDelay(fleet.devices[0].client), true);
  });

  it('stops at a zero-length chunk when the image ends on a chunk boundary', async () => {
    const even = makeImage(4000, 3);
    server = await fakeThingsBoard(broker.url, even, { algorithm: 'SHA256' });
    // fw_size says more than the image: the device stops at the empty chunk and then refuses the size.
    server.shared.fw_size = 5000;
    fleet = await startFleet({ broker: broker.url, dialect: 'thingsboard', chunkSize: 1000, maxAttempts: 1 });
    await fleet.waitAll((d) => d.state === 'failed', 15_000);
    await server.reported('FAILED');
    assert.deepStrictEqual(server.state.chunkRequests.map((r) => r.n), [0, 1, 2, 3, 4]);
    const failed = server.state.telemetry.find((t) => t.fw_state === 'FAILED');
    assert.match(failed.fw_error, /size/);
  });

  it('reports FAILED with fw_error on a corrupted chunk, then retries on the next notice and succeeds', async () => {
    server = await fakeThingsBoard(broker.url, image, { algorithm: 'MURMUR3_128' });
    fleet = await startFleet({ broker: broker.url, dialect: 'thingsboard', chunkSize: 1000, faults: { corruptChunk: 3 }, retryDelayMs: 50 });
    await fleet.waitAllUpdated(15_000, '1.1.0');
    await server.reported('UPDATED');
    assert.strictEqual(fleet.devices[0].sha256, sha256(image));
    assert.deepStrictEqual(server.states(), [
      'DOWNLOADING', 'DOWNLOADED', 'FAILED',
      'DOWNLOADING', 'DOWNLOADED', 'VERIFIED', 'UPDATING', 'UPDATED',
    ]);
    assert.strictEqual(server.state.telemetry.find((t) => t.fw_state === 'FAILED').fw_error, 'Checksum verification failed');
    // The retry is a new firmware request id, from chunk 0.
    const second = server.state.chunkRequests.filter((r) => r.requestId === 2);
    assert.strictEqual(second[0].n, 0);
    assert.strictEqual(fleet.devices[0].attempts, 2);
  });

  it('resumes from the chunk it was waiting for after the connection drops mid-download', async () => {
    server = await fakeThingsBoard(broker.url, image);
    fleet = await startFleet({ broker: broker.url, dialect: 'thingsboard', chunkSize: 1000, faults: { dropAt: 0.5 }, reconnectMs: 50 });
    await fleet.waitAllUpdated(15_000, '1.1.0');
    await server.reported('UPDATED');
    const d = fleet.devices[0];
    assert.strictEqual(d.sha256, sha256(image));
    assert.strictEqual(d.connects, 2);
    const ns = server.state.chunkRequests.map((r) => r.n);
    // Every chunk asked for once, except the one in flight when the connection dropped.
    assert.deepStrictEqual([...new Set(ns)], [...Array(11).keys()]);
    assert.ok(ns.length <= 12, `asked ${ns.length} times`);
    assert.ok(server.state.chunkRequests.every((r) => r.requestId === 1));
    assert.deepStrictEqual(server.states().slice(-4), ['DOWNLOADED', 'VERIFIED', 'UPDATING', 'UPDATED']);
  });

  it('pauses its requests when stalled, then completes', async () => {
    server = await fakeThingsBoard(broker.url, image);
    fleet = await startFleet({ broker: broker.url, dialect: 'thingsboard', chunkSize: 1000, faults: { stallAt: 0.3, stallMs: 200 } });
    const logs = [];
    fleet.on('log', (l) => logs.push(l));
    await fleet.waitAllUpdated(15_000, '1.1.0');
    assert.strictEqual(fleet.devices[0].sha256, sha256(image));
    assert.ok(logs.some((l) => /stalling 200 ms/.test(l)));
  });

  it('does nothing when the assigned version is the one it runs', async () => {
    server = await fakeThingsBoard(broker.url, image, { version: '1.0.0' });
    fleet = await startFleet({ broker: broker.url, dialect: 'thingsboard' });
    const d = fleet.devices[0];
    // Wait until the device has the answer to its attribute request in hand.
    let answered = false;
    d.client.on('message', (topic) => { if (topic.startsWith('v1/devices/me/attributes/response/')) answered = true; });
    await until(d.client, 'message', () => answered);
    await new Promise((r) => setImmediate(r));
    assert.strictEqual(d.state, 'idle');
    assert.strictEqual(d.attempts, 0);
    assert.strictEqual(server.state.chunkRequests.length, 0);
  });
});
