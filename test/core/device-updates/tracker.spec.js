'use strict';
const assert = require('assert');
const fs = require('fs');
const sinon = require('sinon');
const { OtaRepository } = require('../../../dist/core/repository');
const { RolloutTracker, policyFromSettings, backoffFor } = require('../../../dist/core/device-updates/tracker');
const { imageOf, tempDir } = require('../../support/images');

const T0 = Date.parse('2026-11-23T10:00:00Z');
const MIN = 60_000;
const SECRET = 'x'.repeat(40);

async function setup(dir, dialect = 'tencent') {
  const repo = new OtaRepository({ dir, secret: SECRET });
  const { record } = await repo.firmware.store({ image: imageOf(10_000), title: 'blink', version: '1.1.0' });
  for (const id of ['d1', 'd2']) await repo.devices.register({ id, dialect, attributes: { product: 'P1' } });
  return { repo, firmware: record };
}

describe('rollout tracker: timeouts and retries', () => {
  let dir, clock, repo, firmware, tracker, commands, events;

  beforeEach(async () => {
    dir = tempDir();
    clock = sinon.useFakeTimers({ now: T0, toFake: ['setTimeout', 'clearTimeout', 'Date'] });
    ({ repo, firmware } = await setup(dir));
    tracker = new RolloutTracker(repo);
    commands = [];
    events = [];
    repo.on('command', (c) => commands.push({ ...c, devices: [...c.devices] }));
    tracker.on('progress', (e, _r, source) => events.push({ ...e, source }));
    tracker.setPolicy('parser', { timeoutMs: 10 * MIN, retries: 2, backoffMs: MIN, backoffFactor: 2, maxBackoffMs: 60 * MIN });
    tracker.start();
  });
  afterEach(async () => {
    tracker.stop();
    clock.restore();
    await repo.flush();
    fs.rmSync(dir, { recursive: true, force: true });
  });

  it('counts the first notice and sends the assign command through the flow', () => {
    const { records, published } = tracker.assign(firmware, [repo.devices.get('d1')]);
    assert.strictEqual(published, true);
    assert.strictEqual(records[0].state, 'notified');
    assert.strictEqual(records[0].attempts, 1);
    assert.deepStrictEqual(commands.map((c) => [c.action, c.firmware.id, c.devices]), [['assign', firmware.id, ['d1']]]);
  });

  it('marks a silent device timed_out, re-notifies it with doubling backoff, and stops after the retries', () => {
    tracker.assign(firmware, [repo.devices.get('d1')]);
    clock.tick(10 * MIN - 1);
    assert.strictEqual(repo.rollout.get('d1').state, 'notified');
    clock.tick(1);
    assert.strictEqual(repo.rollout.get('d1').state, 'timed_out');
    assert.deepStrictEqual(repo.rollout.get('d1').lastError, { code: 'timeout', message: 'no progress for 10 min' });
    const { at, ...timedOut } = events.at(-1);
    assert.ok(at);
    assert.deepStrictEqual(timedOut, { device: 'd1', dialect: 'tencent', state: 'timed_out', error: { code: 'timeout', message: 'no progress for 10 min' }, source: 'timeout' });

    clock.tick(MIN); // first retry after 1 min
    assert.strictEqual(repo.rollout.get('d1').state, 'notified');
    assert.strictEqual(repo.rollout.get('d1').attempts, 2);
    assert.deepStrictEqual(commands.at(-1).action, 'renotify');
    assert.deepStrictEqual(commands.at(-1).devices, ['d1']);

    clock.tick(10 * MIN); // silent again
    assert.strictEqual(repo.rollout.get('d1').state, 'timed_out');
    clock.tick(2 * MIN - 1); // second retry waits twice as long
    assert.strictEqual(repo.rollout.get('d1').attempts, 2);
    clock.tick(1);
    assert.strictEqual(repo.rollout.get('d1').attempts, 3);

    clock.tick(10 * MIN);
    clock.tick(24 * 60 * MIN); // retries used up: stays timed out
    assert.strictEqual(repo.rollout.get('d1').state, 'timed_out');
    assert.strictEqual(repo.rollout.get('d1').attempts, 3);
    assert.deepStrictEqual(commands.map((c) => c.action), ['assign', 'renotify', 'renotify']);
  });

  it('progress restarts the timeout clock', () => {
    tracker.assign(firmware, [repo.devices.get('d1')]);
    clock.tick(9 * MIN);
    tracker.record({ device: 'd1', dialect: 'tencent', state: 'downloading', percent: 10, at: new Date().toISOString() });
    clock.tick(9 * MIN);
    tracker.record({ device: 'd1', dialect: 'tencent', state: 'downloading', percent: 60, at: new Date().toISOString() });
    clock.tick(9 * MIN);
    assert.strictEqual(repo.rollout.get('d1').state, 'downloading');
    clock.tick(MIN);
    assert.strictEqual(repo.rollout.get('d1').state, 'timed_out');
  });

  it('re-notifies a device that reported a failure', () => {
    tracker.assign(firmware, [repo.devices.get('d1'), repo.devices.get('d2')]);
    tracker.record({ device: 'd1', dialect: 'tencent', state: 'failed', error: { code: -4, message: 'MD5 mismatch' }, at: new Date().toISOString() });
    assert.strictEqual(repo.rollout.get('d1').state, 'failed');
    clock.tick(MIN);
    assert.strictEqual(repo.rollout.get('d1').state, 'notified');
    assert.deepStrictEqual(repo.rollout.get('d1').lastError, { code: -4, message: 'MD5 mismatch' });
    assert.deepStrictEqual(commands.at(-1), { action: 'renotify', firmware, devices: ['d1'] });
  });

  it('retries 0 turns retries off; timeout 0 turns timeouts off', () => {
    tracker.setPolicy('parser', policyFromSettings({ timeout: 600, retries: 0, backoff: 60 }));
    tracker.assign(firmware, [repo.devices.get('d1')]);
    clock.tick(11 * MIN);
    assert.strictEqual(repo.rollout.get('d1').state, 'timed_out');
    clock.tick(24 * 60 * MIN);
    assert.strictEqual(repo.rollout.get('d1').state, 'timed_out');
    assert.deepStrictEqual(commands.map((c) => c.action), ['assign']);

    tracker.setPolicy('parser', policyFromSettings({ timeout: 0, retries: 3 }));
    tracker.assign(firmware, [repo.devices.get('d2')]);
    clock.tick(7 * 24 * 60 * MIN);
    assert.strictEqual(repo.rollout.get('d2').state, 'notified');
  });

  it('sends nothing and counts no attempt while no ota-assign node listens', () => {
    repo.removeAllListeners('command');
    const { records, published } = tracker.assign(firmware, [repo.devices.get('d1')]);
    assert.strictEqual(published, false);
    assert.strictEqual(records[0].state, 'assigned');
    assert.strictEqual(records[0].attempts, 0);
    clock.tick(60 * MIN);
    assert.strictEqual(repo.rollout.get('d1').state, 'assigned');
  });

  it('has no timer work without a policy (no progress-parser deployed)', () => {
    tracker.removePolicy('parser');
    tracker.assign(firmware, [repo.devices.get('d1')]);
    clock.tick(24 * 60 * MIN);
    assert.strictEqual(repo.rollout.get('d1').state, 'notified');
  });

  it('backoff doubles up to its cap', () => {
    const p = { timeoutMs: 0, retries: 9, backoffMs: 1000, backoffFactor: 2, maxBackoffMs: 5000 };
    assert.deepStrictEqual([1, 2, 3, 4, 5].map((n) => backoffFor(p, n)), [1000, 2000, 4000, 5000, 5000]);
  });
});

