'use strict';
// Every example flow shares one OTA repository and one mqtt-broker config node: the same id and
// settings in each file, so that Node-RED's import keeps the one already in the workspace
// ("Import copy") instead of adding a second repository on the same directory.
//   node scripts/examples-config.js          lists the examples that differ (exit 1 if any)
//   node scripts/examples-config.js --fix    rewrites them: the shared nodes, and every reference
const fs = require('fs');
const path = require('path');

const DIR = path.join(__dirname, '..', 'examples');

const REPOSITORY = { id: '5ca1ab1e0000a001', type: 'ota-repository', name: 'OTA repository', storageDir: 'mqtt-ota', maxImageMB: '16', urlTtlDays: '7', publicUrl: '', downloadPath: '/ota/dl', tcpNoDelay: true };
const BROKER = {
  id: '5ca1ab1e0000b001', type: 'mqtt-broker', name: 'local broker', broker: 'localhost', port: '1883', clientid: '', autoConnect: true, usetls: false,
  protocolVersion: '4', keepalive: '60', cleansession: true, autoUnsubscribe: true, birthTopic: '', closeTopic: '', willTopic: '', userProps: '', sessionExpiry: '',
};
const SHARED = { 'ota-repository': REPOSITORY, 'mqtt-broker': BROKER };

/** The flow with the shared config nodes in place of its own, and what changed. */
function withSharedConfig(flow) {
  const renamed = new Map();
  const out = flow.map((n) => {
    const shared = SHARED[n.type];
    if (!shared) return n;
    if (n.id !== shared.id) renamed.set(n.id, shared.id);
    return { ...shared };
  });
  for (const n of out) {
    if (SHARED[n.type]) continue;
    // Properties that hold a config node's id: repository (our nodes), broker (mqtt in/out), mqttBroker (gateway).
    for (const key of ['repository', 'broker', 'mqttBroker']) if (renamed.has(n[key])) n[key] = renamed.get(n[key]);
  }
  const changed = JSON.stringify(out) !== JSON.stringify(flow);
  return { flow: out, changed };
}

function main() {
  const fix = process.argv.includes('--fix');
  const differ = [];
  for (const file of fs.readdirSync(DIR).filter((f) => f.endsWith('.json'))) {
    const full = path.join(DIR, file);
    const { flow, changed } = withSharedConfig(JSON.parse(fs.readFileSync(full, 'utf8')));
    if (!changed) continue;
    differ.push(file);
    if (fix) fs.writeFileSync(full, `${JSON.stringify(flow, null, 1)}\n`);
  }
  for (const f of differ) console.log(`${fix ? 'fixed' : 'differs'}: ${f}`);
  if (differ.length && !fix) process.exitCode = 1;
}

if (require.main === module) main();

module.exports = { REPOSITORY, BROKER, withSharedConfig };
