'use strict';
// The sidebar's live feed (src/sidebar/live-feed.ts) without Node-RED: what an open editor
// receives while devices report. Coalesced (one message per topic per tick), only what changed,
// bounded per tick however many devices move, a retained summary, and nothing after close.
const assert = require('assert');
const fs = require('fs');
const { OtaRepository } = require('../../dist/core/repository');
const { trackerFor } = require('../../dist/core/device-updates/tracker');
const { LiveFeed } = require('../../dist/sidebar/live-feed');
const { imageOf, tempDir } = require('../support/images');

describe('sidebar live feed', function () {
  let dir, repo, tracker, fw, feed, sent;
  const publish = (topic, data, retain) => sent.push({ topic, data, retain: Boolean(retain) });
  const on = (suffix) => sent.filter((m) => m.topic === `ota-sidebar/r1/${suffix}`);
  const report = (device, state, extra = {}) => tracker.record({ device, dialect: 'thingsboard', state, ...extra });

  beforeEach(async () => {
    dir = tempDir();
    repo = new OtaRepository({ dir, secret: 'x'.repeat(40) });
    tracker = trackerFor(repo);
    fw = (await repo.firmware.store({ image: imageOf(100), title: 'app', version: '2.0.0' })).record;
    for (let i = 0; i < 50; i++) await repo.devices.register({ id: `d${String(i).padStart(2, '0')}`, dialect: 'thingsboard' });
    tracker.assign(fw, repo.devices.list());
    sent = [];
  });
  afterEach(async () => {
    if (feed) feed.close();
    feed = undefined;
    await repo.flush();
    fs.rmSync(dir, { recursive: true, force: true });
  });

  it('sends one message per tick with only the devices that changed, each once, latest state', () => {
    feed = new LiveFeed(repo, 'ota-sidebar/r1', publish, { intervalMs: 60000, listCheckMs: 60000 });
    feed.tick();
    sent = [];
    report('d01', 'downloading', { percent: 10 });
    report('d01', 'downloading', { percent: 40 });
    report('d02', 'downloaded');
    feed.tick();
    const [devices, ...more] = on('devices');
    assert.strictEqual(more.length, 0, 'one devices message');
    assert.deepStrictEqual(devices.data.rows.map((r) => [r[0], r[2], r[3], r[5]]), [['d01', 'downloading', 40, 'app 2.0.0'], ['d02', 'downloaded', 100, 'app 2.0.0']]);
    assert.deepStrictEqual(devices.data.removed, []);
    feed.tick();
    assert.strictEqual(on('devices').length, 1, 'nothing new, nothing sent');
  });

  it('keeps a tick within its byte budget and sends the rest on later ticks, oldest first', () => {
    feed = new LiveFeed(repo, 'ota-sidebar/r1', publish, { intervalMs: 60000, listCheckMs: 60000, rowBytesPerTick: 500 });
    feed.tick();
    sent = [];
    for (let i = 0; i < 50; i++) report(`d${String(i).padStart(2, '0')}`, 'downloaded');
    feed.tick();
    const first = on('devices')[0];
    assert.ok(JSON.stringify(first.data.rows).length < 500 + 120, 'about the budget');
    assert.strictEqual(first.data.rows[0][0], 'd00');
    assert.strictEqual(first.data.pending, 50 - first.data.rows.length);
    let guard = 0;
    while (on('devices').at(-1).data.pending > 0 && guard++ < 100) feed.tick();
    const ids = on('devices').flatMap((m) => m.data.rows.map((r) => r[0]));
    assert.deepStrictEqual(ids, repo.devices.list().map((d) => d.id), 'every device once, in the order they changed');
  });

  it('sends at most four messages a second on its own, whatever the event rate', async () => {
    feed = new LiveFeed(repo, 'ota-sidebar/r1', publish, { listCheckMs: 60000 });
    const until = Date.now() + 1000;
    let n = 0;
    while (Date.now() < until) {
      report(`d${String(n % 50).padStart(2, '0')}`, 'downloading', { percent: (n % 99) + 1 });
      n++;
      await new Promise((r) => setImmediate(r));
    }
    assert.ok(n > 200, `${n} events`);
    assert.ok(on('devices').length <= 5, `${on('devices').length} device messages in a second`);
  });

  it('keeps a retained summary, resends lists only when they change, and withdraws the summary on close', async () => {
    feed = new LiveFeed(repo, 'ota-sidebar/r1', publish, { intervalMs: 60000, listCheckMs: 60000 });
    feed.tick();
    const summary = on('summary')[0];
    assert.strictEqual(summary.retain, true);
    assert.deepStrictEqual([summary.data.total, summary.data.notified + summary.data.assigned, summary.data.devices], [50, 50, 50]);
    assert.strictEqual(on('firmware').length, 1);
    await repo.devices.register({ id: 'new', dialect: 'tago' });
    feed.tick();
    assert.strictEqual(on('firmware').length, 1, 'the catalogue did not change');
    assert.strictEqual(on('summary').at(-1).data.devices, 51);
    await repo.devices.remove('new');
    feed.tick();
    assert.deepStrictEqual(on('devices').at(-1).data.removed, ['new']);
    feed.close();
    feed = undefined;
    assert.deepStrictEqual(sent.at(-1), { topic: 'ota-sidebar/r1/summary', data: null, retain: true });
    const count = sent.length;
    report('d03', 'downloaded');
    await new Promise((r) => setTimeout(r, 300));
    assert.strictEqual(sent.length, count, 'nothing after close');
  });

  it('bounds a device-supplied error text in the row', () => {
    feed = new LiveFeed(repo, 'ota-sidebar/r1', publish, { intervalMs: 60000, listCheckMs: 60000 });
    feed.tick();
    report('d04', 'failed', { error: { code: 'x', message: 'e'.repeat(100000) } });
    feed.tick();
    assert.strictEqual(on('devices').at(-1).data.rows[0][7].length, 160);
  });
});
