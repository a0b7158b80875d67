'use strict';
// Where the package's own nodes plug into the benchmark beside the hand-built flow. Each part is
// enabled only when this checkout of the package registers the node it needs, so the harness
// runs on any branch:
//  - chunk-server: `mqtt in` -> chunk-server -> `mqtt out` in the Node-RED that has the package,
//    ThingsBoard dialect, devices d0..dN registered and assigned the bench image beforehand;
//  - chunk-server-direct: the same node with "Reply directly" on the same broker config node (it
//    subscribes and publishes on that connection itself, no mqtt in or out);
// (The 10,000-device gateway scenario is in fleet.js.)
const { packageNodeTypes, brokerNode } = require('./flows');

const PREFIX = 'pkg0/';
const DIRECT_PREFIX = 'pkg1/';

function hasChunkServer() {
  return packageNodeTypes().includes('chunk-server');
}

/** Extra flow nodes (appended to the hand-built flow, which has the `repo` config node). */
function flows({ brokers }) {
  if (!hasChunkServer() || !brokers.length) return { nodes: [], targets: [] };
  const nodes = [];
  brokers.forEach((b, i) => {
    const broker = brokerNode(`broker-${b.name}`, b.url).id; // the hand-built flow defines it
    nodes.push({ id: `pkg-in-${i}`, z: 'tab', type: 'mqtt in', topic: `${PREFIX}+/v2/fw/request/+/chunk/+`, qos: '1', datatype: 'buffer', broker, nl: false, rap: true, rh: 0, inputs: 0, wires: [[`pkg-cs-${i}`]] });
    nodes.push({
      id: `pkg-cs-${i}`, z: 'tab', type: 'chunk-server', repository: 'repo', dialect: 'thingsboard', prefix: `${PREFIX}{device}/`,
      maxChunkSize: 65536, cacheMB: 16, wires: [[`pkg-out-${i}`], []],
    });
    nodes.push({ id: `pkg-out-${i}`, z: 'tab', type: 'mqtt out', topic: '', qos: '', retain: '', broker, wires: [] });
    nodes.push({
      id: `pkg-direct-${i}`, z: 'tab', type: 'chunk-server', repository: 'repo', dialect: 'thingsboard', prefix: `${DIRECT_PREFIX}{device}/`,
      maxChunkSize: 65536, cacheMB: 16, broker, wires: [[], []],
    });
  });
  return {
    nodes,
    targets: [
      { name: 'chunk-server', request: `${PREFIX}{dev}/v2/fw/request/{rid}/chunk/{n}`, response: `${PREFIX}{dev}/v2/fw/response/{rid}/chunk/{n}` },
      { name: 'chunk-server-direct', request: `${DIRECT_PREFIX}{dev}/v2/fw/request/{rid}/chunk/{n}`, response: `${DIRECT_PREFIX}{dev}/v2/fw/response/{rid}/chunk/{n}` },
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
