'use strict';
// Sming and Biotz devices report nothing past their notice (Sming) or download (Biotz): the
// rollout tracker reads their presence at the gateway instead, and must never time them out
// into a retry loop nor clear a shared Sming image before every device on its topic has it.
const assert = require('assert');
const fs = require('fs');
const sinon = require('sinon');
const { OtaRepository } = require('../../../dist/core/repository');
const { RolloutTracker } = require('../../../dist/core/device-updates/tracker');
const { AssignService } = require('../../../dist/core/dialects/assign-service');
const { deliveryFor } = require('../../../dist/core/chunking');
const { imageOf, tempDir } = require('../../support/images');

const T0 = Date.parse('2026-11-23T10:00:00Z');
const MIN = 60_000;
const DAY = 24 * 60 * MIN;
const SMING_TOPIC = 'a/demo/u/1.1';

/** What ota-assign does with the tracker's commands, without Node-RED: the publishes it would send. */
function flowOf(repo) {
  const service = new AssignService(repo, deliveryFor(repo, (r) => repo.firmware.read(r)), { options: () => ({}) });
  const published = [];
  const commands = [];
  let pending = Promise.resolve();
  repo.on('command', (cmd) => {
    commands.push({ action: cmd.action, devices: [...cmd.devices] });
    const devices = cmd.devices.map((id) => repo.devices.get(id)).filter(Boolean);
    pending = pending.then(async () => {
      const result =
        cmd.action === 'clear' ? service.clear(devices, cmd.firmware)
          : cmd.action === 'unassign' ? service.unassign(devices, cmd.firmware)
            : await service.renotify(devices, undefined, false, cmd.firmware);
      for (const out of result.outs) published.push({ topic: out.topic, empty: out.payload.length === 0, retain: out.retain });
    });
  });
  return { published, commands, service, settle: () => pending };
}

