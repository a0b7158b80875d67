'use strict';
const assert = require('assert');
const fs = require('fs');
const { helper, nodes } = require('../support/red');
const { imageOf, tempDir } = require('../support/images');
const progressParser = require('../../dist/nodes/progress-parser.js');
const otaRollout = require('../../dist/nodes/ota-rollout.js');
const { trackerFor } = require('../../dist/core/device-updates/tracker');
const { dropRollouts, rolloutsFor } = require('../../dist/core/rollouts/service');

describe('ota-rollout node', () => {
  let dir, repo, fw, out, notified;

  beforeEach(async () => {
    dir = tempDir();
    await helper.load([nodes.repository, progressParser, otaRollout, nodes.catch], [
      { id: 'f1', type: 'tab' },
      { id: 'repo', type: 'ota-repository', storageDir: dir },
      { id: 'pp', z: 'f1', type: 'progress-parser', repository: 'repo', wires: [[], []] },
      { id: 'ro', z: 'f1', type: 'ota-rollout', repository: 'repo', wires: [['out']] },
      { id: 'out', z: 'f1', type: 'helper' },
      { id: 'c1', z: 'f1', type: 'catch', scope: null, uncaught: false, wires: [['caught']] },
      { id: 'caught', z: 'f1', type: 'helper' },
    ]);
    repo = helper.getNode('repo').repo;
    ({ record: fw } = await repo.firmware.store({ image: imageOf(5000), title: 'blink', version: '2.0.0' }));
    for (let i = 0; i < 30; i++) await repo.devices.register({ id: `d${String(i).padStart(2, '0')}`, dialect: 'tencent', attributes: { product: 'P1' }, tags: ['fleet'] });
    notified = [];
    repo.on('command', (c) => {
      if (c.action === 'assign') notified.push(...c.devices);
    });
    out = [];
    helper.getNode('out').on('input', (msg) => out.push(msg));
  });
  afterEach(async () => {
    await helper.unload();
    fs.rmSync(dir, { recursive: true, force: true });
  });

  const report = (device, state) => trackerFor(repo).record({ device, dialect: 'tencent', state, ...(state === 'updated' ? { title: 'blink', version: '2.0.0' } : {}), at: new Date().toISOString() });
  const types = () => out.map((m) => m.topic);
  const tick = () => new Promise((r) => setTimeout(r, 5));

  it('creates and starts from msg.rollout, reports each wave and pauses on the threshold, with counts and a status line', async () => {
    const ro = helper.getNode('ro');
    ro.receive({ rollout: { firmware: { title: 'blink', version: '2.0.0' }, targets: { tag: 'fleet' }, plan: { groups: [{ count: 3 }, { count: 9 }, {}], error: { percent: 10 } } } });
    await tick();
    assert.deepStrictEqual(types(), ['created']);
    ro.receive({ action: 'start' });
    await tick();
    assert.deepStrictEqual(types(), ['created', 'started', 'group-started']);
    assert.strictEqual(out[2].payload.group, 1);
    assert.strictEqual(out[2].rollout.groups.length, 3);
    for (const d of ['d00', 'd01', 'd02']) report(d, 'updated');
    await tick();
    assert.deepStrictEqual(types().slice(3), ['group-succeeded', 'group-started']);
    report('d03', 'failed');
    await tick();
    const threshold = out.find((m) => m.topic === 'threshold');
    assert.strictEqual(threshold.payload.group, 2);
    assert.strictEqual(threshold.payload.counts.failed, 1);
    assert.deepStrictEqual(types().slice(-2), ['threshold', 'paused']);
    assert.strictEqual(notified.length, 12, 'nothing of the third group');
    assert.deepStrictEqual(ro.status.getCalls().filter((c) => c.thisValue === ro).at(-1).args[0], { fill: 'yellow', shape: 'ring', text: 'ota-rollout.status.lineota-rollout.status.failed (ota-rollout.state.paused)' });
  });

  it('answers msg.action status with the rollout, and abort withdraws it', async () => {
    const ro = helper.getNode('ro');
    ro.receive({ rollout: { firmware: fw.id, targets: { devices: ['d00', 'd01'] }, start: true } });
    await tick();
    ro.receive({ action: 'status' });
    await tick();
    const st = out.find((m) => m.topic === 'status');
    assert.strictEqual(st.payload.state, 'running');
    assert.strictEqual(st.payload.counts.released, 2);
    ro.receive({ action: 'abort', rollout: st.payload.id });
    await tick();
    assert.strictEqual(out.at(-1).topic, 'aborted');
  });

  it('follows the rollouts when its Node-RED takes the driver lease (a new rollout service): events out, actions in', async () => {
    // On a shared database an instance that takes over builds its rollout service afresh from
    // what the last driver wrote (storage/driving.ts); the node deployed before must follow it.
    const ro = helper.getNode('ro');
    ro.receive({ rollout: { firmware: fw.id, targets: { tag: 'fleet' }, plan: { groups: [{ count: 2 }, {}] }, start: true } });
    await tick();
    const before = rolloutsFor(repo);
    await dropRollouts(repo);
    rolloutsFor(repo).start();
    assert.notStrictEqual(rolloutsFor(repo), before);
    for (const d of ['d00', 'd01']) report(d, 'updated');
    await tick();
    assert.deepStrictEqual(types().slice(-2), ['group-succeeded', 'group-started']);
    ro.receive({ action: 'pause' });
    await tick();
    assert.strictEqual(out.at(-1).topic, 'paused');
    assert.strictEqual(rolloutsFor(repo).list().find((r) => r.kind !== 'assignment').state, 'paused');
  });

  it('leaves assignments out: no event of theirs, and an action without an id still finds the one staged rollout', async () => {
    const { rolloutsFor } = require('../../dist/core/rollouts/service');
    const ro = helper.getNode('ro');
    const caught = [];
    helper.getNode('caught').on('input', (msg) => caught.push(msg.error && msg.error.message));
    ro.receive({ rollout: { firmware: fw.id, targets: { devices: ['d00', 'd01'] }, plan: { groups: [{ count: 1, success: { action: 'pause' } }, {}] }, start: true } });
    await tick();
    // An assignment still open (nothing reported yet): a rollout of one group too.
    await helper.request().post('/ota/assignments').send({ firmware: fw.id, devices: ['d20'] }).expect(200);
    assert.strictEqual(rolloutsFor(repo).list().filter((r) => r.kind === 'assignment' && r.state === 'running').length, 1);
    report('d00', 'updated');
    await tick();
    ro.receive({ action: 'next' });
    await tick();
    assert.deepStrictEqual(types(), ['created', 'started', 'group-started', 'group-succeeded', 'paused', 'group-started', 'resumed']);
    assert.deepStrictEqual(notified, ['d00', 'd20', 'd01']);
    assert.deepStrictEqual(caught, []);
  });

  it('reports a bad plan or action to Catch nodes, naming the field, and carries on', async () => {
    const ro = helper.getNode('ro');
    const caught = [];
    helper.getNode('caught').on('input', (m) => caught.push(m));
    ro.receive({ rollout: { firmware: fw.id, targets: { tag: 'fleet' }, plan: { groups: [{ percent: 5 }, {}], rate: { perMinte: 10 } } } });
    await tick();
    ro.receive({ action: 'launch' });
    await tick();
    ro.receive({ action: 'resume' });
    await tick();
    await new Promise((r) => setImmediate(r));
    assert.strictEqual(caught.length, 3);
    assert.match(caught[0].error.message, /unknown field "perMinte" in rate/);
    assert.match(caught[1].error.message, /msg.action is one of/);
    assert.match(caught[2].error.message, /no rollout is open/);
    assert.deepStrictEqual(out, []);
  });
});
