'use strict';
// `npm start`: the whole pipeline on this machine, nothing else to install.
// An embedded MQTT broker (aedes) on 127.0.0.1, stock Node-RED 4 with this package linked into
// a user directory inside the repository (.demo/, git-ignored) and the demo flow deployed.
//
// Environment: NODE_RED_PORT (default 1880), OTA_MQTT_PORT (default 1883), OTA_BROKER_URL to use
// an existing broker instead of the embedded one.
const fs = require('fs');
const net = require('net');
const path = require('path');
const { startNodeRed, ROOT } = require('./node-red-runtime');
const { demoFlow } = require('./demo-flow');

const args = new Set(process.argv.slice(2));
const NODE_RED_PORT = Number(process.env.NODE_RED_PORT || 1880);
const MQTT_PORT = Number(process.env.OTA_MQTT_PORT || 1883);
const USER_DIR = path.join(ROOT, '.demo');

async function startBroker(port) {
  const { Aedes } = require('aedes');
  const broker = await Aedes.createBroker();
  const server = net.createServer((socket) => {
    socket.setNoDelay(true);
    broker.handle(socket);
  });
  await new Promise((resolve, reject) => {
    server.once('error', reject);
    server.listen(port, '127.0.0.1', resolve);
  });
  return {
    url: `mqtt://127.0.0.1:${server.address().port}`,
    async stop() {
      await new Promise((r) => broker.close(r));
      await new Promise((r) => server.close(r));
    },
  };
}

async function main() {
  const stops = [];
  let stopping = false;
  const stopAll = async () => {
    if (stopping) return;
    stopping = true;
    console.log('\nStopping…');
    for (const stop of stops.reverse()) await stop().catch((e) => console.error(e.message));
    process.exit(0);
  };
  process.on('SIGINT', stopAll);
  process.on('SIGTERM', stopAll);

  let brokerUrl = process.env.OTA_BROKER_URL;
  if (!brokerUrl) {
    const broker = await startBroker(MQTT_PORT);
    stops.push(() => broker.stop());
    brokerUrl = broker.url;
    console.log(`MQTT broker (embedded aedes) on ${brokerUrl}`);
  } else {
    console.log(`MQTT broker: ${brokerUrl} (OTA_BROKER_URL)`);
  }

  fs.mkdirSync(USER_DIR, { recursive: true });
  const red = await startNodeRed({
    userDir: USER_DIR,
    port: NODE_RED_PORT,
    flows: demoFlow({ brokerUrl }),
    onLog: (line) => { if (/\[(error|warn)\]/.test(line) && !/Projects disabled|credentials/.test(line)) console.log(`node-red: ${line}`); },
  });
  stops.push(() => red.stop());
  console.log(`Node-RED editor: ${red.url}/  (user directory ${path.relative(process.cwd(), USER_DIR) || '.'})`);
  if (!args.has('--no-fleet')) console.log('No simulated fleet yet in this build: register devices and firmware through the flow.');
  console.log('Press Ctrl-C to stop.');
}

main().catch((err) => {
  console.error(err);
  process.exit(1);
});
