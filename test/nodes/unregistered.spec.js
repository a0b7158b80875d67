'use strict';
const assert = require('assert');
const fs = require('fs');
const path = require('path');
const sinon = require('sinon');
const { helper, nodes } = require('../support/red');
const { imageOf, tempDir } = require('../support/images');
const progressParser = require('../../dist/nodes/progress-parser.js');
const chunkServer = require('../../dist/nodes/chunk-server.js');

// Anyone on the broker can publish a report for any id (and a second Node-RED on the same broker
// has devices of its own): such uplinks get no rollout record. The nodes count them and say so
// in one warning a minute.

function flow(dir) {
  return [
    { id: 'f1', type: 'tab' },
    { id: 'repo', type: 'ota-repository', storageDir: dir },
    { id: 'pp', z: 'f1', type: 'progress-parser', repository: 'repo', dialect: 'auto', wires: [['events'], ['summary']] },
    { id: 'cs', z: 'f1', type: 'chunk-server', repository: 'repo', dialect: '', prefix: 'ota/{device}/', wires: [['replies'], ['progress']] },
    { id: 'events', z: 'f1', type: 'helper' },
    { id: 'summary', z: 'f1', type: 'helper' },
    { id: 'replies', z: 'f1', type: 'helper' },
    { id: 'progress', z: 'f1', type: 'helper' },
    { id: 'c1', z: 'f1', type: 'catch', scope: null, uncaught: false, wires: [['errors']] },
    { id: 'errors', z: 'f1', type: 'helper' },
  ];
}

const turns = async (n = 10) => {
  for (let i = 0; i < n; i++) await new Promise((r) => setImmediate(r));
};

const tencentReport = (id, state = 'downloading') => ({ topic: `$ota/report/P1/${id}`, payload: JSON.stringify({ type: 'report_progress', report: { progress: { state, percent: 50 }, version: '1.1.0' } }) });
const tbTelemetry = (id) => ({ topic: `ota/${id}/v1/devices/me/telemetry`, payload: { fw_state: 'DOWNLOADING', current_fw_version: '0.9.0' } });
const tagoVersion = (id) => ({ topic: `ota/${id}/tago/data/post`, payload: JSON.stringify({ variable: 'firmware_version', value: '0.1.0' }) });

describe('uplinks from unregistered devices', function () {
  let dir, repo, clock, warnings, errors;
  const allNodes = [nodes.repository, progressParser, chunkServer, nodes.catch];

  async function load() {
    await helper.load(allNodes, flow(dir));
    repo = helper.getNode('repo').repo;
    warnings = { pp: [], cs: [] };
    errors = [];
    for (const id of ['pp', 'cs']) helper.getNode(id).on('call:warn', (call) => warnings[id].push(String(call.args[0])));
    helper.getNode('errors').on('input', (msg) => errors.push(msg.error && msg.error.message));
  }

  beforeEach(async () => {
    dir = tempDir();
    // Only the nodes' report timer is faked: a minute passes when the spec says so.
    clock = sinon.useFakeTimers({ toFake: ['setInterval', 'clearInterval'] });
    await load();
    await repo.devices.register({ id: 'tc-1', dialect: 'tencent', attributes: { product: 'P1' } });
  });
  afterEach(async () => {
    await helper.unload();
    clock.restore();
    fs.rmSync(dir, { recursive: true, force: true });
  });

  it('create no rollout record (Tencent, ThingsBoard, TagoIO), not even after a restart, and leave the summary alone', async () => {
    const { record: fw } = await repo.firmware.store({ image: imageOf(2000), title: 'blink', version: '1.1.0' });
    repo.rollout.assign('tc-1', 'tencent', fw);
    const before = repo.rollout.summary();
    for (const msg of [tencentReport('ghost'), tencentReport('ghost', 'done'), tbTelemetry('tb-ghost'), tagoVersion('tago-ghost')]) helper.getNode('pp').receive(msg);
    await turns();
    assert.deepStrictEqual(repo.rollout.list().map((s) => s.device), ['tc-1']);
    assert.deepStrictEqual(repo.rollout.summary(), before);
    assert.deepStrictEqual(errors, [], 'no error per uplink');
    await helper.unload();
    await load();
    assert.deepStrictEqual(repo.rollout.list().map((s) => s.device), ['tc-1']);
    const onDisk = JSON.parse(fs.readFileSync(path.join(dir, 'device-states.json'), 'utf8'));
    assert.deepStrictEqual(onDisk.map((s) => s.device), ['tc-1']);
  });

  it('still track a registered device that reports before any assignment', async () => {
    helper.getNode('pp').receive({ topic: '$ota/report/P1/tc-1', payload: JSON.stringify({ type: 'report_version', report: { version: '1.0.0' } }) });
    await turns();
    assert.deepStrictEqual(repo.rollout.get('tc-1').current, { version: '1.0.0' });
  });

  it('are reported once a minute in one line: the count and a few ids, cut short and escaped', async () => {
    const pp = helper.getNode('pp');
    for (let i = 0; i < 1000; i++) pp.receive(tencentReport(`ghost-${i}-${'x'.repeat(100)}\u001b[2J`));
    await turns();
    assert.deepStrictEqual(warnings.pp, [], 'nothing before the minute is up');
    clock.tick(60_000);
    await turns(2);
    assert.strictEqual(warnings.pp.length, 1, warnings.pp.join('\n'));
    const [line] = warnings.pp;
    assert.match(line, /ignored 1000 uplinks from devices not registered/);
    assert.match(line, /"ghost-0-x{24}…"/);
    assert.ok(line.length < 400, `bounded: ${line.length} characters`);
    // eslint-disable-next-line no-control-regex
    assert.ok(!/[\u0000-\u001f]/.test(line), 'no control characters reach the log');
    assert.strictEqual((line.match(/"ghost-/g) || []).length, 3, 'three examples');
    clock.tick(60_000);
    await turns(2);
    assert.strictEqual(warnings.pp.length, 1, 'a quiet minute says nothing');
    assert.deepStrictEqual(repo.rollout.list(), []);
  });

  it('chunk requests from them get their error reply, and the log a count once a minute instead of an error per id', async () => {
    const replies = [];
    helper.getNode('replies').on('input', (msg) => replies.push(msg));
    const cs = helper.getNode('cs');
    for (let i = 0; i < 50; i++) cs.receive({ topic: `ota/ghost${i}/v2/fw/request/1/chunk/0`, payload: '100' });
    await turns();
    assert.strictEqual(replies.length, 50);
    assert.match(String(replies[0].payload), /unknown device ghost0/);
    assert.deepStrictEqual(errors, []);
    clock.tick(60_000);
    await turns(2);
    assert.strictEqual(warnings.cs.length, 1);
    assert.match(warnings.cs[0], /ignored 50 uplinks .*"ghost0", "ghost1", "ghost2"/);
    assert.deepStrictEqual(repo.rollout.list(), []);
  });
});
