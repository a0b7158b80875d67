'use strict';
const assert = require('assert');
const fs = require('fs');
const { helper, nodes } = require('../support/red');
const { imageOf, tempDir } = require('../support/images');
const progressParser = require('../../dist/nodes/progress-parser.js');

describe('admin HTTP API: /ota/rollouts', function () {
  let dir, repo, fw, notified;
  const api = () => helper.request();

  beforeEach(async () => {
    dir = tempDir();
    await helper.load([nodes.repository, progressParser], [
      { id: 'f1', type: 'tab' },
      { id: 'repo', type: 'ota-repository', storageDir: dir, maxImageMB: 1 },
      { id: 'pp', z: 'f1', type: 'progress-parser', repository: 'repo', wires: [[], []] },
    ]);
    repo = helper.getNode('repo').repo;
    ({ record: fw } = await repo.firmware.store({ image: imageOf(5000), title: 'blink', version: '2.0.0' }));
    for (let i = 0; i < 20; i++) await repo.devices.register({ id: `d${String(i).padStart(2, '0')}`, dialect: 'tencent', attributes: { product: 'P1' }, tags: ['fleet'] });
    await repo.devices.register({ id: 's1', dialect: 'sming', attributes: { app: 'lamp' }, tags: ['lamps'] });
    await repo.devices.register({ id: 's2', dialect: 'sming', attributes: { app: 'lamp' }, tags: ['lamps'] });
    // Stands in for an ota-assign node.
    notified = [];
    repo.on('command', (c) => {
      if (c.action === 'assign') notified.push(...c.devices);
    });
  });
  afterEach(async () => {
    await helper.unload();
    fs.rmSync(dir, { recursive: true, force: true });
  });

  function report(device, state = 'updated') {
    const { trackerFor } = require('../../dist/core/device-updates/tracker');
    trackerFor(repo).record({ device, dialect: 'tencent', state, ...(state === 'updated' ? { title: 'blink', version: '2.0.0' } : {}), at: new Date().toISOString() });
  }

  it('creates, starts and follows a rollout group by group, with counts per group', async () => {
    const created = await api().post('/ota/rollouts').send({
      name: 'canary', firmware: { title: 'blink', version: '2.0.0' }, targets: { tag: 'fleet' },
      plan: { groups: [{ count: 2 }, { percent: 40 }, {}], error: { percent: 10 } },
    }).expect(201);
    const r = created.body;
    assert.strictEqual(r.state, 'draft');
    assert.strictEqual(r.warning, undefined, 'an ota-assign stand-in listens');
    assert.deepStrictEqual(r.groups.map((g) => g.size), [2, 8, 10]);
    assert.deepStrictEqual(r.groupCounts.map((c) => c.waiting), [2, 8, 10]);
    assert.strictEqual(notified.length, 0);
    const started = await api().post(`/ota/rollouts/${r.id}/start`).expect(200);
    assert.strictEqual(started.body.state, 'running');
    assert.deepStrictEqual(notified, ['d00', 'd01']);
    report('d00');
    report('d01');
    const now = await api().get(`/ota/rollouts/${r.id}`).expect(200);
    assert.deepStrictEqual(now.body.groups.map((g) => g.state), ['succeeded', 'running', 'pending']);
    assert.strictEqual(now.body.groupCounts[0].succeeded, 2);
    assert.strictEqual(now.body.groupCounts[1].released, 8);
    assert.strictEqual(now.body.status, 'wave 2/3, 10 %');
    report('d02', 'failed');
    const paused = await api().get(`/ota/rollouts/${r.id}?devices=true`).expect(200);
    assert.strictEqual(paused.body.state, 'paused');
    assert.strictEqual(paused.body.reason, 'threshold');
    assert.strictEqual(paused.body.devices.find((e) => e.device === 'd02').phase, 'failed');
    const list = await api().get('/ota/rollouts').expect(200);
    assert.deepStrictEqual(list.body.map((x) => [x.id, x.state]), [[r.id, 'paused']]);
    assert.strictEqual(list.body[0].devices, undefined, 'the list leaves the devices out');
    const aborted = await api().post(`/ota/rollouts/${r.id}/abort`).expect(200);
    assert.strictEqual(aborted.body.state, 'aborted');
    assert.strictEqual(notified.length, 10, 'nothing of the third group');
    await api().delete(`/ota/rollouts/${r.id}`).expect(200);
    await api().get(`/ota/rollouts/${r.id}`).expect(404);
  });

  it('names an unknown field of the plan, and creates nothing', async () => {
    const res = await api().post('/ota/rollouts').send({ firmware: fw.id, targets: { tag: 'fleet' }, plan: { maxConcurent: 5 } }).expect(400);
    assert.deepStrictEqual([res.body.code, res.body.field], ['unknown_field', 'plan.maxConcurent']);
    const top = await api().post('/ota/rollouts').send({ firmware: fw.id, targets: { tag: 'fleet' }, groups: 3 }).expect(400);
    assert.deepStrictEqual([top.body.code, top.body.field], ['unknown_field', 'rollout.groups']);
    const bad = await api().post('/ota/rollouts').send({ firmware: fw.id, targets: { tag: 'fleet' }, plan: { error: { percent: 150 } } }).expect(400);
    assert.strictEqual(bad.body.field, 'plan.error.percent');
    assert.deepStrictEqual((await api().get('/ota/rollouts').expect(200)).body, []);
  });

  it('refuses to split Sming devices of one app over groups', async () => {
    const res = await api().post('/ota/rollouts').send({ firmware: fw.id, targets: { tag: 'lamps' }, plan: { groups: 2 } }).expect(400);
    assert.strictEqual(res.body.code, 'shared_notice_split');
    assert.match(res.body.error, /share one retained notice \(a\/lamp\/u\/2\.0\)/);
    await api().post('/ota/rollouts').send({ firmware: fw.id, targets: { tag: 'lamps' }, plan: { groups: 1 } }).expect(201);
  });

  it('answers 404 for an unknown rollout, 400 for an unknown action or a body, 409 for an action its state refuses', async () => {
    await api().post('/ota/rollouts/nope/start').send({}).expect(404);
    const r = (await api().post('/ota/rollouts').send({ firmware: fw.id, targets: { devices: ['d00', 'd01'] } }).expect(201)).body;
    const action = await api().post(`/ota/rollouts/${r.id}/launch`).send({}).expect(400);
    assert.strictEqual(action.body.field, 'action');
    const body = await api().post(`/ota/rollouts/${r.id}/start`).send({ plan: {} }).expect(400);
    assert.strictEqual(body.body.code, 'unknown_field');
    const state = await api().post(`/ota/rollouts/${r.id}/resume`).send({}).expect(409);
    assert.match(state.body.error, /cannot resume a rollout that is draft/);
    const busy = await api().post('/ota/rollouts').send({ firmware: fw.id, targets: { devices: ['d01', 'd02'] } }).expect(409);
    assert.strictEqual(busy.body.code, 'device_in_rollout');
    await api().delete(`/ota/rollouts/${r.id}`).expect(200);
  });

  it('answers malformed JSON with a JSON 400, never quoting the body', async () => {
    for (const url of ['/ota/rollouts', '/ota/rollouts/r1/start']) {
      const res = await api().post(url).set('Content-Type', 'application/json').send('{"name":"SECRET-TEXT",');
      assert.strictEqual(res.status, 400, `${url}: ${res.status} ${res.text}`);
      assert.match(res.headers['content-type'], /^application\/json/, res.text);
      assert.deepStrictEqual([res.body.code, res.body.field], ['bad_json', 'body']);
      assert.ok(!res.text.includes('SECRET-TEXT'));
    }
  });

  it('warns when no ota-assign node would send the notices', async () => {
    repo.removeAllListeners('command');
    const res = await api().post('/ota/rollouts').send({ firmware: fw.id, targets: { devices: ['d00'] } }).expect(201);
    assert.match(res.body.warning, /no ota-assign node is deployed/);
  });

  it('keeps POST /ota/assignments working beside rollouts', async () => {
    const res = await api().post('/ota/assignments').send({ firmware: fw.id, devices: ['d05'] }).expect(200);
    assert.strictEqual(res.body.devices[0].state, 'notified');
    assert.deepStrictEqual(notified, ['d05']);
  });

  it('records an assignment as a rollout of one group, followed to its end in /ota/rollouts', async () => {
    const res = await api().post('/ota/assignments').send({ firmware: fw.id, devices: ['d05', 'd06', 'd07'] }).expect(200);
    assert.deepStrictEqual(res.body.devices.map((d) => d.state), ['notified', 'notified', 'notified'], 'the answer is as before');
    assert.strictEqual(typeof res.body.rollout, 'string');
    const r = (await api().get(`/ota/rollouts/${res.body.rollout}?devices=true`).expect(200)).body;
    assert.strictEqual(r.kind, 'assignment');
    assert.strictEqual(r.state, 'running');
    assert.deepStrictEqual(r.groups.map((g) => [g.size, g.state]), [[3, 'running']]);
    assert.strictEqual(r.counts.released, 3);
    report('d05');
    report('d06', 'failed');
    let now = (await api().get(`/ota/rollouts/${r.id}`).expect(200)).body;
    assert.strictEqual(now.state, 'running', 'no condition pauses an assignment');
    assert.deepStrictEqual([now.counts.succeeded, now.counts.failed, now.counts.released], [1, 1, 1]);
    // Unassigning the last device ends it (cancelled there), as the device state says.
    await api().delete('/ota/assignments').send({ devices: ['d07'] }).expect(200);
    now = (await api().get(`/ota/rollouts/${r.id}`).expect(200)).body;
    assert.strictEqual(now.state, 'finished');
    assert.deepStrictEqual([now.counts.succeeded, now.counts.failed, now.counts.cancelled], [1, 1, 1]);
    assert.deepStrictEqual(now.groups.map((g) => g.state), ['failed']);
    // Its firmware can be deleted once no device holds it, as before.
    await api().delete('/ota/assignments').send({ devices: ['d05', 'd06'] }).expect(200);
    await api().delete(`/ota/firmware/${fw.id}`).expect(200);
  });

  it('takes a device assigned by hand out of a staged rollout: the rollout never notifies it', async () => {
    const created = await api().post('/ota/rollouts').send({
      firmware: fw.id, targets: { devices: ['d00', 'd01', 'd02', 'd03'] }, plan: { groups: [{ count: 2 }, {}] }, start: true,
    }).expect(201);
    assert.deepStrictEqual(notified, ['d00', 'd01']);
    // d03 waits in the second group; an operator assigns it the firmware now.
    const res = await api().post('/ota/assignments').send({ firmware: fw.id, devices: ['d03'] }).expect(200);
    assert.deepStrictEqual(notified, ['d00', 'd01', 'd03']);
    const staged = (await api().get(`/ota/rollouts/${created.body.id}?devices=true`).expect(200)).body;
    assert.strictEqual(staged.devices.find((e) => e.device === 'd03').phase, 'cancelled');
    report('d00');
    report('d01');
    assert.deepStrictEqual(notified, ['d00', 'd01', 'd03', 'd02'], 'the second group notifies d02 only: d03 has its notice already');
    assert.strictEqual((await api().get(`/ota/rollouts/${res.body.rollout}`).expect(200)).body.counts.released, 1);
    // d03 belongs to its assignment now, until that ends: a new staged rollout cannot take it.
    await api().post('/ota/rollouts').send({ firmware: fw.id, targets: { devices: ['d03'] }, plan: { groups: 1 } }).expect(409);
  });

  it('forgets the oldest ended assignments beyond the limit, never refusing an assignment', async () => {
    const { MAX_ENDED_ASSIGNMENTS } = require('../../dist/core/rollouts/engine');
    for (let i = 0; i < MAX_ENDED_ASSIGNMENTS + 5; i++) {
      await api().post('/ota/assignments').send({ firmware: fw.id, devices: ['d09'] }).expect(200);
      report('d09');
    }
    const list = (await api().get('/ota/rollouts').expect(200)).body;
    assert.ok(list.length <= MAX_ENDED_ASSIGNMENTS + 1, `${list.length} kept`);
    assert.ok(list.every((x) => x.kind === 'assignment'));
  });
});
