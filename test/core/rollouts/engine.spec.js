'use strict';
const assert = require('assert');
const sinon = require('sinon');
const { RolloutEngine } = require('../../../dist/core/rollouts/engine');
const { parsePlan } = require('../../../dist/core/rollouts/plan');
const { MemoryRolloutPersistence } = require('../../../dist/core/rollouts/persistence');

const T0 = Date.parse('2026-12-01T10:00:00Z');
const MIN = 60_000;
const FW = { id: 'fw-2', version: '2.0.0' };

/** A fleet the engine acts on: every notice, clear and revert recorded; device states set by the spec. */
class FakeFleet {
  constructor() {
    this.states = new Map();
    this.notified = [];
    this.cleared = [];
    this.reverted = [];
    this.adopted = [];
    this.engine = null;
  }
  notify(firmware, ids) {
    for (const id of ids) {
      this.notified.push(id);
      this.states.set(id, { firmware, state: 'notified' });
    }
  }
  retry(firmware, ids) { this.notify(firmware, ids); }
  clear(_f, ids) {
    this.cleared.push(...ids);
    for (const id of ids) this.states.set(id, { state: 'idle' });
  }
  revert(firmware, ids) { this.reverted.push(...ids.map((id) => `${id}:${firmware}`)); }
  adopt(firmware, ids) {
    this.adopted.push(...ids);
    for (const id of ids) this.states.set(id, { firmware, state: 'notified' });
  }
  status(id) { return this.states.get(id); }
  /** A device reports: the state changes, and the engine hears of it at once (the tracker's progress event). */
  report(id, state, error) {
    const s = this.states.get(id);
    this.states.set(id, { ...s, state, ...(error ? { error } : {}) });
    this.engine.deviceChanged(id);
  }
}

function ids(n, prefix = 'd') {
  return Array.from({ length: n }, (_, i) => `${prefix}${String(i).padStart(4, '0')}`);
}

