'use strict';
// `npm start`: the whole pipeline on this machine, nothing else to install.
//   simulated devices ──► ota-gateway (:OTA_MQTT_PORT) ──► broker ◄── Node-RED (:NODE_RED_PORT)
// An embedded aedes broker (or OTA_BROKER_URL), stock Node-RED 4 with this package linked into
// .demo/ (git-ignored) and the "Full pipeline" example deployed, a demo image registered and
// assigned through the admin API, and a simulated fleet of all six dialects updating while you
// watch. Ctrl-C stops everything.
//
//   npm start                      # the lot
//   npm start -- --no-fleet        # server side only, for real devices
//   NODE_RED_PORT=1880 OTA_MQTT_PORT=1884 OTA_DEMO_DEVICES=3 OTA_BROKER_URL=mqtt://host:1883
//   OTA_BIND=0.0.0.0 OTA_PUBLIC_URL=http://192.168.1.10:1880   # real devices on the network
const fs = require('fs');
const net = require('net');
const path = require('path');
const { ROOT } = require('./node-red-runtime');
const { startPipeline, fleetPlan, registerDevices, rollOut } = require('./pipeline');

const args = new Set(process.argv.slice(2));
const NODE_RED_PORT = Number(process.env.NODE_RED_PORT || 1880);
// 1884, not 1883: a Node-RED machine often runs its own broker on 1883 already.
const DEVICE_PORT = Number(process.env.OTA_MQTT_PORT || 1884);
// Everything listens on loopback unless told otherwise: a demo must not open ports to the network.
const BIND = process.env.OTA_BIND || '127.0.0.1';
const PUBLIC_URL = process.env.OTA_PUBLIC_URL || undefined;
const COUNT = Math.max(1, Math.min(200, Number(process.env.OTA_DEMO_DEVICES || 3)));
const USER_DIR = path.join(ROOT, '.demo');

/** Fails early, saying which variable to set, when a port we must listen on is taken. */
async function checkPort(port, variable) {
  const server = net.createServer();
  await new Promise((resolve, reject) => {
    server.once('error', (err) => reject(err.code === 'EADDRINUSE' ? new Error(`port ${port} is in use on ${BIND}: set ${variable} to a free port`) : err));
    server.listen(port, BIND, () => server.close(resolve));
  });
}

