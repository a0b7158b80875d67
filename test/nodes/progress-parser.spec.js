'use strict';
const assert = require('assert');
const fs = require('fs');
const http = require('http');
const { helper, nodes, captured, captureHttpNode } = require('../support/red');
const { imageOf, tempDir } = require('../support/images');
const progressParser = require('../../dist/nodes/progress-parser.js');

// The dialect modules are another engineer's part; the uplink specs run once they are merged.
let dialectsAvailable = false;
try {
  dialectsAvailable = typeof require('../../dist/core/dialects/index').dialectFor === 'function';
} catch {
  dialectsAvailable = false;
}

function flow(dir, parser = {}) {
  return [
    { id: 'f1', type: 'tab' },
    { id: 'repo', type: 'ota-repository', storageDir: dir },
    { id: 'pp', z: 'f1', type: 'progress-parser', repository: 'repo', dialect: 'auto', timeout: 600, retries: 2, backoff: 60, wires: [['events'], ['summary']], ...parser },
    { id: 'events', z: 'f1', type: 'helper' },
    { id: 'summary', z: 'f1', type: 'helper' },
    { id: 'c1', z: 'f1', type: 'catch', scope: null, uncaught: false, wires: [['errors']] },
    { id: 'errors', z: 'f1', type: 'helper' },
  ];
}

const turns = async (n) => {
  for (let i = 0; i < n; i++) await new Promise((r) => setImmediate(r));
};

/** Collects what the parser sends for one input: the handler is synchronous, deliveries take a few event-loop turns. */
async function feed(msg) {
  const events = [];
  const errors = [];
  const onEvent = (m) => events.push(m);
  const onError = (m) => errors.push(m);
  helper.getNode('events').on('input', onEvent);
  helper.getNode('errors').on('input', onError);
  helper.getNode('pp').receive(msg);
  await turns(10);
  helper.getNode('events').off('input', onEvent);
  helper.getNode('errors').off('input', onError);
  return { events: events.map((m) => m.payload), msgs: events, errors };
}

const strip = (e) => {
  const { at, ...rest } = e;
  assert.ok(!Number.isNaN(Date.parse(at)), `event has a timestamp: ${at}`);
  return rest;
};

