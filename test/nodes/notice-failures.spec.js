'use strict';
const assert = require('assert');
const fs = require('fs');
const { helper, nodes } = require('../support/red');
const { imageOf, tempDir } = require('../support/images');
const otaAssign = require('../../dist/nodes/ota-assign.js');
const progressParser = require('../../dist/nodes/progress-parser.js');

// A notice that cannot be built (a Tencent device registered without its product: its topic
// needs {product}) was reported as published, the device as notified, and only a log line said
// otherwise. The device is failed with that reason, in the answer, the rollout and the summary.

function flow(dir) {
  return [
    { id: 'f1', type: 'tab' },
    { id: 'repo', type: 'ota-repository', storageDir: dir },
    { id: 'assign', z: 'f1', type: 'ota-assign', repository: 'repo', dialect: '', wires: [['out']] },
    { id: 'pp', z: 'f1', type: 'progress-parser', repository: 'repo', dialect: 'auto', wires: [[], []] },
    { id: 'out', z: 'f1', type: 'helper' },
  ];
}

describe('notices that cannot be built', function () {
  let dir, repo, fw, sent;
  const api = () => helper.request();

  beforeEach(async () => {
    dir = tempDir();
    await helper.load([nodes.repository, otaAssign, progressParser], flow(dir));
    repo = helper.getNode('repo').repo;
    sent = [];
    helper.getNode('out').on('input', (msg) => sent.push(msg));
    fw = (await repo.firmware.store({ image: imageOf(3000), title: 'blink', version: '1.2.0' })).record;
    await api().post('/ota/devices').send({ id: 'tc-bare', dialect: 'tencent' }).expect(201);
    await api().post('/ota/devices').send({ id: 'tc-ok', dialect: 'tencent', attributes: { product: 'P1' } }).expect(201);
  });
  afterEach(async () => {
    await helper.unload();
    fs.rmSync(dir, { recursive: true, force: true });
  });

  it('leave the device failed with the reason in the assign answer, GET /ota/rollout and the summary', async () => {
    const res = await api().post('/ota/assignments').send({ firmware: fw.id, devices: ['tc-bare'] }).expect(200);
    assert.strictEqual(res.body.published, false, JSON.stringify(res.body));
    const [device] = res.body.devices;
    assert.strictEqual(device.state, 'failed');
    assert.match(device.lastError.message, /needs \{product\}/);
    assert.strictEqual(device.lastError.code, 'missing_attribute');
    assert.match(res.body.warning, /tc-bare: .*needs \{product\}/);
    const rollout = await api().get('/ota/rollout').expect(200);
    assert.deepStrictEqual([rollout.body.summary.failed, rollout.body.summary.notified], [1, 0]);
    assert.strictEqual(rollout.body.devices.find((d) => d.device === 'tc-bare').state, 'failed');
    const one = await api().get('/ota/devices/tc-bare').expect(200);
    assert.match(one.body.rollout.lastError.message, /needs \{product\}/);
    assert.deepStrictEqual(sent, [], 'nothing was published');
  });

  it('fail only the devices whose notice could not be built; the others are notified', async () => {
    const res = await api().post('/ota/assignments').send({ firmware: fw.id, devices: ['tc-ok', 'tc-bare'] }).expect(200);
    assert.strictEqual(res.body.published, true);
    assert.deepStrictEqual(res.body.devices.map((d) => [d.device, d.state]), [['tc-ok', 'notified'], ['tc-bare', 'failed']]);
    assert.match(res.body.warning, /1 notice could not be built: tc-bare/);
    assert.deepStrictEqual(sent.map((m) => m.topic), ['$ota/update/P1/tc-ok']);
    const rollout = await api().get('/ota/rollout').expect(200);
    assert.deepStrictEqual([rollout.body.summary.failed, rollout.body.summary.notified, rollout.body.summary.total], [1, 1, 2]);
  });

  it('fail the device when ota-assign is given the assignment as a message too', async () => {
    const errors = [];
    helper.getNode('assign').on('call:error', (call) => errors.push(String(call.args[0])));
    helper.getNode('assign').receive({ firmware: fw.id, devices: ['tc-bare', 'tc-ok'] });
    for (let i = 0; i < 50 && !errors.length; i++) await new Promise((r) => setTimeout(r, 10));
    assert.match(errors[0], /tc-bare: .*needs \{product\}/);
    assert.strictEqual(repo.rollout.get('tc-bare').state, 'failed');
    assert.match(repo.rollout.get('tc-bare').lastError.message, /needs \{product\}/);
    assert.strictEqual(repo.rollout.get('tc-ok').state, 'notified');
  });
});
