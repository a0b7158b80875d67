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
    assert.deepStrictEqual(dialects, ['biotz', 'sming', 'tago', 'tencent', 'thingsboard']);
  });

  for (const file of files) {
    it(`"${path.basename(file, '.json')}" deploys cleanly`, async function () {
      const flow = JSON.parse(fs.readFileSync(path.join(dir, file), 'utf8'));
      for (const n of flow) {
        if (n.type === 'mqtt-broker') { n.broker = '127.0.0.1'; n.port = String(broker.port); }
        if (n.type === 'ota-repository') n.storageDir = path.join(tmp, file);
        if (n.type === 'ota-gateway') Object.assign(n, { host: '127.0.0.1', port: '0', broker: `mqtt://127.0.0.1:${broker.port}` });
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
