'use strict';
const assert = require('assert');
const { startFleet, Fleet } = require('../../dist/sim');
const { startBroker, serverClient, makeImage, sha256, md5, startFileServer, until } = require('./helpers');

// A fake Tencent IoT Hub written from seed 003: answers a report_version with an older version
// by sending update_firmware (URL, md5sum, file_size), and records every report.
async function fakeTencent(url, files, image, { version = '1.2.0', product = 'SIMPRODUCT' } = {}) {
  const srv = await serverClient(url, [`$ota/report/${product}/+`]);
  const reports = [];
  srv.on('message', (topic, payload) => {
    const device = topic.split('/')[3];
    const body = JSON.parse(payload.toString());
    reports.push({ device, ...body });
    if (body.type === 'report_version' && body.report.version !== version) {
      srv.publish(`$ota/update/${product}/${device}`, JSON.stringify({ type: 'update_firmware', version, url: files.url, md5sum: md5(image), file_size: image.length }));
    }
  });
  const of = (device) => reports.filter((r) => r.device === device);
  const progress = (device) => of(device).filter((r) => r.type === 'report_progress').map((r) => r.report.progress);
  return { srv, reports, of, progress, until: (pred) => until(srv, 'message', pred) };
}

describe('sim: Tencent devices', function () {
  let broker;
  let files;
  let fleet;
  let server;
  const image = makeImage(64 * 1024 + 5, 21);

  before(async () => {
    broker = await startBroker();
    files = await startFileServer(image);
  });
  afterEach(async () => {
    if (fleet) await fleet.stop();
    if (server) await server.srv.endAsync();
    fleet = undefined;
    server = undefined;
    files.state.log.length = 0;
  });
  after(async () => {
    await files.close();
    await broker.close();
  });

  it('reports its version, downloads the URL, reports percent strings, burning, done, then the new version', async () => {
    server = await fakeTencent(broker.url, files, image);
    fleet = await startFleet({ broker: broker.url, dialect: 'tencent', count: 2, idPattern: 'dev{n}' });
    await fleet.waitAllUpdated(15_000, '1.2.0');
    await server.until(() => ['dev1', 'dev2'].every((d) => server.of(d).some((r) => r.type === 'report_version' && r.report.version === '1.2.0')));
    for (const d of fleet.devices) {
      assert.strictEqual(d.sha256, sha256(image));
      // Tencent's C SDK connects as {productId}{deviceName} (mqtt_client.c:86); its topics name the device alone.
      assert.strictEqual(d.clientId, `SIMPRODUCT${d.id}`);
      const p = server.progress(d.id);
      const percents = p.filter((x) => x.state === 'downloading').map((x) => x.percent);
      assert.strictEqual(percents[0], '0');
      assert.strictEqual(percents[percents.length - 1], '100');
      assert.ok(percents.every((x) => typeof x === 'string'));
      const numbers = percents.map(Number);
      assert.deepStrictEqual(numbers, [...numbers].sort((a, b) => a - b));
      assert.deepStrictEqual(p.slice(-2).map((x) => x.state), ['burning', 'done']);
      assert.ok(p.every((x) => x.result_code === '0'));
      const msgs = server.of(d.id);
      assert.deepStrictEqual(msgs[0], { device: d.id, type: 'report_version', report: { version: '1.0.0' } });
      assert.deepStrictEqual(msgs[msgs.length - 1], { device: d.id, type: 'report_version', report: { version: '1.2.0' } });
      assert.strictEqual(msgs.find((r) => r.type === 'report_progress').report.version, '1.2.0');
    }
  });

  it('reports fail with result_code -4 on an MD5 mismatch, then retries and succeeds', async () => {
    server = await fakeTencent(broker.url, files, image);
    fleet = await startFleet({ broker: broker.url, dialect: 'tencent', faults: { corruptChunk: 5 }, retryDelayMs: 20 });
    await fleet.waitAllUpdated(15_000, '1.2.0');
    await server.until(() => server.progress('tencent-1').some((x) => x.state === 'done'));
    const states = server.progress('tencent-1').map((x) => x.state).filter((s, i, a) => s !== 'downloading' || a[i - 1] !== 'downloading');
    assert.deepStrictEqual(states, ['downloading', 'fail', 'downloading', 'burning', 'done']);
    const fail = server.progress('tencent-1').find((x) => x.state === 'fail');
    assert.strictEqual(fail.result_code, '-4');
    assert.strictEqual(fleet.devices[0].sha256, sha256(image));
  });

  it('resumes a cut download with Range from where it stopped', async () => {
    server = await fakeTencent(broker.url, files, image);
    fleet = await startFleet({ broker: broker.url, dialect: 'tencent', faults: { dropAt: 0.5 } });
    await fleet.waitAllUpdated(15_000, '1.2.0');
    assert.strictEqual(fleet.devices[0].sha256, sha256(image));
    const [first, second, ...rest] = files.state.log;
    assert.strictEqual(first.range, undefined);
    const from = Number(/^bytes=(\d+)-$/.exec(second.range)[1]);
    assert.ok(from >= image.length / 2 && from < image.length, `resumed from ${from}`);
    assert.strictEqual(second.ifRange, `"${sha256(image)}"`);
    assert.strictEqual(second.status, 206);
    assert.strictEqual(rest.length, 0);
  });

  it('reports result_code -2 when the file does not exist', async () => {
    server = await fakeTencent(broker.url, { url: files.base + '/missing.bin' }, image);
    fleet = await startFleet({ broker: broker.url, dialect: 'tencent', maxAttempts: 1 });
    await fleet.waitAll((d) => d.state === 'failed', 15_000);
    await server.until(() => server.progress('tencent-1').some((x) => x.state === 'fail'));
    assert.strictEqual(server.progress('tencent-1').find((x) => x.state === 'fail').result_code, '-2');
  });

  it('never downloads more than `concurrency` images at once', async () => {
    server = await fakeTencent(broker.url, files, image);
    fleet = new Fleet({ broker: broker.url, dialect: 'tencent', count: 4, concurrency: 1 });
    let most = 0;
    fleet.on('state', () => { most = Math.max(most, fleet.devices.filter((d) => d.state === 'downloading').length); });
    await fleet.start();
    await fleet.waitAllUpdated(15_000, '1.2.0');
    assert.strictEqual(most, 1);
    assert.ok(fleet.devices.every((d) => d.history.some((h) => h.state === 'notified')));
    assert.strictEqual(files.state.log.length, 4);
    assert.ok(fleet.devices.every((d) => d.sha256 === sha256(image)));
  });
});
