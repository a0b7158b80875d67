'use strict';
// What several Node-REDs on one PostgreSQL see of each other's changes (files are one
// instance's: these hold for the shared backend only). Each change must reach the other
// instance within a second, through LISTEN/NOTIFY, without a restart.
const assert = require('assert');
const fs = require('fs');
const h = require('../../gateway/helpers');
const { makeBackends } = require('./backends');
const { imageOf } = require('../../support/images');
const { eventually } = require('../../support/eventually');
const { trackerFor } = require('../../../dist/core/device-updates/tracker');
const { ChunkService } = require('../../../dist/core/dialects/chunk-service');
const { deliveryFor } = require('../../../dist/core/chunking');
const { optionsFromSettings } = require('../../../dist/core/dialects/options');

const pg = makeBackends().find((b) => b.name === 'postgres');

describe('PostgreSQL repository: changes reach the other instances', function () {
  this.timeout(30000);
  const open = [];
  let available = true;
  before(async function () {
    available = await pg.start();
    if (!available) this.skip();
  });
  after(() => pg.stop());
  beforeEach(async function () {
    if (!available) this.skip();
    await pg.reset();
  });
  afterEach(async () => {
    for (const repo of open.splice(0)) await repo.close();
  });
  async function instance(options) {
    const repo = await pg.instance(options);
    open.push(repo);
    return repo;
  }

  it('an assignment and its progress reach another instance within a second, with the summary', async () => {
    const a = await instance();
    const b = await instance();
    const { record: fw } = await a.firmware.store({ image: imageOf(2000, 8), title: 'blink', version: '4.0.0' });
    await a.devices.register({ id: 'd1', dialect: 'thingsboard' });
    await eventually(() => b.firmware.get(fw.id) !== undefined || 'no firmware', 1000, 'firmware on b');
    a.rollout.assign('d1', 'thingsboard', fw);
    await eventually(() => b.rollout.get('d1')?.firmware === fw.id || b.rollout.get('d1') || 'none', 1000, 'assignment on b');
    // Progress applied where the device's report arrived (b) reaches the driver (a).
    b.rollout.apply({ device: 'd1', dialect: 'thingsboard', state: 'downloading', percent: 55, at: new Date().toISOString() });
    await eventually(() => a.rollout.get('d1').percent === 55 || a.rollout.get('d1').state, 1000, 'progress on a');
    assert.deepStrictEqual(a.rollout.summary(), b.rollout.summary());
    a.rollout.unassign('d1');
    await eventually(() => b.rollout.get('d1').state === 'idle' || b.rollout.get('d1').state, 1000, 'unassigned on b');
    assert.strictEqual(b.rollout.isAssigned(fw.id), false);
  });

  for (const first of ['the report', 'the assignment']) {
    it(`progress that reaches an instance before the assignment does is not lost (${first} written first)`, async () => {
      // A device on a fast network reports "updated" through another instance (the broker's
      // share group gave it that one) before the driver's assignment row is written or has
      // reached that instance: neither write may undo the other (state-merge.ts).
      const a = await instance();
      const b = await instance();
      const { record: fw } = await a.firmware.store({ image: imageOf(2000, 8), title: 'blink', version: '4.0.0' });
      await a.devices.register({ id: 'd1', dialect: 'thingsboard' });
      await eventually(() => b.firmware.get(fw.id) !== undefined || 'no firmware', 1000, 'firmware on b');
      a.rollout.assign('d1', 'thingsboard', fw);
      a.rollout.markNotified('d1');
      await new Promise((r) => setTimeout(r, 2));
      b.rollout.apply({ device: 'd1', dialect: 'thingsboard', state: 'updated', title: 'blink', version: '4.0.0', at: new Date().toISOString() });
      const [x, y] = first === 'the report' ? [b, a] : [a, b];
      await x.flush();
      await y.flush();
      const seen = (r) => `${r.rollout.get('d1')?.state} ${r.rollout.get('d1')?.firmware === fw.id}`;
      await eventually(() => (seen(a) === 'updated true' && seen(b) === 'updated true') || `a: ${seen(a)}, b: ${seen(b)}`, 2000, 'updated on both');
      await new Promise((r) => setTimeout(r, 300));
      assert.deepStrictEqual([seen(a), seen(b)], ['updated true', 'updated true']);
    });
  }

  it('an older report written last does not undo a newer one applied on another instance', async () => {
    // The device's reports go to whichever instance the share group picks: "verified" to a,
    // "updated" a few milliseconds later to b, whose row is written first.
    const a = await instance();
    const b = await instance();
    const { record: fw } = await a.firmware.store({ image: imageOf(2000, 8), title: 'blink', version: '4.0.0' });
    await a.devices.register({ id: 'd1', dialect: 'thingsboard' });
    await eventually(() => b.firmware.get(fw.id) !== undefined || 'no firmware', 1000, 'firmware on b');
    a.rollout.assign('d1', 'thingsboard', fw);
    a.rollout.markNotified('d1');
    await eventually(() => b.rollout.get('d1')?.state === 'notified' || 'not yet', 1000, 'notified on b');
    a.rollout.apply({ device: 'd1', dialect: 'thingsboard', state: 'verified', at: new Date().toISOString() });
    await new Promise((r) => setTimeout(r, 2));
    b.rollout.apply({ device: 'd1', dialect: 'thingsboard', state: 'updated', title: 'blink', version: '4.0.0', at: new Date().toISOString() });
    await b.flush();
    await a.flush();
    const seen = (r) => r.rollout.get('d1')?.state;
    await eventually(() => (seen(a) === 'updated' && seen(b) === 'updated') || `a: ${seen(a)}, b: ${seen(b)}`, 2000, 'updated on both');
    await new Promise((r) => setTimeout(r, 300));
    assert.deepStrictEqual([seen(a), seen(b)], ['updated', 'updated']);
  });

  it('a report heard before an assignment and written after it does not undo the assignment', async () => {
    // Seen end to end: a Tasmota device's result reached b just before the driver (a) assigned
    // it; b's row came 600 ms later, without firmware, and the rollout took the device for
    // re-assigned by someone else ("its assignment was changed outside the rollout").
    const a = await instance();
    const b = await instance();
    const { record: fw } = await a.firmware.store({ image: imageOf(2000, 8), title: 'blink', version: '4.0.0' });
    await a.devices.register({ id: 'd1', dialect: 'tasmota', attributes: { topic: 'd1' } });
    await eventually(() => (b.firmware.get(fw.id) !== undefined && b.devices.get('d1') !== undefined) || 'not yet', 1000, 'firmware and device on b');
    b.rollout.apply({ device: 'd1', dialect: 'tasmota', state: 'downloading', at: new Date(Date.now() - 50).toISOString() });
    a.rollout.assign('d1', 'tasmota', fw);
    a.rollout.markNotified('d1');
    await a.flush();
    await b.flush();
    const seen = (r) => `${r.rollout.get('d1')?.state} ${r.rollout.get('d1')?.firmware === fw.id}`;
    await eventually(() => (seen(a) === 'notified true' && seen(b) === 'notified true') || `a: ${seen(a)}, b: ${seen(b)}`, 2000, 'the assignment on both');
  });

  for (const first of ['the old', 'the new']) {
    it(`a write under a device's previous assignment does not undo its new one (${first} written first)`, async () => {
      // b still holds the device's previous assignment (blink 4.0.0, downloading) when a assigns
      // 5.0.0 and b records something under the old one before it hears of the new.
      const a = await instance();
      const b = await instance();
      const { record: v4 } = await a.firmware.store({ image: imageOf(2000, 8), title: 'blink', version: '4.0.0' });
      const { record: v5 } = await a.firmware.store({ image: imageOf(2000, 9), title: 'blink', version: '5.0.0' });
      await a.devices.register({ id: 'd1', dialect: 'thingsboard' });
      a.rollout.assign('d1', 'thingsboard', v4);
      a.rollout.markNotified('d1');
      await a.flush();
      await eventually(() => (b.rollout.get('d1')?.firmware === v4.id && b.firmware.get(v5.id) !== undefined) || 'not yet', 2000, 'v4 on b');
      await new Promise((r) => setTimeout(r, 2));
      a.rollout.assign('d1', 'thingsboard', v5);
      a.rollout.markNotified('d1');
      await new Promise((r) => setTimeout(r, 2));
      b.rollout.apply({ device: 'd1', dialect: 'thingsboard', state: 'downloading', percent: 40, at: new Date().toISOString() });
      const [x, y] = first === 'the old' ? [b, a] : [a, b];
      await x.flush();
      await y.flush();
      const seen = (r) => `${r.rollout.get('d1')?.state} ${r.rollout.get('d1')?.target?.version}`;
      await eventually(() => (seen(a) === 'notified 5.0.0' && seen(b) === 'notified 5.0.0') || `a: ${seen(a)}, b: ${seen(b)}`, 2000, 'the new assignment on both');
    });
  }

  it("a device's first chunk request, reaching an instance before its new assignment does, gets the new image", async () => {
    // Seen end to end: a device updated to 4.0.0 is assigned 5.0.0 on a; its first chunk request
    // reaches b before a's notification, and b answered from 4.0.0 (ThingsBoard and TagoIO
    // requests name no firmware; TagoIO carries no checksum: the device installed a mix).
    const a = await instance();
    const b = await instance();
    const v4image = imageOf(4096, 8);
    const v5image = imageOf(4096, 9);
    const { record: v4 } = await a.firmware.store({ image: v4image, title: 'blink', version: '4.0.0' });
    const { record: v5 } = await a.firmware.store({ image: v5image, title: 'blink', version: '5.0.0' });
    await a.devices.register({ id: 'd1', dialect: 'thingsboard' });
    a.rollout.assign('d1', 'thingsboard', v4);
    a.rollout.apply({ device: 'd1', dialect: 'thingsboard', state: 'updated', title: 'blink', version: '4.0.0', at: new Date().toISOString() });
    await a.flush();
    await eventually(() => (b.rollout.get('d1')?.state === 'updated' && b.firmware.get(v5.id) !== undefined) || 'not yet', 2000, 'v4 updated on b');
    const onB = new ChunkService(b, deliveryFor(b, (r) => b.firmware.read(r)), { dialects: ['thingsboard'], options: optionsFromSettings({ prefix: 'ota/{device}/' }) });
    // Another instance's assignment of 5.0.0, in the database; its notification not yet at b.
    const at = new Date().toISOString();
    const row = { ...b.rollout.get('d1'), firmware: v5.id, target: { title: 'blink', version: '5.0.0' }, state: 'notified', attempts: 1, assignedAt: at, notifiedAt: at, stateSince: at };
    const { Client } = require('pg');
    const raw = new Client({ connectionString: pg.url });
    await raw.connect();
    try {
      await raw.query("UPDATE ota_device_states SET firmware = $2, state = 'notified', doc = $1 WHERE device = 'd1'", [row, v5.id]);
    } finally {
      await raw.end();
    }
    assert.strictEqual(b.rollout.get('d1').firmware, v4.id, 'b has not heard of it');
    // The device had its notice and asks, through b.
    const result = await onB.handle('ota/d1/v2/fw/request/7/chunk/0', '1024');
    assert.deepStrictEqual(result.replies[0].payload, v5image.subarray(0, 1024));
  });

  it('reads the database at most once a second for a device that asks for chunks with nothing assigned', async () => {
    // A registered device (or a stolen token) asking for chunks again and again must not turn
    // each request into a database read.
    const b = await instance();
    await b.devices.register({ id: 'd1', dialect: 'thingsboard' });
    let reads = 0;
    const refresh = b.refreshState.bind(b);
    b.refreshState = (device) => {
      reads += 1;
      return refresh(device);
    };
    const onB = new ChunkService(b, deliveryFor(b, (r) => b.firmware.read(r)), { dialects: ['thingsboard'], options: optionsFromSettings({ prefix: 'ota/{device}/' }) });
    for (let i = 0; i < 50; i++) {
      const result = await onB.handle(`ota/d1/v2/fw/request/${i}/chunk/0`, '1024');
      assert.strictEqual(result.error?.code, 'not_assigned');
    }
    assert.strictEqual(reads, 1);
  });

  it('an instance busy writing a device\'s reports still takes its new assignment from another', async () => {
    // Seen end to end: b kept recording a Tencent device's reports (its own unwritten state won
    // over the row) under the previous assignment for 30 s, and its ota-assign sent the device
    // the previous image again each time the device reported the new version.
    const a = await instance();
    const b = await instance();
    const { record: v4 } = await a.firmware.store({ image: imageOf(2000, 8), title: 'blink', version: '4.0.0' });
    const { record: v5 } = await a.firmware.store({ image: imageOf(2000, 9), title: 'blink', version: '5.0.0' });
    await a.devices.register({ id: 'd1', dialect: 'tencent', attributes: { product: 'P1' } });
    a.rollout.assign('d1', 'tencent', v4);
    a.rollout.markNotified('d1');
    await a.flush();
    await eventually(() => (b.rollout.get('d1')?.firmware === v4.id && b.firmware.get(v5.id) !== undefined) || 'not yet', 2000, 'v4 on b');
    let percent = 0;
    const reports = setInterval(() => b.rollout.apply({ device: 'd1', dialect: 'tencent', state: 'downloading', percent: ++percent % 100, at: new Date().toISOString() }), 4);
    try {
      await new Promise((r) => setTimeout(r, 100));
      a.on('command', () => undefined);
      trackerFor(a).assign(v5, [a.devices.get('d1')]);
      await eventually(() => b.rollout.get('d1').firmware === v5.id || `b: ${b.rollout.get('d1').firmware}`, 2000, 'the new assignment on b while its reports go on');
    } finally {
      clearInterval(reports);
    }
  });

  it('two instances writing the same devices at once, in opposite orders, never deadlock', async () => {
    // Seen end to end under load: a batch of one instance and a batch of another each held a row
    // the other wanted; PostgreSQL killed one ("deadlock detected") and its states came late.
    const a = await instance();
    const b = await instance();
    const errors = [];
    for (const r of [a, b]) r.on('storageError', (err) => errors.push(err.message));
    const ids = Array.from({ length: 150 }, (_, i) => `dev-${String(i).padStart(3, '0')}`);
    for (const id of ids) await a.devices.register({ id, dialect: 'thingsboard' });
    const { record: fw } = await a.firmware.store({ image: imageOf(2000, 8), title: 'blink', version: '4.0.0' });
    for (const id of ids) a.rollout.assign(id, 'thingsboard', fw);
    await a.flush();
    await eventually(() => ids.every((id) => b.rollout.get(id)?.firmware === fw.id) || 'not yet', 3000, 'assignments on b');
    for (let round = 1; round <= 15; round++) {
      const at = new Date().toISOString();
      for (const id of ids) a.rollout.apply({ device: id, dialect: 'thingsboard', state: 'downloading', percent: round, at });
      for (const id of [...ids].reverse()) b.rollout.apply({ device: id, dialect: 'thingsboard', state: 'downloading', percent: round, at });
      await Promise.all([a.flush(), b.flush()]);
    }
    assert.deepStrictEqual(errors, []);
    await eventually(() => ids.every((id) => a.rollout.get(id).percent === 15 && b.rollout.get(id).percent === 15) || 'not yet', 3000, 'the last round on both');
  });

  it('a download served by an instance that has not yet heard of the notice still counts', async () => {
    // A Biotz device fetches its image through the balancer from b a few milliseconds after the
    // driver (a) sent the notice, before a's row has reached b.
    const a = await instance();
    const b = await instance();
    trackerFor(b).start();
    const { record: fw } = await a.firmware.store({ image: imageOf(2000, 8), title: 'blink', version: '4.0.0' });
    await a.devices.register({ id: 'd1', dialect: 'biotz', attributes: { customer: 'c1' } });
    await eventually(() => (b.firmware.get(fw.id) !== undefined && b.devices.get('d1') !== undefined) || 'not yet', 1000, 'firmware and device on b');
    a.rollout.assign('d1', 'biotz', fw);
    a.rollout.markNotified('d1');
    b.emit('download', { device: 'd1', firmware: fw.id, start: 0, end: fw.size - 1, size: fw.size, complete: true, aborted: false });
    const seen = (r) => `${r.rollout.get('d1')?.state} ${r.rollout.get('d1')?.firmware === fw.id}`;
    await eventually(() => (seen(a) === 'downloaded true' && seen(b) === 'downloaded true') || `a: ${seen(a)}, b: ${seen(b)}`, 3000, 'downloaded on both');
    trackerFor(b).stop();
  });

  it('serves an image stored on another instance from the database, and fetches a damaged cached copy again', async () => {
    const a = await instance();
    const b = await instance();
    const image = imageOf(300000, 9);
    const { record } = await a.firmware.store({ image, title: 'big', version: '1.0.0' });
    await eventually(() => b.firmware.get(record.id) !== undefined || 'not yet', 1000, 'record on b');
    assert.ok((await b.firmware.read(record)).equals(image));
    // The cached copy damaged on disk: a fresh process on the same cache notices and refetches.
    const cached = b.firmware.blobPath(record);
    const bad = Buffer.from(image);
    bad[1000] ^= 0xff;
    fs.writeFileSync(cached, bad);
    const c = await instance({ storage: { kind: 'postgres', connectionString: pg.url, cacheDir: b.blobs.cacheDir } });
    assert.ok((await c.firmware.read(record)).equals(image));
    assert.ok(fs.readFileSync(cached).equals(image), 'the cache holds the right bytes again');
  });

  it('a firmware deleted on one instance is gone on the other', async () => {
    const a = await instance();
    const b = await instance();
    const { record } = await a.firmware.store({ image: imageOf(500, 10), title: 'x', version: '1.0.0' });
    await eventually(() => b.firmware.get(record.id) !== undefined || 'not yet', 1000, 'record on b');
    await a.deleteFirmware(record.id);
    await eventually(() => b.firmware.get(record.id) === undefined || 'still there', 1000, 'gone on b');
  });

  it('exactly one instance drives; the other takes over at once when the driver shuts down cleanly', async () => {
    const a = await instance();
    await eventually(() => a.isDriver || 'not yet', 3000, 'a drives');
    const b = await instance();
    await h.sleep(600);
    assert.strictEqual(b.isDriver, false, 'two drivers');
    // The other instance may look at rollouts, not change them: the driver alone writes.
    const { rolloutsFor } = require('../../../dist/core/rollouts/service');
    assert.deepStrictEqual(rolloutsFor(b).list(), []);
    await assert.rejects(rolloutsFor(b).create({ firmware: 'none' }), /not_driver|does not drive|unknown firmware/);
    open.splice(open.indexOf(a), 1);
    await a.close();
    await eventually(() => b.isDriver || 'not yet', 2000, 'b takes over');
  });

  it('a rollout paused on the driver shows paused on the other instances within a second; they may not change it', async () => {
    const { rolloutsFor } = require('../../../dist/core/rollouts/service');
    const { driveRollouts } = require('../../../dist/core/storage/driving');
    const a = await instance();
    await eventually(() => a.isDriver || 'not yet', 3000, 'a drives');
    const b = await instance();
    const drives = [driveRollouts(a, (e) => assert.fail(e)), driveRollouts(b, (e) => assert.fail(e))];
    try {
      drives.forEach((d) => d.wanted());
      const { record: fw } = await a.firmware.store({ image: imageOf(100, 12), title: 'r', version: '1.0.0' });
      for (let i = 0; i < 5; i++) await a.devices.register({ id: `p${i}`, dialect: 'thingsboard', tags: 'fleet' });
      const r = await rolloutsFor(a).create({ firmware: fw.id, targets: { tag: 'fleet' }, plan: { groups: [{}] } });
      await eventually(() => rolloutsFor(b).list()[0]?.state === 'draft' || rolloutsFor(b).list(), 2000, 'draft on b');
      const verb = (svc, action) => svc.act(r.id, action);
      await verb(rolloutsFor(a), 'start');
      await verb(rolloutsFor(a), 'pause');
      await eventually(() => rolloutsFor(b).list()[0]?.state === 'paused' || rolloutsFor(b).list()[0]?.state, 1500, 'paused on b');
      await assert.rejects(async () => verb(rolloutsFor(b), 'resume'), /does not drive/);
    } finally {
      for (const d of drives) await d.stop();
    }
  });

  it('a gateway on another instance drops a device whose token was rotated or which was deleted there', async function () {
    const broker = await h.startAedes();
    const a = await instance();
    const b = await instance();
    await a.devices.register({ id: 'tb-1', dialect: 'thingsboard', token: 'OLD' });
    await a.devices.register({ id: 'tb-2', dialect: 'thingsboard', token: 'KEEP' });
    await eventually(() => b.devices.list().length === 2 || b.devices.list().length, 1000, 'devices on b');
    const gateway = await h.startGateway(b, broker.url);
    const clients = [];
    try {
      const old = await h.connect(gateway.url, { username: 'OLD', clientId: 'c-old' });
      const keep = await h.connect(gateway.url, { username: 'KEEP', clientId: 'c-keep' });
      clients.push(old, keep);
      const started = Date.now();
      const closed = new Promise((resolve) => old.once('close', resolve));
      await a.devices.register({ id: 'tb-1', dialect: 'thingsboard', token: 'NEW' });
      await closed;
      assert.ok(Date.now() - started < 1000, `closed after ${Date.now() - started} ms`);
      assert.ok(keep.connected);
      await assert.rejects(h.connect(gateway.url, { username: 'OLD', clientId: 'c-old-again', reconnectPeriod: 0 }));
      const keepClosed = new Promise((resolve) => keep.once('close', resolve));
      await a.devices.remove('tb-2');
      await keepClosed;
    } finally {
      await h.endAll(clients);
      await gateway.close();
      await broker.close();
    }
  });

  it('two command-line gateways (behind a load balancer) read one device list and drop a device deleted on Node-RED', async function () {
    const broker = await h.startAedes();
    const a = await instance();
    await a.devices.register({ id: 'tb-7', dialect: 'thingsboard', token: 'T7' });
    const env = { OTA_POSTGRES_URL: pg.url };
    const gateways = [await h.runCli(['--listen', '127.0.0.1:0', '--upstream', broker.url, '--quiet'], env), await h.runCli(['--listen', '127.0.0.1:0', '--upstream', broker.url, '--quiet'], env)];
    const clients = [];
    try {
      for (const g of gateways) clients.push(await h.connect(g.url, { username: 'T7', clientId: `c-${g.port}` }));
      // Registered after the gateways started: they learn it from the database.
      await a.devices.register({ id: 'tb-8', dialect: 'thingsboard', token: 'T8' });
      await h.sleep(300);
      for (const g of gateways) clients.push(await h.connect(g.url, { username: 'T8', clientId: `c8-${g.port}` }));
      const closed = clients.slice(0, 2).map((c) => new Promise((resolve) => c.once('close', resolve)));
      await a.devices.remove('tb-7');
      await Promise.all(closed);
      await assert.rejects(h.connect(gateways[1].url, { username: 'T7', clientId: 'again' }));
    } finally {
      await h.endAll(clients);
      for (const g of gateways) await g.stop();
      await broker.close();
    }
  });
});
