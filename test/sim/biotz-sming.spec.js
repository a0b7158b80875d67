'use strict';
const assert = require('assert');
const { startFleet, encodePatch } = require('../../dist/sim');
const { startBroker, serverClient, makeImage, sha256, startFileServer, until } = require('./helpers');

const CUSTOMER = '5b0e1a52-2d0f-4c43-9f6e-0c5d1b7a0d11';

describe('sim: Biotz devices', function () {
  let broker;
  let files;
  let srv;
  let fleet;
  const image = makeImage(30_000, 5);

  before(async () => {
    broker = await startBroker();
    files = await startFileServer(image);
    srv = await serverClient(broker.url);
  });
  afterEach(async () => {
    if (fleet) await fleet.stop();
    fleet = undefined;
    files.state.log.length = 0;
  });
  after(async () => {
    await srv.endAsync();
    await files.close();
    await broker.close();
  });

  const notice = (device, name, url = files.url) =>
    srv.publishAsync(`biotz/1/0/${CUSTOMER}/${device}/subscribe/firmware/update`, JSON.stringify({ 'firmware-name': name, 'download-url': url }), { retain: true, qos: 1 });

  it('gets the retained notice on subscribe, downloads the URL and installs it', async () => {
    await notice('bz-1', 'fw-2.0.0');
    await notice('bz-2', 'fw-2.0.0');
    fleet = await startFleet({ broker: broker.url, dialect: 'biotz', count: 2, idPattern: 'bz-{n}', customer: CUSTOMER });
    await fleet.waitAllUpdated(15_000, 'fw-2.0.0');
    for (const d of fleet.devices) assert.strictEqual(d.sha256, sha256(image));
    assert.strictEqual(files.state.log.length, 2);
    // Checked against the SHA-256 ETag before installing.
    assert.deepStrictEqual(fleet.devices[0].history.map((h) => h.state).slice(-5), ['downloading', 'downloaded', 'verified', 'updating', 'updated']);
  });

  it('ignores a notice naming the firmware it runs (nothing is fetched)', async () => {
    await notice('bz-1', 'fw-1');
    fleet = await startFleet({ broker: broker.url, dialect: 'biotz', idPattern: 'bz-{n}', customer: CUSTOMER, version: 'fw-1' });
    const d = fleet.devices[0];
    await until(d.client, 'message', () => true);
    await new Promise((r) => setImmediate(r));
    assert.strictEqual(d.state, 'idle');
    assert.strictEqual(files.state.log.length, 0);
  });

  it('refuses a corrupted download (ETag SHA-256) and gets the retained notice again to retry', async () => {
    await notice('bz-1', 'fw-3');
    fleet = await startFleet({ broker: broker.url, dialect: 'biotz', idPattern: 'bz-{n}', customer: CUSTOMER, faults: { corruptChunk: 1 }, retryDelayMs: 20 });
    await fleet.waitAllUpdated(15_000, 'fw-3');
    const d = fleet.devices[0];
    assert.strictEqual(d.sha256, sha256(image));
    assert.deepStrictEqual(d.history.map((h) => h.state).filter((s) => s === 'failed' || s === 'updated'), ['failed', 'updated']);
    assert.strictEqual(d.history.find((h) => h.state === 'failed').error, 'sha256 mismatch');
    assert.strictEqual(files.state.log.length, 2);
  });

  it('resumes a cut download with Range', async () => {
    await notice('bz-1', 'fw-4');
    fleet = await startFleet({ broker: broker.url, dialect: 'biotz', idPattern: 'bz-{n}', customer: CUSTOMER, faults: { dropAt: 0.3 } });
    await fleet.waitAllUpdated(15_000, 'fw-4');
    assert.strictEqual(fleet.devices[0].sha256, sha256(image));
    assert.strictEqual(files.state.log.length, 2);
    assert.match(files.state.log[1].range, /^bytes=\d+-$/);
  });
});

describe('sim: Sming devices', function () {
  let broker;
  let srv;
  let fleet;
  const image = makeImage(50_000, 9);

  before(async () => {
    broker = await startBroker();
    srv = await serverClient(broker.url);
  });
  afterEach(async () => {
    if (fleet) await fleet.stop();
    fleet = undefined;
  });
  after(async () => {
    await srv.endAsync();
    await broker.close();
  });

  const release = (topic, patch, varint = true) => srv.publishAsync(topic, Buffer.concat([encodePatch(patch, varint), image]), { retain: true, qos: 1 });
  const clear = (topic) => srv.publishAsync(topic, Buffer.alloc(0), { retain: true, qos: 1 });

  it('flashes the retained image once, restarts, and leaves an equal patch alone (strict decoder)', async () => {
    await release('a/test/u/4.3', 7);
    fleet = await startFleet({ broker: broker.url, dialect: 'sming', reconnectMs: 50, version: '4.3.1', count: 2 });
    await fleet.waitAllUpdated(15_000, '4.3.7');
    // Restarted after flashing: the retained image came again and was not flashed again.
    await fleet.waitAll((d) => d.connects === 2, 15_000);
    await Promise.all(fleet.devices.map((d) => until(d.client, 'message', () => true)));
    await new Promise((r) => setImmediate(r));
    for (const d of fleet.devices) {
      assert.strictEqual(d.sha256, sha256(image));
      assert.strictEqual(d.installs, 1);
    }
    await clear('a/test/u/4.3');
  });

  it('honours a topic prefix (the seed writes /a/test/u/4.3)', async () => {
    await release('/a/test/u/4.3', 2);
    fleet = await startFleet({ broker: broker.url, dialect: 'sming', reconnectMs: 50, version: '4.3.1', smingPrefix: '/' });
    await fleet.waitAllUpdated(15_000, '4.3.2');
    assert.strictEqual(fleet.devices[0].sha256, sha256(image));
    await clear('/a/test/u/4.3');
  });

  it('models the real decoder: an equal patch is flashed again on every restart, up to maxAttempts', async () => {
    await release('a/test/u/5.0', 3);
    fleet = await startFleet({ broker: broker.url, dialect: 'sming', reconnectMs: 50, version: '5.0.1', smingDecoder: 'sming', maxAttempts: 3 });
    await fleet.waitAll((d) => d.installs === 3 && d.connects === 4, 15_000);
    assert.strictEqual(fleet.devices[0].version, '5.0.3');
    await clear('a/test/u/5.0');
  });

  it('models the real decoder: varint patch 200 reads as 73, older than 100, so nothing is flashed', async () => {
    await release('a/test/u/6.1', 200);
    fleet = await startFleet({ broker: broker.url, dialect: 'sming', reconnectMs: 50, version: '6.1.100', smingDecoder: 'sming' });
    const d = fleet.devices[0];
    await until(d.client, 'message', () => true);
    await new Promise((r) => setImmediate(r));
    assert.strictEqual(d.installs, 0);
    assert.strictEqual(d.version, '6.1.100');
    await clear('a/test/u/6.1');
  });

  it('installs a corrupted image without noticing: the protocol carries no checksum', async () => {
    await release('a/test/u/7.0', 1, false);
    fleet = await startFleet({ broker: broker.url, dialect: 'sming', reconnectMs: 50, version: '7.0.0', smingVarint: false, faults: { corruptChunk: 0 } });
    await fleet.waitAllUpdated(15_000, '7.0.1');
    assert.notStrictEqual(fleet.devices[0].sha256, sha256(image));
    await clear('a/test/u/7.0');
  });
});