describe('rollout tracker: devices without progress reports, through gateway presence', () => {
  let dir, clock, repo, firmware, tracker, flow, events, sessions;
  const at = () => new Date().toISOString();
  const presence = (device, event, filters) => {
    if (event === 'connect') sessions[device] = (sessions[device] ?? 0) + 1;
    repo.emit('presence', { device, dialect: repo.devices.get(device).dialect, event, ...(filters ? { filters } : {}), session: `${device}#${sessions[device]}`, at: at() });
  };
  const state = (id) => repo.rollout.get(id);

  beforeEach(async () => {
    dir = tempDir();
    clock = sinon.useFakeTimers({ now: T0, toFake: ['setTimeout', 'clearTimeout', 'Date'] });
    repo = new OtaRepository({ dir, secret: 'x'.repeat(40) });
    ({ record: firmware } = await repo.firmware.store({ image: imageOf(10_000), title: 'demo', version: '1.1.0' }));
    for (const id of ['s1', 's2']) await repo.devices.register({ id, dialect: 'sming', attributes: { app: 'demo' } });
    for (const id of ['b1', 'b2']) await repo.devices.register({ id, dialect: 'biotz', attributes: { customer: 'c1' } });
    await repo.devices.register({ id: 't1', dialect: 'tencent', attributes: { product: 'P1' } });
    tracker = new RolloutTracker(repo);
    flow = flowOf(repo);
    events = [];
    sessions = {};
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

  async function assign(ids) {
    tracker.assign(firmware, ids.map((id) => repo.devices.get(id)));
    await flow.settle();
  }

  it('Sming: a subscription reaching the notice topic is downloaded, the next connection updated, both marked inferred', async () => {
    await assign(['s1']);
    assert.deepStrictEqual(flow.published, [{ topic: SMING_TOPIC, empty: false, retain: true }]);
    assert.strictEqual(state('s1').retained, SMING_TOPIC);
    presence('s1', 'connect');
    presence('s1', 'subscribe', ['a/demo/u/1.0']); // another version line: not its notice
    assert.strictEqual(state('s1').state, 'notified');
    presence('s1', 'subscribe', ['a/demo/u/+']);
    assert.deepStrictEqual([state('s1').state, state('s1').percent, state('s1').inferred], ['downloaded', 100, true]);
    assert.deepStrictEqual(events.at(-1), { device: 's1', dialect: 'sming', state: 'downloaded', percent: 100, inferred: true, at: at(), source: 'presence' });
    presence('s1', 'disconnect');
    presence('s1', 'connect'); // restarted after switching ROMs
    assert.deepStrictEqual([state('s1').state, state('s1').inferred, state('s1').current.version], ['updated', true, '1.1.0']);
    assert.strictEqual(events.at(-1).inferred, true);
  });

  it('does not take an inferred version as proof: assigning the same firmware again sends the notice', async () => {
    await assign(['b1']);
    presence('b1', 'connect');
    repo.emit('download', { device: 'b1', firmware: firmware.id, start: 0, end: firmware.size - 1, size: firmware.size, complete: true, aborted: false });
    presence('b1', 'disconnect');
    presence('b1', 'connect');
    assert.deepStrictEqual([state('b1').state, state('b1').inferred], ['updated', true]);
    await flow.settle(); // the clear of its own notice
    const before = flow.published.length;
    await assign(['b1']);
    assert.strictEqual(state('b1').state, 'notified');
    assert.deepStrictEqual(flow.published.slice(before).map((p) => p.empty), [false], 'the notice went out again');
  });

  it('Biotz: a download heard of only after the device came back (another instance served it) is an update', async () => {
    // Several Node-REDs: the instance that served the image writes "downloaded"; its row reaches
    // this one (a gateway's) after the device already restarted and connected again.
    await assign(['b1', 'b2']);
    presence('b1', 'connect');
    presence('b2', 'connect');
    clock.tick(5000);
    const downloaded = (device, since) => ({ ...state(device), state: 'downloaded', percent: 100, stateSince: since, progressAt: since });
    const before = at();
    clock.tick(200);
    presence('b1', 'disconnect');
    presence('b1', 'connect'); // restarted into the new image
    repo.rollout.adopt('b1', downloaded('b1', before));
    assert.deepStrictEqual([state('b1').state, state('b1').inferred, state('b1').current?.version], ['updated', true, '1.1.0']);
    // b2's download ended after its connection began: the same connection, no restart seen yet.
    clock.tick(200);
    repo.rollout.adopt('b2', downloaded('b2', at()));
    assert.strictEqual(state('b2').state, 'downloaded');
    clock.tick(200);
    presence('b2', 'disconnect');
    presence('b2', 'connect');
    assert.strictEqual(state('b2').state, 'updated');
  });

  it('Sming: a device subscribed when the notice goes out gets it live: downloaded when it leaves, updated when back', async () => {
    presence('s1', 'connect');
    presence('s1', 'subscribe', ['a/demo/u/1.1']);
    await assign(['s1']);
    assert.strictEqual(state('s1').state, 'notified');
    presence('s1', 'disconnect');
    assert.strictEqual(state('s1').state, 'downloaded');
    presence('s1', 'connect');
    assert.strictEqual(state('s1').state, 'updated');
  });

  it('Sming: the shared image is cleared once every device on its topic has it, never while one (offline) still waits', async () => {
    await assign(['s1', 's2']);
    assert.strictEqual(flow.published.length, 1, 'one retained image for both devices');
    presence('s1', 'connect');
    presence('s1', 'subscribe', [SMING_TOPIC]);
    presence('s1', 'disconnect');
    presence('s1', 'connect');
    presence('s1', 'subscribe', [SMING_TOPIC]);
    await flow.settle();
    assert.strictEqual(state('s1').state, 'updated');
    assert.deepStrictEqual(flow.commands.map((c) => c.action), ['assign'], 's2 has not taken the image: it stays');
    clock.tick(7 * DAY);
    assert.strictEqual(state('s2').state, 'notified', 'no timeout for a device that cannot say anything');

    presence('s2', 'connect'); // s2 comes online at last
    presence('s2', 'subscribe', [SMING_TOPIC]);
    await flow.settle();
    assert.strictEqual(state('s2').state, 'downloaded');
    assert.deepStrictEqual(flow.commands.at(-1), { action: 'clear', devices: ['s1', 's2'] });
    assert.deepStrictEqual(flow.published.slice(1), [{ topic: SMING_TOPIC, empty: true, retain: true }], 'one empty retained publish');
    assert.strictEqual(state('s1').retained, undefined);
    presence('s2', 'disconnect');
    presence('s2', 'connect');
    await flow.settle();
    assert.strictEqual(state('s2').state, 'updated');
    assert.strictEqual(flow.commands.filter((c) => c.action === 'clear').length, 1);
  });

  it('Sming: never times out nor re-sends the image, however long the device stays silent', async () => {
    await assign(['s1']);
    clock.tick(3 * DAY);
    await flow.settle();
    assert.strictEqual(state('s1').state, 'notified');
    presence('s1', 'connect');
    presence('s1', 'subscribe', [SMING_TOPIC]);
    clock.tick(3 * DAY); // flashed, never came back
    await flow.settle();
    assert.strictEqual(state('s1').state, 'downloaded');
    assert.deepStrictEqual(flow.commands.map((c) => c.action), ['assign', 'clear']);
    assert.strictEqual(flow.published.filter((p) => !p.empty).length, 1, 'the image went out once');
    assert.strictEqual(state('s1').attempts, 1);
  });

  it('Sming: unassigning one device keeps the image on the topic while another still waits for it', async () => {
    await assign(['s1', 's2']);
    tracker.unassign(['s1']);
    await flow.settle();
    assert.deepStrictEqual(flow.published.filter((p) => p.empty), []);
    tracker.unassign(['s2']);
    await flow.settle();
    assert.deepStrictEqual(flow.published.filter((p) => p.empty), [{ topic: SMING_TOPIC, empty: true, retain: true }]);
  });

  it('Biotz: a complete download, then a new connection, is updated (inferred), and its own notice is cleared', async () => {
    await assign(['b1']);
    assert.strictEqual(state('b1').retained, 'biotz/1/0/c1/b1/subscribe/firmware/update');
    presence('b1', 'connect');
    presence('b1', 'subscribe', ['biotz/1/0/c1/b1/subscribe/firmware/update']);
    assert.strictEqual(state('b1').state, 'notified', 'the notice is only a URL: holding it is no download');
    repo.emit('download', { device: 'b1', firmware: firmware.id, start: 0, end: 9_999, size: 10_000, complete: true, aborted: false });
    assert.strictEqual(state('b1').state, 'downloaded');
    assert.strictEqual(state('b1').inferred, undefined, 'the download itself was seen');
    clock.tick(DAY);
    assert.strictEqual(state('b1').state, 'downloaded', 'no timeout: the device cannot leave it by a signal');
    presence('b1', 'disconnect');
    presence('b1', 'connect');
    await flow.settle();
    assert.deepStrictEqual([state('b1').state, state('b1').inferred], ['updated', true]);
    assert.deepStrictEqual(flow.commands.at(-1), { action: 'clear', devices: ['b1'] });
    assert.deepStrictEqual(flow.published.at(-1), { topic: 'biotz/1/0/c1/b1/subscribe/firmware/update', empty: true, retain: true });
  });

  it('Biotz: a notice nobody fetches still times out and is sent again (the fetch is a signal)', async () => {
    await assign(['b2']);
    clock.tick(10 * MIN);
    assert.strictEqual(state('b2').state, 'timed_out');
    clock.tick(MIN);
    await flow.settle();
    assert.deepStrictEqual(flow.commands.map((c) => c.action), ['assign', 'renotify']);
  });

  it('ignores a late disconnect of an older connection, and presence of devices that report progress', async () => {
    await assign(['s1', 't1']);
    presence('s1', 'connect');
    const old = `s1#${sessions.s1}`;
    presence('s1', 'subscribe', ['a/demo/u/1.0']);
    presence('s1', 'connect'); // back before the old connection's close was seen
    presence('s1', 'subscribe', [SMING_TOPIC]);
    repo.emit('presence', { device: 's1', dialect: 'sming', event: 'disconnect', session: old, at: at() });
    assert.strictEqual(state('s1').state, 'downloaded');
    presence('s1', 'connect');
    assert.strictEqual(state('s1').state, 'updated');
    presence('t1', 'connect');
    presence('t1', 'subscribe', ['$ota/update/P1/t1']);
    presence('t1', 'disconnect');
    presence('t1', 'connect');
    assert.strictEqual(state('t1').state, 'notified');
    repo.emit('presence', null);
    repo.emit('presence', { device: 42, event: 'connect' });
  });
});
