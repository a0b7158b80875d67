'use strict';
const assert = require('assert');
const fs = require('fs');
const os = require('os');
const path = require('path');
const helper = require('node-red-node-test-helper');
const { startBroker } = require('../fixtures/broker');

helper.init(require.resolve('node-red'));

// Every example flow imports and deploys cleanly: all its nodes start, none reports an error, and
// its mqtt in nodes subscribe.

const CORE = '@node-red/nodes/core';
const NODES = [
  require('../../dist/nodes/ota-repository.js'),
  require('../../dist/nodes/firmware-store.js'),
  require('../../dist/nodes/ota-assign.js'),
  require('../../dist/nodes/chunk-server.js'),
  require('../../dist/nodes/progress-parser.js'),
  require('../../dist/nodes/ota-gateway.js'),
  require('../../dist/nodes/ota-rollout.js'),
  require(`${CORE}/network/10-mqtt.js`),
  require(`${CORE}/common/20-inject.js`),
  require(`${CORE}/common/21-debug.js`),
  require(`${CORE}/common/90-comment.js`),
  require(`${CORE}/storage/10-file.js`),
  require(`${CORE}/network/21-httpin.js`),
  require(`${CORE}/function/15-change.js`),
  require(`${CORE}/common/25-catch.js`),
  require(`${CORE}/function/10-switch.js`),
];

const dir = path.join(__dirname, '..', '..', 'examples');
const files = fs.readdirSync(dir).filter((f) => f.endsWith('.json'));

describe('example flows', function () {
  let broker;
  const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'ota-examples-'));
  before(async () => { broker = await startBroker(); });
  after(async () => {
    await broker.close();
    fs.rmSync(tmp, { recursive: true, force: true });
  });
  afterEach(() => helper.unload());

  it('there is one per dialect, and one for all of them behind the gateway', function () {
    const flows = files.map((f) => JSON.parse(fs.readFileSync(path.join(dir, f), 'utf8')));
    const assigns = flows.map((flow) => flow.find((n) => n.type === 'ota-assign' && n.dialect)).filter(Boolean);
    assert.ok(flows.some((flow) => flow.some((n) => n.type === 'ota-gateway') && flow.some((n) => n.type === 'ota-assign' && !n.dialect)));
    const dialects = assigns.map((n) => n.dialect).sort();
    assert.deepStrictEqual(dialects, ['biotz', 'sming', 'tago', 'tasmota', 'tencent', 'thingsboard']);
  });

  it('share one OTA repository and one mqtt-broker config node: same id, same settings (an import reuses them)', () => {
    // Importing a second example whose config node has a different id made a second repository
    // on the same directory (a warning on every deploy). With one id, Node-RED 4.1's import finds
    // the node already there and offers "Import copy", which keeps the existing config node.
    // @node-red/editor-client 4.1.15, public/red/red.js (src/js/ui/clipboard.js, src/js/nodes.js):
    // - clipboard importNodes (l. 47178): Import > Examples imports with generateIds: false; an
    //   id already present throws import_conflict (nodes importNodes, l. 6514-6547) and
    //   confirmImport (l. 47202) offers Cancel / View nodes... / Import copy;
    // - "Import copy" sets generateIds: true (l. 47217); then a config node without `z` whose id
    //   exists is kept, not created again (nodes importNodes, l. 6798-6845: existingConfigNode),
    //   and the imported flow nodes keep pointing at that id.
    const configs = (type) => files.map((f) => JSON.parse(fs.readFileSync(path.join(dir, f), 'utf8')).filter((n) => n.type === type)).flat();
    for (const type of ['ota-repository', 'mqtt-broker']) {
      const all = configs(type).map((n) => JSON.stringify(n));
      assert.ok(all.length >= 6 || type === 'mqtt-broker', `${type} in every example`);
      assert.deepStrictEqual([...new Set(all)], [all[0]], `${type}: one node, the same everywhere (node scripts/examples-config.js --fix)`);
    }
    const [broker] = configs('mqtt-broker');
    assert.deepStrictEqual([broker.broker, broker.port], ['localhost', '1883']);
    const [repo] = configs('ota-repository');
    assert.strictEqual(repo.publicUrl, '', 'no localhost download URL: the runtime uses this machine\'s address');
    for (const f of files) {
      const flow = JSON.parse(fs.readFileSync(path.join(dir, f), 'utf8'));
      for (const n of flow) {
        if (n.repository !== undefined) assert.strictEqual(n.repository, repo.id, `${f}: ${n.type} ${n.id}`);
        if (n.type === 'mqtt in' || n.type === 'mqtt out') assert.strictEqual(n.broker, broker.id, `${f}: ${n.type} ${n.id}`);
      }
    }
  });

  it('the gateway uses the flow\'s mqtt-broker node and listens where devices on the network reach it', () => {
    const flow = JSON.parse(fs.readFileSync(path.join(dir, 'Full pipeline.json'), 'utf8'));
    const gw = flow.find((n) => n.type === 'ota-gateway');
    const broker = flow.find((n) => n.type === 'mqtt-broker');
    assert.strictEqual(gw.mqttBroker, broker.id);
    assert.strictEqual(gw.broker, undefined, 'no broker URL of its own');
    assert.strictEqual(Number(gw.version), 2);
    assert.deepStrictEqual([gw.host, gw.port], ['0.0.0.0', '1884']);
    assert.match(flow[0].info, /listens on 0\.0\.0\.0:1884/, 'the choice is explained in the flow');
    assert.match(flow.find((n) => n.type === 'comment').info, /listens on 0\.0\.0\.0:1884, every network interface, because devices on your network must reach it/);
  });

  it('no example opens a write route on Node-RED\'s public HTTP server (no auth there without httpNodeAuth)', () => {
    for (const f of files) {
      const flow = JSON.parse(fs.readFileSync(path.join(dir, f), 'utf8'));
      const writes = flow.filter((n) => n.type === 'http in' && !['get', 'head', 'options'].includes(String(n.method).toLowerCase()));
      assert.deepStrictEqual(writes.map((n) => `${n.method} ${n.url}`), [], f);
    }
  });

  for (const file of files) {
    it(`"${path.basename(file, '.json')}" deploys cleanly`, async function () {
      const flow = JSON.parse(fs.readFileSync(path.join(dir, file), 'utf8'));
      for (const n of flow) {
        if (n.type === 'mqtt-broker') { n.broker = '127.0.0.1'; n.port = String(broker.port); }
        if (n.type === 'ota-repository') n.storageDir = path.join(tmp, file);
        if (n.type === 'ota-gateway') Object.assign(n, { host: '127.0.0.1', port: '0' });
      }
      await helper.load(NODES, flow);
      for (const n of flow) if (n.type !== 'tab') assert.ok(helper.getNode(n.id), `node ${n.type} ${n.id} started`);
      await broker.waitForSubscriptions(flow.filter((n) => n.type === 'mqtt in').map((n) => n.topic));
      const errors = helper.log().args.filter((a) => a[0].level === helper.log().ERROR || a[0].level === 20);
      assert.deepStrictEqual(errors.map((a) => a[0].msg), []);
      broker.subscribed.clear();
    });
  }
});
