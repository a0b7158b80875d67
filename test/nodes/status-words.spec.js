'use strict';
const assert = require('assert');
const fs = require('fs');
const { helper, nodes } = require('../support/red');
const { tempDir, imageOf } = require('../support/images');
const { catalogues, translated } = require('../support/i18n');
const h = require('../gateway/helpers');
const { util } = require('@node-red/util');
const { trackerFor } = require('../../dist/core/device-updates/tracker');

// The words under each node, as a user reads them: "1 images", "1 devices connected", "1 chunks
// served" had no singular; ota-assign said only what its last batch did ("1 cleared", with 40
// devices still assigned); the rollout summary's percent showed as a bare "50".

const repository = translated(nodes.repository);
const firmwareStore = translated(require('../../dist/nodes/firmware-store.js'));
const otaAssign = translated(require('../../dist/nodes/ota-assign.js'));
const chunkServer = translated(require('../../dist/nodes/chunk-server.js'));
const gateway = translated(require('../../dist/nodes/ota-gateway.js'));

/** Every status text the node shows from now on. */
function texts(node) {
  const seen = [];
  const status = node.status.bind(node);
  node.status = (s) => {
    if (s && s.text) seen.push(s.text);
    status(s);
  };
  return seen;
}

describe('status words', function () {
  this.timeout(15000);
  let dir;
  before(catalogues);
  beforeEach(() => { dir = tempDir(); });
  afterEach(async () => {
    await helper.unload();
    fs.rmSync(dir, { recursive: true, force: true });
  });

  const repo = () => ({ id: 'repo', type: 'ota-repository', storageDir: dir });

  it('firmware store: "1 image", "2 images"', async () => {
    await helper.load([repository, firmwareStore], [repo(), { id: 'store', type: 'firmware-store', repository: 'repo', wires: [['out']] }, { id: 'out', type: 'helper' }]);
    const seen = texts(helper.getNode('store'));
    const out = helper.getNode('out');
    for (const version of ['1.0.0', '1.0.1']) {
      const stored = new Promise((resolve) => out.once('input', resolve));
      helper.getNode('store').receive({ payload: imageOf(100 + version.length, version.charCodeAt(4)), firmware: { title: 'app', version } });
      await stored;
    }
    assert.deepStrictEqual(seen.slice(-2), ['1 image', '2 images']);
  });

  it('ota assign: devices assigned and notified in total, not the last batch', async () => {
    await helper.load([repository, otaAssign], [repo(), { id: 'assign', type: 'ota-assign', repository: 'repo', dialect: 'thingsboard', wires: [[]] }]);
    const r = helper.getNode('repo').repo;
    const fw = (await r.firmware.store({ image: imageOf(100), title: 'app', version: '1.0.0' })).record;
    for (const id of ['a', 'b', 'c']) await r.devices.register({ id, dialect: 'thingsboard' });
    const node = helper.getNode('assign');
    const seen = texts(node);
    const send = async (msg) => {
      const before = seen.length;
      node.receive(msg);
      await h.until(() => seen.length > before);
    };
    await send({ firmware: fw.id, devices: ['a'] });
    await send({ firmware: fw.id, devices: ['b', 'c'] });
    await send({ action: 'unassign', devices: ['c'] });
    assert.deepStrictEqual(seen, ['1 device assigned, 1 notified', '3 devices assigned, 3 notified', '2 devices assigned, 2 notified']);
    r.rollout.apply({ device: 'a', dialect: 'thingsboard', state: 'updated', version: '1.0.0', title: 'app', at: new Date().toISOString() });
    await send({ firmware: fw.id, devices: ['c'] });
    assert.strictEqual(seen.at(-1), '3 devices assigned, 2 notified, 1 up to date');
  });

  it('chunk server: "1 chunk served", "2 chunks served"', async () => {
    await helper.load([repository, chunkServer], [repo(), { id: 'chunks', type: 'chunk-server', repository: 'repo', dialect: 'thingsboard', singleDevice: 'd1', wires: [[], []] }]);
    const r = helper.getNode('repo').repo;
    const fw = (await r.firmware.store({ image: imageOf(5000), title: 'app', version: '1.0.0' })).record;
    await r.devices.register({ id: 'd1', dialect: 'thingsboard' });
    await trackerFor(r).assign(fw, [r.devices.get('d1')]).settled;
    const node = helper.getNode('chunks');
    const seen = texts(node);
    node.receive({ topic: 'v2/fw/request/1/chunk/0', payload: Buffer.from('1000') });
    node.receive({ topic: 'v2/fw/request/1/chunk/1', payload: Buffer.from('1000') });
    // At most one status a second: the second count follows the first.
    await h.until(() => seen.includes('2 chunks served'));
    assert.deepStrictEqual(seen.filter((t) => /served/.test(t)), ['1 chunk served', '2 chunks served']);
  });

  it('ota gateway: "1 device connected", "2 devices connected"', async () => {
    const broker = await h.startAedes();
    const clients = [];
    try {
      const port = await h.freePort();
      await helper.load([repository, gateway], [repo(), { id: 'gw', type: 'ota-gateway', repository: 'repo', host: '127.0.0.1', port, broker: broker.url, wires: [[]] }]);
      const r = helper.getNode('repo').repo;
      for (const n of [1, 2]) await r.devices.register({ id: `tb-${n}`, dialect: 'thingsboard', token: `tb-${n}-token` });
      const seen = texts(helper.getNode('gw'));
      await h.waitForPort(port);
      clients.push(await h.connect(`mqtt://127.0.0.1:${port}`, { username: 'tb-1-token', clientId: 'one' }));
      await h.until(() => seen.includes('1 device connected'));
      clients.push(await h.connect(`mqtt://127.0.0.1:${port}`, { username: 'tb-2-token', clientId: 'two' }));
      await h.until(() => seen.includes('2 devices connected'));
    } finally {
      await h.endAll(clients);
      await helper.unload();
      await broker.close();
    }
  });

  it('the Full pipeline\'s rollout summary shows its percent with the unit: "50 % updated (1 of 2)"', async () => {
    const flow = JSON.parse(fs.readFileSync(require.resolve('../../examples/Full pipeline.json'), 'utf8'));
    const debug = flow.find((n) => n.type === 'debug' && n.name === 'rollout summary');
    assert.strictEqual(debug.statusType, 'jsonata');
    const expr = util.prepareJSONataExpression(debug.statusVal, {});
    const text = await new Promise((resolve, reject) => util.evaluateJSONataExpression(expr, { payload: { percentDone: 50, updated: 1, total: 2 } }, (err, v) => (err ? reject(err) : resolve(v))));
    assert.strictEqual(text, '50 % updated (1 of 2)');
  });
});