async function main() {
  await checkPort(NODE_RED_PORT, 'NODE_RED_PORT');
  await checkPort(DEVICE_PORT, 'OTA_MQTT_PORT');
  let pipeline = null;
  let fleet = null;
  let display = null;
  let stopping = false;
  const stopAll = async () => {
    if (stopping) return;
    stopping = true;
    display?.stop();
    console.log('\nStopping…');
    if (fleet) await fleet.stop().catch(() => {});
    if (pipeline) await pipeline.stop();
    process.exit(0);
  };
  process.on('SIGINT', stopAll);
  process.on('SIGTERM', stopAll);

  // Each run starts from a clean repository: the simulated devices start over at 1.0.0 too.
  fs.rmSync(path.join(USER_DIR, 'mqtt-ota'), { recursive: true, force: true });
  const say = (line) => (display ? display.log(line) : console.log(line));
  pipeline = await startPipeline({
    userDir: USER_DIR,
    nodeRedPort: NODE_RED_PORT,
    devicePort: DEVICE_PORT,
    brokerUrl: process.env.OTA_BROKER_URL || undefined,
    bindHost: BIND,
    publicUrl: PUBLIC_URL,
    onLog: (line) => {
      if (/\[(error|warn)\]/.test(line) && !/Projects disabled|Encrypted credentials/.test(line)) say(`node-red: ${line}`);
    },
  });
  console.log(`Broker:           ${pipeline.brokerUrl}${process.env.OTA_BROKER_URL ? ' (OTA_BROKER_URL)' : ' (embedded aedes)'}`);
  console.log(`Devices connect:  ${pipeline.deviceUrl}  (the ota-gateway node)`);
  console.log(`Node-RED editor:  ${pipeline.red.url}/   (user directory ${path.relative(process.cwd(), USER_DIR) || '.'})`);
  console.log(`Admin API:        ${pipeline.red.url}/ota/devices, /ota/firmware, /ota/assignments, /ota/rollout`);
  console.log(`Download URLs:    ${pipeline.publicUrl}/ota/dl/…  (OTA_PUBLIC_URL)`);

  if (args.has('--no-fleet')) {
    console.log('\nNo simulated fleet (--no-fleet). Register a real device, store firmware and assign it:');
    console.log(`  curl -X POST ${pipeline.red.url}/ota/devices -H 'Content-Type: application/json' \\`);
    console.log(`       -d '{"id":"my-esp32","dialect":"thingsboard","token":"MY_TOKEN","tags":["lab"]}'`);
    console.log(`  curl -X POST '${pipeline.red.url}/ota/firmware?title=my-app&version=1.2.0' \\`);
    console.log(`       -H 'Content-Type: application/octet-stream' --data-binary @build/my-app.bin`);
    console.log(`  curl -X POST ${pipeline.red.url}/ota/assignments -H 'Content-Type: application/json' \\`);
    console.log(`       -d '{"firmware":{"title":"my-app","version":"1.2.0"},"tag":"lab"}'`);
    console.log('A Tencent device as its SDK logs in (client id {product}{device}, username signed with its device secret):');
    console.log(`  curl -X POST ${pipeline.red.url}/ota/devices -H 'Content-Type: application/json' \\`);
    console.log(`       -d '{"id":"dev001","dialect":"tencent","attributes":{"product":"MYPRODUCT1"},"deviceSecret":"<from device_info.json>","tags":["lab"]}'`);
    if (BIND === '127.0.0.1' || BIND === '::1' || BIND === 'localhost') {
      console.log(`Point the device at ${pipeline.deviceUrl} (ThingsBoard: the token as MQTT username).`);
      console.log(`Everything listens on ${BIND} only. For devices on your network start with`);
      console.log(`  OTA_BIND=0.0.0.0 OTA_PUBLIC_URL=http://<this machine's address>:${pipeline.red.port} npm start -- --no-fleet`);
    } else {
      if (!PUBLIC_URL) console.log(`Set OTA_PUBLIC_URL=http://<this machine's address>:${pipeline.red.port}: the download URLs devices get say ${pipeline.publicUrl}.`);
      console.log(`Point the device at port ${new URL(pipeline.deviceUrl).port} of this machine (ThingsBoard: the token as MQTT username).`);
    }
    console.log('Press Ctrl-C to stop.');
    return;
  }

  const { startFleet, ProgressDisplay } = require('../dist/sim');
  const plan = fleetPlan({ count: COUNT });
  await registerDevices(pipeline.api, plan);
  fleet = await startFleet({ broker: pipeline.deviceUrl, groups: plan.groups, retryDelayMs: 1000 });
  console.log(`\n${fleet.devices.length} simulated devices connected (${COUNT} per dialect). Assigning demo-app 1.1.0 (Sming: 1.0.1)…\n`);
  display = new ProgressDisplay(fleet);
  display.start();
  const started = Date.now();
  await rollOut(pipeline.api, plan);
  try {
    await fleet.waitAllUpdated(120000);
    display.draw();
    display.stop();
    display = null;
    console.log(`\nEvery device runs its new image (${((Date.now() - started) / 1000).toFixed(1)} s).`);
    // The repository hears the last reports a moment later (Biotz and Sming devices report
    // nothing: the gateway sees them restart into the new firmware). Bounded wait.
    let summary;
    for (let i = 0; i < 50; i++) {
      ({ summary } = await pipeline.api.rollout());
      if (summary.updated === summary.total) break;
      await new Promise((r) => setTimeout(r, 200));
    }
    const inferred = (await pipeline.api.rollout()).devices.filter((d) => d.inferred).length;
    console.log(`Repository: ${summary.updated} of ${summary.total} updated (${inferred} inferred from the gateway: Biotz and Sming devices send no reports), ${summary.failed + summary.timed_out} failed.`);
  } catch (err) {
    say(`Not every device updated: ${err.message}`);
  }
  console.log(`\nThe editor stays up at ${pipeline.red.url}/ — node status dots show the rollout. Press Ctrl-C to stop.`);
}

main().catch((err) => {
  console.error(`npm start: ${err.message}`);
  process.exit(1);
});