describe('rollout engine', () => {
  let clock, fleet, store, engine, events;

  function make(random = () => 0.5) {
    engine = new RolloutEngine(fleet, store, {
      now: () => Date.now(),
      setTimeout: (fn, ms) => setTimeout(fn, ms),
      clearTimeout: (h) => clearTimeout(h),
      random,
    });
    fleet.engine = engine;
    events = [];
    engine.on('event', (e) => events.push(e));
    engine.resume();
    return engine;
  }

  function create(plan, devices = ids(300), extra = {}) {
    return engine.create({ firmware: FW, targets: { devices }, plan: parsePlan(plan), devices: devices.map((id) => ({ id, dialect: 'tencent', previous: 'fw-1' })), ...extra });
  }

  function groupOf(r, g) {
    return r.devices.filter((e) => e.group === g).map((e) => e.device);
  }

  beforeEach(() => {
    clock = sinon.useFakeTimers({ now: T0, toFake: ['setTimeout', 'clearTimeout', 'Date'] });
    fleet = new FakeFleet();
    store = new MemoryRolloutPersistence();
    make();
  });
  afterEach(() => {
    engine.stop();
    clock.restore();
  });

  it('splits 1 % / 10 % / rest and notifies only the first group on start', () => {
    const r = create({ groups: [{ percent: 1 }, { percent: 10 }, {}] });
    assert.deepStrictEqual(r.groups.map((g) => g.size), [3, 30, 267]);
    assert.strictEqual(r.state, 'draft');
    assert.deepStrictEqual(fleet.notified, []);
    engine.act(r.id, 'start');
    assert.deepStrictEqual(fleet.notified, groupOf(r, 0));
    assert.deepStrictEqual(r.groups.map((g) => g.state), ['running', 'pending', 'pending']);
  });

  it('splits into a number of equal groups, the remainder spread over the first ones', () => {
    const r = create({ groups: 3 }, ids(10));
    assert.deepStrictEqual(r.groups.map((g) => g.size), [4, 3, 3]);
  });

  it('starts the next group when a group reaches its success condition, and finishes after the last', () => {
    const r = create({ groups: [{ count: 2 }, { count: 3 }, {}] }, ids(10));
    engine.act(r.id, 'start');
    fleet.report('d0000', 'updated');
    assert.strictEqual(r.groups[1].state, 'pending');
    fleet.report('d0001', 'updated');
    assert.strictEqual(r.groups[0].state, 'succeeded');
    assert.deepStrictEqual(fleet.notified, [...groupOf(r, 0), ...groupOf(r, 1)]);
    for (const id of groupOf(r, 1)) fleet.report(id, 'updated');
    for (const id of groupOf(r, 2)) fleet.report(id, 'updated');
    assert.strictEqual(r.state, 'finished');
    assert.deepStrictEqual(events.map((e) => e.type), ['created', 'started', 'group-started', 'group-succeeded', 'group-started', 'group-succeeded', 'group-started', 'group-succeeded', 'finished']);
    assert.strictEqual(new Set(fleet.notified).size, 10);
  });

  it('pauses on the report that takes failures strictly over the error percent, never at it, and notifies no later device', () => {
    const r = create({ groups: [{ count: 10 }, { count: 30 }, {}], error: { percent: 10 } });
    engine.act(r.id, 'start');
    for (const id of groupOf(r, 0)) fleet.report(id, 'updated');
    const second = groupOf(r, 1);
    for (const id of second.slice(0, 3)) fleet.report(id, 'failed', 'flash error');
    assert.strictEqual(r.state, 'running', '3 of 30 is exactly 10 %: no pause');
    fleet.report(second[3], 'failed', 'flash error');
    assert.strictEqual(r.state, 'paused');
    assert.strictEqual(r.reason, 'threshold');
    assert.match(r.detail, /group 2: 4 of 30 failed, over 10 %/);
    assert.strictEqual(r.groups[1].state, 'failed');
    for (const id of second.slice(4)) fleet.report(id, 'updated');
    const third = new Set(groupOf(r, 2));
    assert.strictEqual(fleet.notified.filter((id) => third.has(id)).length, 0);
    const threshold = events.find((e) => e.type === 'threshold');
    assert.strictEqual(threshold.group, 1);
    assert.strictEqual(threshold.counts.failed, 4);
  });

  it('fires a count condition on one failure more than the count', () => {
    const r = create({ groups: [{ count: 10 }, {}], error: { count: 2, action: 'pause' } }, ids(20));
    engine.act(r.id, 'start');
    fleet.report('d0000', 'failed');
    fleet.report('d0001', 'timed_out');
    assert.strictEqual(r.state, 'running');
    fleet.report('d0002', 'failed');
    assert.strictEqual(r.state, 'paused');
  });

  it('waits for the minimum number finished before an error condition can fire', () => {
    const r = create({ groups: [{ count: 10 }, {}], error: { count: 0, minFinished: 3 } }, ids(20));
    engine.act(r.id, 'start');
    fleet.report('d0000', 'failed');
    fleet.report('d0001', 'failed');
    assert.strictEqual(r.state, 'running', 'two finished: under the minimum');
    fleet.report('d0002', 'updated');
    assert.strictEqual(r.state, 'paused');
  });

  it('applies a group\'s own error condition over the plan\'s', () => {
    const r = create({ groups: [{ count: 10, error: { count: 0 } }, { count: 10 }, {}], error: { percent: 50 } }, ids(30));
    assert.deepStrictEqual(r.groups.map((g) => [g.error.count, g.error.percent]), [[0, undefined], [undefined, 50], [undefined, 50]]);
    engine.act(r.id, 'start');
    fleet.report('d0000', 'failed');
    assert.strictEqual(r.state, 'paused', 'the canary group tolerates no failure');
    engine.act(r.id, 'resume');
    for (const id of groupOf(r, 0).slice(1)) fleet.report(id, 'updated');
    for (const id of groupOf(r, 1).slice(0, 5)) fleet.report(id, 'failed');
    assert.strictEqual(r.state, 'running', '5 of 10 is 50 %: not over');
    fleet.report(groupOf(r, 1)[5], 'failed');
    assert.strictEqual(r.state, 'paused');
  });

  it('counts a device unassigned outside the rollout as cancelled, an error', () => {
    const r = create({ groups: [{ count: 4 }, {}], error: { count: 0 } }, ids(8));
    engine.act(r.id, 'start');
    fleet.states.set('d0000', { state: 'idle' });
    engine.deviceChanged('d0000');
    assert.strictEqual(r.devices[0].phase, 'cancelled');
    assert.strictEqual(r.state, 'paused');
  });

  it('aborts on an abort condition: withdraws the notices not acted on and reverts those that took the image', () => {
    const r = create({ groups: [{ count: 6 }, {}], error: { count: 1, action: 'abort' }, revertOnAbort: true }, ids(12));
    engine.act(r.id, 'start');
    fleet.report('d0000', 'updated');
    fleet.report('d0001', 'downloading');
    fleet.report('d0002', 'failed');
    fleet.report('d0003', 'failed');
    assert.strictEqual(r.state, 'aborted');
    // Not acted on: withdrawn. Failed: unassigned too, so that no retry sends it again.
    assert.deepStrictEqual([...fleet.cleared].sort(), ['d0002', 'd0003', 'd0004', 'd0005']);
    assert.deepStrictEqual(r.devices.slice(2, 6).map((e) => e.phase), ['failed', 'failed', 'cancelled', 'cancelled']);
    assert.deepStrictEqual(fleet.reverted, ['d0000:fw-1']);
    assert.deepStrictEqual(events.slice(-3).map((e) => e.type), ['threshold', 'aborted', 'reverted']);
    fleet.report('d0001', 'updated');
    assert.strictEqual(fleet.notified.length, 6, 'nothing released after the abort');
  });

  it('sends at most N notices a minute', () => {
    const r = create({ rate: { perMinute: 100 } });
    engine.act(r.id, 'start');
    assert.strictEqual(fleet.notified.length, 100);
    clock.tick(MIN - 1);
    assert.strictEqual(fleet.notified.length, 100);
    clock.tick(1);
    assert.strictEqual(fleet.notified.length, 200);
  });

  it('ramps the rate up by the factor after every N devices succeeded', () => {
    const r = create({ rate: { ramp: { base: 10, factor: 2, every: 10, max: 30 } } });
    engine.act(r.id, 'start');
    assert.strictEqual(fleet.notified.length, 10);
    for (const id of fleet.notified.slice(0, 10)) fleet.report(id, 'updated');
    assert.strictEqual(fleet.notified.length, 20, 'rate 20 a minute once 10 succeeded');
    for (const id of fleet.notified.slice(10, 20)) fleet.report(id, 'updated');
    assert.strictEqual(fleet.notified.length, 30, 'rate 40 capped at 30');
    clock.tick(MIN);
    assert.strictEqual(fleet.notified.length, 60);
  });

  it('keeps at most N devices in flight at once', () => {
    const r = create({ maxConcurrent: 5 }, ids(20));
    engine.act(r.id, 'start');
    assert.strictEqual(fleet.notified.length, 5);
    fleet.report('d0001', 'downloading');
    assert.strictEqual(fleet.notified.length, 5);
    fleet.report('d0001', 'updated');
    assert.strictEqual(fleet.notified.length, 6);
    fleet.report('d0002', 'failed');
    assert.strictEqual(fleet.notified.length, 7);
    assert.strictEqual(r.state, 'running');
  });

  it('spreads notices over the jitter', () => {
    engine.stop();
    const draws = [0.1, 0.9];
    make(() => draws.shift() ?? 0);
    const r = create({ jitterMs: 10_000 }, ids(2));
    engine.act(r.id, 'start');
    assert.deepStrictEqual(fleet.notified, []);
    clock.tick(1000);
    assert.deepStrictEqual(fleet.notified, ['d0000']);
    clock.tick(8000);
    assert.deepStrictEqual(fleet.notified, ['d0000', 'd0001']);
  });

  describe('soak', () => {
    it('counts a device succeeded only after it stayed on the target version for the soak time', () => {
      const r = create({ groups: [{ count: 1 }, {}], soakMs: 10 * MIN }, ids(3));
      engine.act(r.id, 'start');
      fleet.report('d0000', 'updated');
      assert.strictEqual(r.devices[0].phase, 'soaking');
      assert.strictEqual(r.groups[1].state, 'pending');
      clock.tick(10 * MIN - 1);
      assert.strictEqual(r.devices[0].phase, 'soaking');
      clock.tick(1);
      assert.strictEqual(r.devices[0].phase, 'succeeded');
      assert.strictEqual(r.groups[1].state, 'running');
    });

    it('fails a device that reports another version or a failure during the soak', () => {
      const r = create({ soakMs: MIN }, ids(2));
      engine.act(r.id, 'start');
      fleet.report('d0000', 'updated');
      fleet.report('d0000', 'notified'); // a version report other than the target: the store leaves updated
      assert.strictEqual(r.devices[0].phase, 'failed');
      assert.match(r.devices[0].reason, /left the target version/);
      fleet.report('d0001', 'updated');
      fleet.report('d0001', 'failed', 'watchdog reset');
      assert.strictEqual(r.devices[1].reason, 'watchdog reset');
    });

    it('fails a device the gateway saw disconnect and not come back before the soak ended', () => {
      const r = create({ soakMs: MIN }, ids(2));
      engine.act(r.id, 'start');
      fleet.report('d0000', 'updated');
      fleet.report('d0001', 'updated');
      engine.presence('d0000', 'disconnect');
      engine.presence('d0001', 'disconnect');
      engine.presence('d0001', 'connect');
      clock.tick(MIN);
      assert.deepStrictEqual(r.devices.map((e) => e.phase), ['failed', 'succeeded']);
      assert.strictEqual(r.devices[0].reason, 'went silent during the soak');
    });
  });

  describe('schedule', () => {
    it('waits for a group start time, paused for the schedule, and goes on by itself', () => {
      const r = create({ groups: [{ count: 2 }, { count: 2, startAt: new Date(T0 + 60 * MIN).toISOString() }] }, ids(4));
      engine.act(r.id, 'start');
      fleet.report('d0000', 'updated');
      fleet.report('d0001', 'updated');
      assert.strictEqual(r.state, 'paused');
      assert.strictEqual(r.reason, 'schedule');
      assert.strictEqual(fleet.notified.length, 2);
      clock.tick(60 * MIN);
      assert.strictEqual(r.state, 'running');
      assert.strictEqual(fleet.notified.length, 4);
    });

    it('is scheduled until the first group\'s start time', () => {
      const r = create({ groups: [{ count: 2, startAt: new Date(T0 + 5 * MIN).toISOString() }, {}] }, ids(4));
      engine.act(r.id, 'start');
      assert.strictEqual(r.state, 'scheduled');
      assert.deepStrictEqual(fleet.notified, []);
      clock.tick(5 * MIN);
      assert.strictEqual(r.state, 'running');
      assert.deepStrictEqual(fleet.notified, ['d0000', 'd0001']);
    });
  });

  describe('controls', () => {
    it('pauses and resumes by hand: nothing released while paused', () => {
      const r = create({ rate: { perMinute: 1 } }, ids(3));
      engine.act(r.id, 'start');
      engine.act(r.id, 'pause');
      assert.strictEqual(r.reason, 'manual');
      clock.tick(5 * MIN);
      assert.strictEqual(fleet.notified.length, 1);
      engine.act(r.id, 'resume');
      assert.strictEqual(fleet.notified.length, 2);
    });

    it('refuses an action the state does not allow', () => {
      const r = create({}, ids(2));
      assert.throws(() => engine.act(r.id, 'resume'), /cannot resume a rollout that is draft/);
      engine.act(r.id, 'start');
      assert.throws(() => engine.act(r.id, 'start'), /cannot start a rollout that is running/);
    });

    it('after an error pause: retry sends the failed devices again, resume lets the next group start once the group is done', () => {
      const r = create({ groups: [{ count: 10 }, {}], error: { percent: 10 } }, ids(20));
      engine.act(r.id, 'start');
      fleet.report('d0000', 'failed');
      fleet.report('d0001', 'failed');
      assert.strictEqual(r.state, 'paused');
      engine.act(r.id, 'retry');
      assert.strictEqual(fleet.notified.filter((id) => id === 'd0000').length, 2);
      engine.act(r.id, 'resume');
      for (const id of groupOf(r, 0)) fleet.report(id, 'updated');
      assert.strictEqual(r.groups[1].state, 'running');
      for (const id of groupOf(r, 1)) fleet.report(id, 'updated');
      assert.strictEqual(r.state, 'finished');
    });

    it('retries within maxConcurrent: the failed devices wait for free slots, never more in flight than allowed', () => {
      const r = create({ groups: 1, maxConcurrent: 2 }, ids(6));
      engine.act(r.id, 'start');
      for (const id of ['d0000', 'd0001', 'd0002', 'd0003']) fleet.report(id, 'failed');
      assert.deepStrictEqual(fleet.notified, ids(6));
      engine.act(r.id, 'retry');
      assert.strictEqual(fleet.notified.length, 6, 'd0004 and d0005 hold both slots: nothing sent again yet');
      const c = () => engine.counts(r.id).total;
      assert.deepStrictEqual([c().waiting, c().released], [4, 2]);
      fleet.report('d0004', 'updated');
      assert.deepStrictEqual(fleet.notified.slice(6), ['d0000']);
      fleet.report('d0005', 'updated');
      assert.deepStrictEqual(fleet.notified.slice(6), ['d0000', 'd0001']);
      assert.strictEqual(c().released, 2);
      for (const id of ids(4)) fleet.report(id, 'updated');
      assert.strictEqual(r.state, 'finished');
      assert.strictEqual(fleet.notified.length, 10, 'each failed device sent once more');
    });

    it('pauses after a group with success action pause, and the next action starts the next group', () => {
      const r = create({ groups: [{ count: 1, success: { action: 'pause' } }, {}] }, ids(3));
      engine.act(r.id, 'start');
      fleet.report('d0000', 'updated');
      assert.strictEqual(r.state, 'paused');
      assert.strictEqual(fleet.notified.length, 1);
      engine.act(r.id, 'next');
      assert.strictEqual(r.state, 'running');
      assert.strictEqual(fleet.notified.length, 3);
    });

    it('keeps a manual pause as it is when a group then reaches a success condition that pauses', () => {
      const r = create({ groups: [{ count: 1, success: { action: 'pause' } }, {}] }, ids(3));
      engine.act(r.id, 'start');
      engine.act(r.id, 'pause');
      fleet.report('d0000', 'updated');
      assert.deepStrictEqual([r.state, r.reason, r.groups[0].state], ['paused', 'manual', 'succeeded']);
      engine.act(r.id, 'resume');
      assert.strictEqual(fleet.notified.length, 3, 'resume approves the next group');
    });

    it('refuses a device already in another rollout that is not over', () => {
      create({}, ids(2));
      assert.throws(() => create({}, ids(3)), /in another rollout/);
    });
  });

  it('refuses a plan that would split Sming devices of one app over groups (their notice is one shared retained message)', () => {
    const devices = [{ id: 's1', dialect: 'sming', app: 'lamp' }, { id: 's2', dialect: 'sming', app: 'lamp' }];
    assert.throws(
      () => engine.create({ firmware: FW, targets: { devices: ['s1', 's2'] }, plan: parsePlan({ groups: 2 }), devices }),
      (err) => err.code === 'shared_notice_split' && /a\/lamp\/u\/2\.0/.test(err.message),
    );
    const r = engine.create({ firmware: FW, targets: { devices: ['s1', 's2', 'x'] }, plan: parsePlan({ groups: [{ count: 2 }, {}] }), devices: [...devices, { id: 'x', dialect: 'tencent' }] });
    assert.strictEqual(r.groups[0].size, 2);
  });

  it('splits Sming devices over groups behind a gateway: each gets its notice only while released', () => {
    const devices = ['s1', 's2', 's3'].map((id) => ({ id, dialect: 'sming', app: 'lamp' }));
    const plan = parsePlan({ groups: [{ count: 1 }, {}], success: { action: 'pause' } });
    assert.throws(() => engine.create({ firmware: FW, targets: {}, plan, devices, gated: (id) => id !== 's3' }), /from s3 in a later group/);
    const r = engine.create({ firmware: FW, targets: {}, plan, devices, gated: () => true });
    assert.deepStrictEqual(['s1', 's2', 'x'].map((id) => engine.noticeReleased(id)), [false, false, true], 'waiting: held; outside every rollout: free');
    engine.act(r.id, 'start');
    assert.deepStrictEqual(['s1', 's2'].map((id) => engine.noticeReleased(id)), [true, false]);
    fleet.report('s1', 'updated');
    assert.strictEqual(r.state, 'paused');
    assert.deepStrictEqual(['s1', 's2', 's3'].map((id) => engine.noticeReleased(id)), [false, false, false], 'done: a second copy would be flashed again');
    engine.act(r.id, 'next');
    assert.deepStrictEqual(['s1', 's2', 's3'].map((id) => engine.noticeReleased(id)), [false, true, true]);
  });

  it('lets a Sming device that failed or timed out have its notice again (the tracker retries it), not one that took it', () => {
    const devices = ['s1', 's2', 's3', 's4'].map((id) => ({ id, dialect: 'sming', app: 'lamp' }));
    const r = engine.create({ firmware: FW, targets: {}, plan: parsePlan({}), devices, gated: () => true });
    engine.act(r.id, 'start');
    assert.deepStrictEqual(['s1', 's2', 's3'].map((id) => engine.noticeReleased(id)), [true, true, true], 'released');
    // s4 stays under way: the rollout is still running when s3 is done.
    fleet.report('s1', 'timed_out');
    fleet.report('s2', 'failed', 'flash error');
    fleet.report('s3', 'updated');
    assert.deepStrictEqual(['s1', 's2', 's3'].map((id) => engine.noticeReleased(id)), [true, true, false], 'retried: may have it; done: a second copy would be flashed again');
  });

  it('holds nothing back in an assignment (every device released at once, as before assignments were rollouts)', () => {
    // Found in CI: after a broker crash the whole fleet reconnected, Sming devices were taken for
    // updated, and the retained notice they never had was withheld: 20 Sming devices stayed idle.
    const devices = ['s1', 's2'].map((id) => ({ id, dialect: 'sming', app: 'lamp' }));
    for (const d of devices) fleet.states.set(d.id, { firmware: FW.id, state: 'notified' });
    assert.ok(engine.recordAssignment({ firmware: FW, devices }));
    fleet.report('s1', 'updated');
    assert.deepStrictEqual(['s1', 's2'].map((id) => engine.noticeReleased(id)), [true, true]);
  });

  describe('restart', () => {
    it('resumes after a crash between the release and the snapshot: no device notified twice, no group skipped', async () => {
      const r = create({ groups: [{ count: 5 }, { count: 5 }, {}], maxConcurrent: 3 }, ids(15));
      engine.act(r.id, 'start');
      await store.flush(); // snapshot with the first 3 released
      fleet.report('d0000', 'updated'); // releases d0003, journaled, not in the snapshot
      fleet.states.delete('d0003'); // ...and the crash came before the tracker recorded its notice
      engine.stop();
      make();
      const again = engine.get(r.id);
      assert.strictEqual(again.devices[3].phase, 'released');
      assert.deepStrictEqual(fleet.adopted, ['d0003'], 'recorded as notified, not sent again');
      for (const id of ids(15)) if (fleet.states.get(id)?.state === 'notified') fleet.report(id, 'updated');
      for (let i = 0; i < 5 && again.state !== 'finished'; i++) {
        for (const id of ids(15)) if (fleet.states.get(id)?.state === 'notified') fleet.report(id, 'updated');
      }
      assert.strictEqual(again.state, 'finished');
      assert.strictEqual(fleet.notified.length, 15);
      assert.strictEqual(new Set(fleet.notified).size, 15);
    });

    /** A takeover on a shared database: a new engine over the rollouts the last driver wrote. */
    function takeOver(inDoubtMs) {
      engine.stop();
      engine = new RolloutEngine(fleet, store, { now: () => Date.now(), setTimeout: (fn, ms) => setTimeout(fn, ms), clearTimeout: (h) => clearTimeout(h), random: () => 0.5 }, { inDoubtMs });
      fleet.engine = engine;
      engine.resume();
      return engine;
    }

    it('after a takeover, sends again (once) to released devices still silent 3 s later; not to those that reacted', async () => {
      // The last driver died around its notices: d0000 never had its notice, d0001 had it and
      // reports, d0002 is a Sming device (reports nothing: silence says nothing).
      const r = create({ groups: [{ count: 3 }, {}], maxConcurrent: 3 }, ids(6));
      engine.act(r.id, 'start');
      await store.flush();
      fleet.states.set('d0002', { ...fleet.states.get('d0002'), silent: true });
      fleet.notified.length = 0;
      takeOver(3000);
      clock.tick(1000);
      fleet.report('d0001', 'downloading');
      clock.tick(1999);
      assert.deepStrictEqual(fleet.notified, [], 'nothing before the 3 s');
      clock.tick(1);
      assert.deepStrictEqual(fleet.notified, ['d0000']);
      clock.tick(60_000);
      assert.deepStrictEqual(fleet.notified, ['d0000'], 'once');
    });

    it('a release that cannot be written sends nothing and pauses the rollout (reason storage), and never throws', () => {
      // The release journal on PostgreSQL: the database away, or slower than 2 s. The call came
      // from a timer or a device's report: a throw would take Node-RED down.
      const r = create({ groups: [{ count: 2 }, {}], rate: { perMinute: 2 } }, ids(6));
      engine.act(r.id, 'start');
      assert.deepStrictEqual(fleet.notified, ['d0000', 'd0001']);
      fleet.report('d0000', 'updated');
      fleet.report('d0001', 'updated');
      const released = store.released.bind(store);
      store.released = () => {
        throw new Error('the release journal write to PostgreSQL took over 2 s');
      };
      assert.doesNotThrow(() => clock.tick(MIN));
      assert.deepStrictEqual(fleet.notified, ['d0000', 'd0001'], 'nothing sent');
      assert.deepStrictEqual([r.state, r.reason], ['paused', 'storage']);
      assert.match(r.detail, /could not be written .*took over 2 s.*nothing was sent/);
      assert.ok(r.devices.filter((e) => e.group === 1).every((e) => e.phase === 'waiting'));
      store.released = released;
      engine.act(r.id, 'resume');
      clock.tick(MIN);
      assert.deepStrictEqual(fleet.notified.length, 4, 'released once resumed');
    });

    it('restarting on files (no inDoubtMs) sends nothing again: silence while Node-RED was down proves nothing', async () => {
      const r = create({ groups: [{ count: 3 }, {}], maxConcurrent: 3 }, ids(6));
      engine.act(r.id, 'start');
      await store.flush();
      fleet.notified.length = 0;
      takeOver(undefined);
      clock.tick(60_000);
      assert.deepStrictEqual(fleet.notified, []);
    });
  });
});