describe('rollout tracker: lifecycle, downloads, summary', () => {
  let dir, repo, firmware, tracker, commands;
  beforeEach(async () => {
    dir = tempDir();
    ({ repo, firmware } = await setup(dir, 'sming'));
    await repo.devices.register({ id: 'b1', dialect: 'biotz', attributes: { customer: 'c1' } });
    await repo.devices.register({ id: 't1', dialect: 'tencent', attributes: { product: 'P1' } });
    tracker = new RolloutTracker(repo);
    commands = [];
    repo.on('command', (c) => commands.push(c));
    tracker.start();
  });
  afterEach(async () => {
    tracker.stop();
    await repo.flush();
    fs.rmSync(dir, { recursive: true, force: true });
  });

  it('clears the retained notice once a Sming device runs the target version, and only then', () => {
    tracker.assign(firmware, [repo.devices.get('d1')]);
    repo.rollout.setRetained('d1', 'a/x/u/1.1'); // as ota-assign records it when the notice goes out
    tracker.record({ device: 'd1', dialect: 'sming', version: '1.0.0', state: 'notified', at: new Date().toISOString() });
    assert.deepStrictEqual(commands.map((c) => c.action), ['assign']);
    const r = tracker.record({ device: 'd1', dialect: 'sming', version: '1.1.0', state: 'notified', at: new Date().toISOString() });
    assert.strictEqual(r.event.state, 'updated');
    assert.deepStrictEqual(commands.at(-1), { action: 'clear', firmware, devices: ['d1'] });
    tracker.record({ device: 'd1', dialect: 'sming', version: '1.1.0', state: 'updated', at: new Date().toISOString() });
    assert.strictEqual(commands.filter((c) => c.action === 'clear').length, 1);
  });

  it('does not clear for dialects whose notice is not retained', () => {
    tracker.assign(firmware, [repo.devices.get('t1')]);
    tracker.record({ device: 't1', dialect: 'tencent', state: 'updated', version: '1.1.0', at: new Date().toISOString() });
    assert.deepStrictEqual(commands.map((c) => c.action), ['assign']);
  });

  it('turns download route events into downloading and downloaded, for the assigned firmware only', () => {
    tracker.assign(firmware, [repo.devices.get('b1')]);
    const ev = (o) => ({ device: 'b1', firmware: firmware.id, start: 0, end: 0, size: 10_000, complete: false, aborted: false, ...o });
    repo.emit('download', ev({}));
    assert.strictEqual(repo.rollout.get('b1').state, 'downloading');
    assert.strictEqual(repo.rollout.get('b1').percent, 0);
    repo.emit('download', ev({ end: 4_999, aborted: true }));
    assert.strictEqual(repo.rollout.get('b1').percent, 50);
    repo.emit('download', ev({ start: 5_000, end: 5_000 }));
    repo.emit('download', ev({ start: 5_000, end: 9_999, complete: true }));
    assert.strictEqual(repo.rollout.get('b1').state, 'downloaded');
    assert.strictEqual(repo.rollout.get('b1').percent, 100);
    repo.emit('download', ev({ firmware: 'someotherfirmwar', end: 9_999, complete: true }));
    repo.emit('download', ev({ device: 'nobody' }));
    assert.strictEqual(repo.rollout.get('nobody'), undefined);
  });

  it('emits a summary only when the counts change', () => {
    const summaries = [];
    tracker.on('summary', (s) => summaries.push(s));
    tracker.assign(firmware, [repo.devices.get('d1'), repo.devices.get('d2')]);
    assert.strictEqual(summaries.at(-1).notified, 2);
    assert.strictEqual(summaries.at(-1).total, 2);
    const n = summaries.length;
    tracker.record({ device: 'd1', dialect: 'sming', state: 'downloading', percent: 5, at: new Date().toISOString() });
    tracker.record({ device: 'd1', dialect: 'sming', state: 'downloading', percent: 6, at: new Date().toISOString() });
    assert.strictEqual(summaries.length, n + 1);
    tracker.record({ device: 'd2', dialect: 'sming', state: 'updated', version: '1.1.0', at: new Date().toISOString() });
    assert.deepStrictEqual([summaries.at(-1).downloading, summaries.at(-1).updated, summaries.at(-1).percentDone], [1, 1, 50]);
  });

  it('unassigns and asks the flow to withdraw the notices', () => {
    tracker.assign(firmware, [repo.devices.get('d1'), repo.devices.get('d2')]);
    tracker.unassign(['d1', 'd2', 'unknown']);
    assert.deepStrictEqual(commands.at(-1), { action: 'unassign', firmware, devices: ['d1', 'd2'] });
    assert.strictEqual(repo.rollout.get('d1').state, 'idle');
    assert.strictEqual(repo.rollout.summary().total, 0);
    assert.strictEqual(repo.rollout.isAssigned(firmware.id), false);
  });
});

