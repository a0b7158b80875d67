'use strict';
// Node-RED flows the benchmarks deploy.
const fs = require('fs');
const path = require('path');
const { ROOT } = require('../../scripts/node-red-runtime');

// Hot path of the hand-built flow: the chunk a ThingsBoard device asks for, from an image the
// flow read into flow context at start. Topic: {prefix}{device}/v2/fw/request/{id}/chunk/{n}.
const CHUNK_FUNCTION = `
const image = flow.get('image');
if (!image) return null;
const parts = msg.topic.split('/');
const n = Number(parts[parts.length - 1]);
const size = Number(msg.payload) || image.length;
const start = n * size;
const payload = start >= image.length ? Buffer.alloc(0) : image.subarray(start, Math.min(image.length, start + size));
return { topic: msg.topic.replace('/request/', '/response/'), payload, qos: msg.qos, retain: false };
`;

function brokerNode(id, url) {
  const u = new URL(url);
  return {
    id, type: 'mqtt-broker', name: `bench ${u.port}`, broker: u.hostname, port: u.port, clientid: '', autoConnect: true, usetls: false,
    protocolVersion: '4', keepalive: '60', cleansession: true, autoUnsubscribe: true,
    birthTopic: '', closeTopic: '', willTopic: '',
  };
}

/**
 * `mqtt in` -> function -> `mqtt out` per broker (the hand-built flow), the image read
 * from a file at start. With `repository`, the flow also has an ota-repository config node
 * (what installing and using this package adds), which turns TCP_NODELAY on.
 * @param {{brokers: {name: string, url: string}[], prefix: string, imageFile: string, repository?: object}} o
 */
function handBuiltFlow({ brokers, prefix, imageFile, repository }) {
  const flow = [
    { id: 'tab', type: 'tab', label: 'bench' },
    { id: 'load', z: 'tab', type: 'inject', once: true, onceDelay: 0.1, repeat: '', topic: '', payload: '', payloadType: 'date', props: [{ p: 'payload' }], wires: [['read']] },
    { id: 'read', z: 'tab', type: 'file in', filename: imageFile, filenameType: 'str', format: '', chunk: false, sendError: false, encoding: 'none', allProps: false, wires: [['keep']] },
    { id: 'keep', z: 'tab', type: 'function', func: "flow.set('image', msg.payload);\nnode.status({ fill: 'green', shape: 'dot', text: msg.payload.length + ' bytes' });\nreturn null;", outputs: 1, wires: [[]] },
  ];
  if (repository) flow.push({ id: 'repo', type: 'ota-repository', name: 'bench', storageDir: 'mqtt-ota', maxImageMB: 64, ...repository });
  brokers.forEach((b, i) => {
    flow.push(brokerNode(`broker-${b.name}`, b.url));
    flow.push({ id: `in-${i}`, z: 'tab', type: 'mqtt in', topic: `${prefix}+/v2/fw/request/+/chunk/+`, qos: '1', datatype: 'utf8', broker: `broker-${b.name}`, nl: false, rap: true, rh: 0, inputs: 0, wires: [[`fn-${i}`]] });
    flow.push({ id: `fn-${i}`, z: 'tab', type: 'function', name: 'chunk', func: CHUNK_FUNCTION, outputs: 1, wires: [[`out-${i}`]] });
    flow.push({ id: `out-${i}`, z: 'tab', type: 'mqtt out', topic: '', qos: '', retain: '', broker: `broker-${b.name}`, wires: [] });
  });
  return flow;
}

/** Node types this checkout of the package registers (package.json "node-red".nodes). */
function packageNodeTypes() {
  const pkg = JSON.parse(fs.readFileSync(path.join(ROOT, 'package.json'), 'utf8'));
  return Object.keys((pkg['node-red'] && pkg['node-red'].nodes) || {});
}

module.exports = { handBuiltFlow, brokerNode, packageNodeTypes, CHUNK_FUNCTION };
