'use strict';
// Where the package's own nodes plug into the benchmark beside the hand-built flow. Each part is
// enabled only when this checkout of the package registers the node it needs, so the harness
// runs on any branch:
//  - chunk-server: `mqtt in` -> chunk-server -> `mqtt out` in the Node-RED that has the package,
//    ThingsBoard dialect, devices d0..dN registered and assigned the bench image beforehand;
//  - chunk-server-direct: the same node with "Reply directly" on a broker config node of its own (it
//    subscribes and publishes on that connection itself, no mqtt in or out);
//  - bare-in-red: the bare responder's own code run by a bench-only node inside that same Node-RED
//    (a connection of its own): what a responder with no flow and no package costs in that process.
// (The 10,000-device gateway scenario is in fleet.js.)
const fs = require('fs');
const path = require('path');
const { packageNodeTypes, brokerNode } = require('./flows');

const PREFIX = 'pkg0/';
const DIRECT_PREFIX = 'pkg1/';
const IN_RED_PREFIX = 'bred/';

/** A node in `userDir/nodes` (Node-RED loads those at start) running bare-responder.js's serve(). */
function writeBareInRedNode(userDir) {
  const dir = path.join(userDir, 'nodes');
  fs.mkdirSync(dir, { recursive: true });
  fs.writeFileSync(path.join(dir, 'bench-bare.js'), `'use strict';
module.exports = function (RED) {
  const { serve } = require(${JSON.stringify(path.join(__dirname, 'bare-responder.js'))});
  RED.nodes.registerType('bench-bare', function (config) {
    RED.nodes.createNode(this, config);
    const clients = [];
    const image = require('fs').readFileSync(config.imageFile);
    for (const url of config.urls) serve(url, config.prefix, image).then((c) => clients.push(c), (err) => this.error(err));
    this.on('close', (done) => { for (const c of clients) c.end(true); done(); });
  });
};
`);
  fs.writeFileSync(path.join(dir, 'bench-bare.html'), `<script type="text/javascript">RED.nodes.registerType('bench-bare', { category: 'bench', defaults: {}, inputs: 0, outputs: 0 });</script>\n`);
}

function hasChunkServer() {
  return packageNodeTypes().includes('chunk-server');
}

/** Extra flow nodes (appended to the hand-built flow, which has the `repo` config node). */
function flows({ brokers, imageFile, userDir }) {
  if (!hasChunkServer() || !brokers.length) return { nodes: [], targets: [] };
  writeBareInRedNode(userDir);
  const nodes = [{ id: 'bare-in-red', z: 'tab', type: 'bench-bare', prefix: IN_RED_PREFIX, imageFile, urls: brokers.map((b) => b.url), wires: [] }];
  brokers.forEach((b, i) => {
    // Each target has a connection of its own, as the bare responder has: on a shared one every
    // request would also run the other targets' subscription handlers.
    const broker = `broker-${b.name}-pkg`;
    const direct = `broker-${b.name}-direct`;
    nodes.push(brokerNode(broker, b.url), brokerNode(direct, b.url));
    nodes.push({ id: `pkg-in-${i}`, z: 'tab', type: 'mqtt in', topic: `${PREFIX}+/v2/fw/request/+/chunk/+`, qos: '1', datatype: 'buffer', broker, nl: false, rap: true, rh: 0, inputs: 0, wires: [[`pkg-cs-${i}`]] });
    nodes.push({
      id: `pkg-cs-${i}`, z: 'tab', type: 'chunk-server', repository: 'repo', dialect: 'thingsboard', prefix: `${PREFIX}{device}/`,
      maxChunkSize: 65536, cacheMB: 16, wires: [[`pkg-out-${i}`], []],
    });
    nodes.push({ id: `pkg-out-${i}`, z: 'tab', type: 'mqtt out', topic: '', qos: '', retain: '', broker, wires: [] });
    nodes.push({
      id: `pkg-direct-${i}`, z: 'tab', type: 'chunk-server', repository: 'repo', dialect: 'thingsboard', prefix: `${DIRECT_PREFIX}{device}/`,
      maxChunkSize: 65536, cacheMB: 16, broker: direct, wires: [[], []],
    });
  });
  return {
    nodes,
    targets: [
      { name: 'chunk-server', request: `${PREFIX}{dev}/v2/fw/request/{rid}/chunk/{n}`, response: `${PREFIX}{dev}/v2/fw/response/{rid}/chunk/{n}` },
      { name: 'chunk-server-direct', request: `${DIRECT_PREFIX}{dev}/v2/fw/request/{rid}/chunk/{n}`, response: `${DIRECT_PREFIX}{dev}/v2/fw/response/{rid}/chunk/{n}` },
      { name: 'bare-in-red', request: `${IN_RED_PREFIX}{dev}/v2/fw/request/{rid}/chunk/{n}`, response: `${IN_RED_PREFIX}{dev}/v2/fw/response/{rid}/chunk/{n}` },
    ],
  };
}

/** Registers ThingsBoard devices and assigns them a firmware; one file write for all of them. */
async function registerAndAssign(repo, record, ids) {
  await Promise.all(ids.filter((id) => !repo.devices.get(id)).map((id) => repo.devices.register({ id, dialect: 'thingsboard' })));
  if (record) for (const id of ids) repo.rollout.assign(id, 'thingsboard', record);
  await repo.flush();
}

/** Registers devices d0..d{count-1} (ThingsBoard) and assigns them `image`, before Node-RED starts. */
async function prepare(repo, image, count) {
  if (!hasChunkServer()) return;
  const { record } = await repo.firmware.store({ image, title: 'bench-chunks', version: '1.0.0' });
  await registerAndAssign(repo, record, Array.from({ length: count }, (_, i) => `d${i}`));
}

module.exports = { flows, prepare, registerAndAssign, hasChunkServer, PREFIX };