describe('progress-parser node', function () {
  let dir, repo, firmware;
  const allNodes = [nodes.repository, progressParser, nodes.catch, captureHttpNode];

  beforeEach(async () => {
    dir = tempDir();
    await helper.load(allNodes, flow(dir));
    repo = helper.getNode('repo').repo;
    ({ record: firmware } = await repo.firmware.store({ image: imageOf(10_000), title: 'blink', version: '1.1.0' }));
    await repo.devices.register({ id: 'tb-1', dialect: 'thingsboard', token: 'TB1' });
    await repo.devices.register({ id: 'tc-1', dialect: 'tencent', attributes: { product: 'P1' } });
    await repo.devices.register({ id: 'bz-1', dialect: 'biotz', attributes: { customer: 'C1' } });
  });
  afterEach(async () => {
    await helper.unload();
    fs.rmSync(dir, { recursive: true, force: true });
  });

  const assign = (...ids) => ids.forEach((id) => repo.rollout.assign(id, repo.devices.get(id).dialect, firmware));

  it('tracks chunk-server progress events and keeps the device record', async () => {
    assign('tb-1');
    repo.rollout.markNotified('tb-1');
    const a = await feed({ topic: 'progress', payload: { device: 'tb-1', dialect: 'thingsboard', state: 'downloading', percent: 25, at: new Date().toISOString() } });
    assert.deepStrictEqual(a.events.map(strip), [{ device: 'tb-1', dialect: 'thingsboard', state: 'downloading', percent: 25 }]);
    assert.strictEqual(a.msgs[0].topic, 'tb-1');
    assert.strictEqual(a.msgs[0].record.target.version, '1.1.0');
    const b = await feed({ topic: 'progress', payload: { device: 'tb-1', state: 'downloading', percent: 25 } });
    assert.deepStrictEqual(b.events, [], 'a repeated percent is no news');
    await feed({ topic: 'progress', payload: [{ device: 'tb-1', state: 'downloaded' }, { device: 'tb-1', state: 'verified' }] });
    const rec = repo.rollout.get('tb-1');
    assert.strictEqual(rec.state, 'verified');
    assert.strictEqual(rec.attempts, 1);
  });

  it('takes a version report equal to the assignment as updated, and shows live counts', async () => {
    assign('tb-1', 'tc-1', 'bz-1');
    for (const id of ['tb-1', 'tc-1', 'bz-1']) repo.rollout.markNotified(id);
    await feed({ payload: { device: 'tc-1', state: 'downloading', percent: 50 } });
    await feed({ payload: { device: 'bz-1', state: 'failed', error: { code: 'E1', message: 'flash write failed' } } });
    const r = await feed({ payload: { device: 'tb-1', version: '1.1.0' } });
    assert.strictEqual(r.events[0].state, 'updated');
    // The helper's RED._ returns the key; the counts behind it are the summary's.
    const status = helper.getNode('pp').status.lastCall.args[0];
    assert.deepStrictEqual(status, { fill: 'red', shape: 'dot', text: 'progress-parser.status.counts' });
    const s = repo.rollout.summary();
    assert.deepStrictEqual([s.downloading, s.updated, s.failed], [1, 1, 1]);
  });

  it('sends a rollout summary on its second output whenever the counts change', async () => {
    const summaries = [];
    helper.getNode('summary').on('input', (m) => summaries.push(m.payload));
    assign('tb-1', 'tc-1');
    repo.rollout.markNotified('tb-1');
    repo.rollout.markNotified('tc-1');
    await feed({ payload: { device: 'tb-1', state: 'downloading', percent: 1 } });
    await feed({ payload: { device: 'tb-1', state: 'downloading', percent: 2 } });
    await feed({ payload: { device: 'tc-1', state: 'updated', version: '1.1.0' } });
    assert.strictEqual(summaries.length, 2);
    assert.deepStrictEqual([summaries[1].downloading, summaries[1].updated, summaries[1].total, summaries[1].percentDone], [1, 1, 2, 50]);
  });

  it('reports a real HTTP download of a signed URL as downloading, then downloaded', async () => {
    assign('bz-1');
    repo.rollout.markNotified('bz-1');
    const seen = [];
    helper.getNode('events').on('input', (m) => seen.push(m.payload));
    const server = http.createServer(captured.httpNode);
    server.on('connection', (s) => s.setNoDelay(true));
    await new Promise((r) => server.listen(0, '127.0.0.1', r));
    try {
      repo.publicUrl = `http://127.0.0.1:${server.address().port}`;
      await new Promise((resolve, reject) => {
        http.get(repo.downloadUrl(firmware, 'bz-1'), (res) => {
          res.resume();
          res.on('end', resolve);
        }).on('error', reject);
      });
      // The route's last event fires when the response closes; wait for the record to say so.
      while (repo.rollout.get('bz-1').state !== 'downloaded') await new Promise((r) => setImmediate(r));
      await new Promise((r) => setImmediate(r));
    } finally {
      await new Promise((r) => server.close(r));
    }
    assert.deepStrictEqual(seen.map((e) => [e.device, e.dialect, e.state, e.percent]), [['bz-1', 'biotz', 'downloading', 0], ['bz-1', 'biotz', 'downloaded', 100]]);
  });

  it('reports uplinks it cannot place to a catch node and carries on', async () => {
    const a = await feed({ topic: 'sensors/kitchen/temperature', payload: '21.5' });
    assert.strictEqual(a.errors.length, 1);
    assert.match(a.errors[0].error.message, /unknownDialect|dialect/);
    const b = await feed({ payload: { device: 'tb-1', state: 'exploded' } });
    assert.match(b.errors[0].error.message, /state must be one of/);
    const c = await feed({ payload: { device: 'tb-1', state: 'downloading', percent: 3 } });
    assert.strictEqual(c.events.length, 1);
  });

  it('never lets a device speak for another: a ready-made event on a device topic is read as that device\'s uplink', async () => {
    assign('tb-1', 'tc-1');
    repo.rollout.markNotified('tb-1');
    repo.rollout.markNotified('tc-1');
    // tb-1 behind the gateway publishes on its own telemetry topic, naming tc-1; then on Tencent's
    // report topic of its own product (a plain broker) with a bare array.
    const forged = { device: 'tc-1', dialect: 'tencent', state: 'updated', version: '1.1.0' };
    const a = await feed({ topic: 'ota/tb-1/v1/devices/me/telemetry', payload: forged });
    const b = await feed({ topic: '$ota/report/P1/tb-1', payload: [forged] });
    assert.deepStrictEqual([...a.events, ...b.events].filter((e) => e.device === 'tc-1'), []);
    assert.strictEqual(repo.rollout.get('tc-1').state, 'notified');
    // The same event from a flow (chunk-server's second output) still counts.
    const c = await feed({ topic: 'progress', payload: { device: 'tc-1', state: 'downloading', percent: 10 } });
    assert.deepStrictEqual(c.events.map((e) => [e.device, e.state]), [['tc-1', 'downloading']]);
  });

  it('keeps every record across a restart of the flows', async () => {
    assign('tb-1');
    repo.rollout.markNotified('tb-1');
    await feed({ payload: { device: 'tb-1', state: 'downloading', percent: 70 } });
    const before = repo.rollout.get('tb-1');
    await helper.unload();
    await helper.load(allNodes, flow(dir));
    const again = helper.getNode('repo').repo;
    assert.notStrictEqual(again, repo);
    assert.deepStrictEqual(again.rollout.get('tb-1'), before);
    repo = again;
  });

  describe('device uplinks of every dialect', function () {
    before(function () {
      if (!dialectsAvailable) this.skip();
    });

    it('ThingsBoard telemetry as an object: fw_state one to one, fw_error as the message, current version = updated', async () => {
      assign('tb-1');
      repo.rollout.markNotified('tb-1');
      const tele = (o) => feed({ topic: 'v1/devices/me/telemetry', device: 'tb-1', payload: Buffer.from(JSON.stringify(o)) });
      const d = await tele({ current_fw_title: 'blink', current_fw_version: '1.0.0', fw_state: 'DOWNLOADING' });
      assert.deepStrictEqual(d.events.map((e) => [e.device, e.dialect, e.state]), [['tb-1', 'thingsboard', 'downloading']]);
      assert.strictEqual(repo.rollout.get('tb-1').current.version, '1.0.0');
      const f = await tele({ fw_state: 'FAILED', fw_error: 'Checksum verification failed' });
      assert.strictEqual(f.events[0].state, 'failed');
      assert.strictEqual(f.events[0].error.message, 'Checksum verification failed');
      assert.strictEqual(repo.rollout.get('tb-1').lastError.message, 'Checksum verification failed');
      const u = await tele({ current_fw_title: 'blink', current_fw_version: '1.1.0', fw_state: 'UPDATED' });
      assert.strictEqual(u.events.at(-1).state, 'updated');
      assert.strictEqual(repo.rollout.get('tb-1').state, 'updated');
    });

    it('ThingsBoard telemetry as a list of {ts, values}', async () => {
      assign('tb-1');
      repo.rollout.markNotified('tb-1');
      const r = await feed({
        topic: 'v1/devices/me/telemetry',
        device: 'tb-1',
        payload: JSON.stringify([{ ts: 1763892000000, values: { fw_state: 'DOWNLOADED' } }, { ts: 1763892001000, values: { fw_state: 'VERIFIED' } }, { ts: 1763892002000, values: { fw_state: 'UPDATING' } }]),
      });
      assert.deepStrictEqual(r.events.map((e) => e.state), ['downloaded', 'verified', 'updating']);
      assert.strictEqual(repo.rollout.get('tb-1').state, 'updating');
    });

    it('Tencent report_progress with percents as strings, burning, done, and fail codes', async () => {
      assign('tc-1');
      repo.rollout.markNotified('tc-1');
      const report = (progress, version = '1.1.0') => feed({
        topic: '$ota/report/P1/tc-1',
        payload: Buffer.from(JSON.stringify({ type: 'report_progress', report: { progress, version } })),
      });
      const d = await report({ state: 'downloading', percent: '10', result_code: '0', result_msg: '' });
      assert.deepStrictEqual(d.events.map((e) => [e.device, e.dialect, e.state, e.percent]), [['tc-1', 'tencent', 'downloading', 10]]);
      // The version in a progress report is the one being installed, not the running one.
      assert.strictEqual(repo.rollout.get('tc-1').state, 'downloading');
      const f = await report({ state: 'fail', result_code: '-4', result_msg: '' });
      assert.strictEqual(f.events[0].state, 'failed');
      assert.strictEqual(String(f.events[0].error.code), '-4');
      assert.strictEqual(f.events[0].error.message, 'MD5 mismatch');
      const b = await report({ state: 'burning', result_code: '0', result_msg: '' });
      assert.strictEqual(b.events[0].state, 'updating');
      const done = await report({ state: 'done', result_code: '0', result_msg: '' });
      assert.strictEqual(done.events[0].state, 'updated');
      assert.strictEqual(repo.rollout.get('tc-1').state, 'updated');
    });

    it('Tencent report_version of the assigned version means updated', async () => {
      assign('tc-1');
      repo.rollout.markNotified('tc-1');
      const old = await feed({ topic: '$ota/report/P1/tc-1', payload: JSON.stringify({ type: 'report_version', report: { version: '1.0.0' } }) });
      assert.notStrictEqual(repo.rollout.get('tc-1').state, 'updated');
      assert.ok(old.errors.length === 0);
      await feed({ topic: '$ota/report/P1/tc-1', payload: JSON.stringify({ type: 'report_version', report: { version: '1.1.0' } }) });
      assert.strictEqual(repo.rollout.get('tc-1').state, 'updated');
      assert.strictEqual(repo.rollout.get('tc-1').current.version, '1.1.0');
    });
  });
});