describe('rollout records survive a restart', () => {
  let dir, clock;
  beforeEach(() => {
    dir = tempDir();
    clock = sinon.useFakeTimers({ now: T0, toFake: ['setTimeout', 'clearTimeout', 'Date'] });
  });
  afterEach(() => {
    clock.restore();
    fs.rmSync(dir, { recursive: true, force: true });
  });

  it('reloads every record and summary, and fires timeouts that fell due while stopped', async () => {
    const { repo, firmware } = await setup(dir);
    const tracker = new RolloutTracker(repo);
    repo.on('command', () => {});
    tracker.setPolicy('p', policyFromSettings({ timeout: 600, retries: 1, backoff: 60 }));
    tracker.start();
    tracker.assign(firmware, [repo.devices.get('d1'), repo.devices.get('d2')]);
    tracker.record({ device: 'd1', dialect: 'tencent', state: 'downloading', percent: 40, at: new Date().toISOString() });
    tracker.record({ device: 'd2', dialect: 'tencent', state: 'failed', error: { code: -2, message: 'file does not exist' }, at: new Date().toISOString() });
    const before = repo.rollout.list();
    const summary = repo.rollout.summary();
    tracker.stop();
    await repo.flush();

    clock.tick(30 * MIN); // Node-RED is down
    const again = new OtaRepository({ dir, secret: SECRET });
    assert.deepStrictEqual(again.rollout.list(), before);
    assert.deepStrictEqual(again.rollout.summary(), summary);
    const t2 = new RolloutTracker(again);
    const commands = [];
    again.on('command', (c) => commands.push(c));
    t2.setPolicy('p', policyFromSettings({ timeout: 600, retries: 1, backoff: 60 }));
    t2.start();
    clock.tick(0);
    assert.strictEqual(again.rollout.get('d1').state, 'timed_out');
    assert.strictEqual(again.rollout.get('d2').state, 'notified'); // its retry was due
    assert.strictEqual(again.rollout.get('d2').attempts, 2);
    assert.deepStrictEqual(commands.map((c) => [c.action, c.devices]), [['renotify', ['d2']]]);
    t2.stop();
    await again.flush();
    const file = JSON.parse(fs.readFileSync(`${dir}/device-states.json`, 'utf8'));
    assert.strictEqual(file.find((s) => s.device === 'd1').state, 'timed_out');
  });
});
