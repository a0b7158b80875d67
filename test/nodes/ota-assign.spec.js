'use strict';
const assert = require('assert');
const { image, environment, receive, nextError, helper } = require('../fixtures/setup');
const devices = require('../fixtures/devices');

describe('ota-assign', function () {
  const env = environment();
  before(env.start);
  after(env.stop);
  afterEach(env.unload);

  function collect(node) {
    const sent = [];
    node.on('input', (msg) => sent.push(msg));
    return sent;
  }

  it('refuses a notice for deleted firmware with a clear error, and the next good one goes out', async function () {
    const repo = await env.load({ dialect: 'thingsboard' });
    const gone = (await repo.firmware.store({ image: image(50, 'gone'), title: 'app', version: '1.0.0' })).record;
    const kept = (await repo.firmware.store({ image: image(50, 'kept'), title: 'app', version: '1.0.1' })).record;
    await repo.deleteFirmware(gone.id);
    await repo.devices.register({ id: 'd1', dialect: 'thingsboard' });
    const err = await receive(helper.getNode('assign'), { firmware: gone, devices: 'd1' });
    assert.match(String(err), /firmware app 1\.0\.0 is not in the catalogue \(deleted, or never stored\)/);
    assert.strictEqual(repo.rollout.get('d1'), undefined);
    const sent = collect(helper.getNode('out'));
    assert.strictEqual(await receive(helper.getNode('assign'), { firmware: kept, devices: 'd1' }), undefined);
    await new Promise((r) => setImmediate(r));
    await new Promise((r) => setImmediate(r));
    assert.strictEqual(JSON.parse(sent[0].payload).fw_version, '1.0.1');
  });

  it('notifies the devices it can and names the ones it cannot', async function () {
    const repo = await env.load({ dialect: '' });
    const fw = (await repo.firmware.store({ image: image(50), title: 'app', version: '1.0.0' })).record;
    await repo.devices.register({ id: 'ok', dialect: 'thingsboard' });
    await repo.devices.register({ id: 'noproduct', dialect: 'tencent' });
    const err = await receive(helper.getNode('assign'), { firmware: fw.id, devices: ['ok', 'nobody', 'noproduct'] });
    assert.match(String(err), /unknown device: nobody/);
    assert.match(String(err), /noproduct: .*\{product\}/);
    assert.strictEqual(repo.rollout.get('ok').state, 'notified');
  });

  it('assigns to every device with a tag, and refuses a message that names no firmware or devices', async function () {
    const repo = await env.load({ dialect: 'thingsboard' });
    const fw = (await repo.firmware.store({ image: image(50), title: 'app', version: '1.0.0' })).record;
    await repo.devices.register({ id: 'a', dialect: 'thingsboard', tags: ['lab'] });
    await repo.devices.register({ id: 'b', dialect: 'thingsboard', tags: ['lab'] });
    await repo.devices.register({ id: 'c', dialect: 'thingsboard' });
    assert.strictEqual(await receive(helper.getNode('assign'), { firmware: fw, tag: 'lab' }), undefined);
    assert.deepStrictEqual(repo.rollout.list().map((s) => s.device), ['a', 'b']);
    assert.match(String(await receive(helper.getNode('assign'), { devices: 'c' })), /name the firmware/);
    assert.match(String(await receive(helper.getNode('assign'), { firmware: fw })), /name the devices/);
    assert.match(String(await receive(helper.getNode('assign'), { firmware: fw, devices: 'c', action: 'explode' })), /unknown action "explode"/);
  });

  it('records a msg assignment as a rollout of one group, and its unassignment ends it', async function () {
    const repo = await env.load({ dialect: 'thingsboard' });
    const { rolloutsFor } = require('../../dist/core/rollouts/service');
    const fw = (await repo.firmware.store({ image: image(50), title: 'app', version: '1.0.0' })).record;
    await repo.devices.register({ id: 'a', dialect: 'thingsboard', tags: ['lab'] });
    await repo.devices.register({ id: 'b', dialect: 'thingsboard', tags: ['lab'] });
    assert.strictEqual(await receive(helper.getNode('assign'), { firmware: fw, tag: 'lab' }), undefined);
    const [r] = rolloutsFor(repo).list();
    assert.strictEqual(r.kind, 'assignment');
    assert.deepStrictEqual([r.state, r.groups.length, r.counts.released], ['running', 1, 2]);
    // ota-assign writes the device states itself (no tracker event): the rollout still sees it.
    assert.strictEqual(await receive(helper.getNode('assign'), { devices: ['a', 'b'], action: 'unassign' }), undefined);
    const [after] = rolloutsFor(repo).list();
    assert.deepStrictEqual([after.state, after.counts.cancelled], ['finished', 2]);
  });

  it('sends notices when the repository emits a command, for the devices of its dialect only', async function () {
    const repo = await env.load({ dialect: 'thingsboard' });
    const fw = (await repo.firmware.store({ image: image(50), title: 'app', version: '1.0.0' })).record;
    await repo.devices.register({ id: 'tb', dialect: 'thingsboard' });
    await repo.devices.register({ id: 'tc', dialect: 'tencent', attributes: { product: 'P' } });
    const c = await devices.connect(env.broker.url, 'watcher');
    await c.subscribeAsync(['v1/devices/me/attributes', '$ota/update/#']);
    const got = new Promise((resolve) => c.on('message', (t, p) => resolve([t, JSON.parse(p)])));
    // As the rollout tracker does: record, count the attempt, then ask the flow to send.
    for (const d of ['tb', 'tc']) {
      repo.rollout.assign(d, d === 'tb' ? 'thingsboard' : 'tencent', fw);
      repo.rollout.markNotified(d);
    }
    repo.emit('command', { action: 'assign', firmware: fw, devices: ['tb', 'tc', 'nobody'] });
    const [topic, payload] = await got;
    assert.strictEqual(topic, 'v1/devices/me/attributes');
    assert.strictEqual(payload.fw_version, '1.0.0');
    assert.strictEqual(repo.rollout.get('tb').attempts, 1, 'the tracker counted the attempt; the node does not count it again');
    await c.endAsync();
  });

  it('clears a retained notice on a "clear" command and keeps the assignment', async function () {
    const repo = await env.load({ dialect: 'biotz', assign: { customer: 'c9' } });
    const fw = (await repo.firmware.store({ image: image(50), title: 'app', version: '1.0.0' })).record;
    await receive(helper.getNode('assign'), { firmware: fw, devices: { id: 'b9', dialect: 'biotz' } });
    const c = await devices.connect(env.broker.url, 'watcher');
    const seen = [];
    c.on('message', (_t, p) => seen.push(p.length));
    await c.subscribeAsync('biotz/1/0/c9/b9/subscribe/firmware/update', { qos: 1 });
    await c.publishAsync('sync', 'x', { qos: 1 });
    assert.strictEqual(seen.length, 1, 'the retained notice');
    const cleared = new Promise((resolve) => c.on('message', (_t, p) => resolve(p.length)));
    repo.emit('command', { action: 'clear', firmware: fw, devices: ['b9'] });
    assert.strictEqual(await cleared, 0);
    assert.strictEqual(repo.rollout.get('b9').firmware, fw.id);
    await c.endAsync();
  });

  it('answers a ThingsBoard attribute request with only the keys asked for', async function () {
    const repo = await env.load({ dialect: 'thingsboard', assignFilters: ['ota/+/v1/devices/me/attributes/request/+'], assign: { prefix: 'ota/{device}/' } });
    const fw = (await repo.firmware.store({ image: image(50), title: 'app', version: '1.0.0' })).record;
    await repo.devices.register({ id: 'd1', dialect: 'thingsboard' });
    repo.rollout.assign('d1', 'thingsboard', fw);
    const c = await devices.connect(env.broker.url, 'd1');
    await c.subscribeAsync('ota/d1/v1/devices/me/attributes/response/+');
    const got = new Promise((resolve) => c.on('message', (t, p) => resolve([t, JSON.parse(p)])));
    c.publish('ota/d1/v1/devices/me/attributes/request/42', '{"sharedKeys":"fw_version,fw_size,volume"}');
    assert.deepStrictEqual(await got, ['ota/d1/v1/devices/me/attributes/response/42', { shared: { fw_version: '1.0.0', fw_size: 50 } }]);
    assert.strictEqual(repo.rollout.get('d1').state, 'notified');
    const error = nextError(helper.getNode('assign'));
    c.publish('ota/d1/v1/devices/me/attributes/request/43', '{"sharedKeys":');
    assert.match(String(await error), /not valid JSON|malformed JSON|invalid-json/i);
    await c.endAsync();
  });

  it('does not notify a device already running the firmware', async function () {
    const repo = await env.load({ dialect: 'thingsboard' });
    const fw = (await repo.firmware.store({ image: image(50), title: 'app', version: '1.0.0' })).record;
    await repo.devices.register({ id: 'd1', dialect: 'thingsboard' });
    repo.rollout.apply({ device: 'd1', dialect: 'thingsboard', state: 'notified', version: '1.0.0', title: 'app', at: new Date().toISOString() });
    const status = new Promise((resolve) => helper.getNode('assign').on('call:status', (c) => c.args[0].fill === 'green' && resolve(c.args[0].text)));
    await receive(helper.getNode('assign'), { firmware: fw, devices: 'd1' });
    assert.match(await status, /upToDate|1 up to date/); // the helper's RED._ returns keys
    assert.strictEqual(repo.rollout.get('d1').state, 'updated');
  });
});

describe('ota-assign and chunk-server settings', function () {
  const env = environment();
  before(env.start);
  after(env.stop);
  afterEach(env.unload);

  it('a bad topic override shows a red status and an error, and deploys nothing broken', async function () {
    const statuses = [];
    await env.load({ dialect: 'thingsboard', chunkFilters: ['v2/fw/request/+/chunk/+'], assign: { topics: '{oops' }, chunk: { topics: '{"chunkRequest":"a/#"}' } });
    for (const id of ['assign', 'chunks']) {
      const node = helper.getNode(id);
      // The helper spies on the Node prototype: keep this node's calls.
      statuses.push(node.status.getCalls().filter((c) => c.thisValue === node).map((c) => c.args[0].fill));
      assert.ok(node.error.getCalls().some((c) => c.thisValue === node && /topics/.test(String(c.args[0]))), `${id} says what is wrong`);
    }
    assert.deepStrictEqual(statuses, [['red'], ['red']]);
  });
});
