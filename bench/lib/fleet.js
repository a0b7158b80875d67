'use strict';
// The fleet scenario: N ThingsBoard devices (10,000 by default) connected through the package's
// ota-gateway to a broker, each fetching one chunk from Node-RED (the package's chunk-server when
// this checkout has it, else the hand-built flow), and the resident memory of Node-RED and of the
// gateway sampled as the fleet grows. Enabled when dist/gateway exists.
// The gateway runs as the package's ota-gateway node inside Node-RED when this checkout has it,
// else in child processes. It holds two sockets per device, and a process here may open at most
// 20,000 files (hard limit, `ulimit -Hn`): inside Node-RED the fleet is capped at 9,000 devices;
// in child processes it is spread over ceil(N / 9,000) of them.
const fs = require('fs');
const path = require('path');
const { startNodeRed, ROOT } = require('../../scripts/node-red-runtime');
const { startMosquitto, startAedes, haveMosquitto } = require('./brokers');
const { spawnReady, stopChild, rssBytes, freePort } = require('./proc');
const { handBuiltFlow, brokerNode, packageNodeTypes } = require('./flows');
const { registerAndAssign, hasChunkServer } = require('./targets');
const { sig } = require('./stats');

const MIB = 1048576;
const PER_GATEWAY = 9000;
const PER_LOADGEN = 5000;
const IN_NODE_RED_MAX = 9000;

function available() {
  return fs.existsSync(path.join(ROOT, 'dist', 'gateway', 'index.js'));
}

function fleetFlow(broker, imageFile) {
  if (!hasChunkServer()) return { flow: handBuiltFlow({ brokers: [broker], prefix: 'ota/', imageFile, repository: {} }), server: 'flow+repo' };
  const b = brokerNode(`broker-${broker.name}`, broker.url);
  return {
    server: 'chunk-server',
    flow: [
      { id: 'tab', type: 'tab', label: 'fleet' },
      { id: 'repo', type: 'ota-repository', name: 'fleet', storageDir: 'mqtt-ota', maxImageMB: 64 },
      b,
      { id: 'in', z: 'tab', type: 'mqtt in', topic: 'ota/+/v2/fw/request/+/chunk/+', qos: '1', datatype: 'buffer', broker: b.id, nl: false, rap: true, rh: 0, inputs: 0, wires: [['cs']] },
      { id: 'cs', z: 'tab', type: 'chunk-server', repository: 'repo', dialect: 'thingsboard', prefix: 'ota/{device}/', maxChunkSize: 65536, cacheMB: 16, wires: [['out'], []] },
      { id: 'out', z: 'tab', type: 'mqtt out', topic: '', qos: '', retain: '', broker: b.id, wires: [] },
    ],
  };
}

const settle = () => new Promise((r) => setTimeout(r, 2000));

/**
 * @param {{devices: number, name: string}} s
 * @param {{tmp: string, log: Function, forkChild: Function, imageFile: string}} ctx
 */
async function runFleet(s, { tmp, log, forkChild, imageFile }) {
  const stops = [];
  const gens = [];
  try {
    const broker = haveMosquitto() ? await startMosquitto() : await startAedes();
    stops.push(() => broker.stop());
    const userDir = path.join(tmp, 'red-fleet');
    const repoDir = path.join(userDir, 'mqtt-ota');
    const { OtaRepository } = require(path.join(ROOT, 'dist', 'core', 'repository'));
    const repo = new OtaRepository({ dir: repoDir, maxImageBytes: 64 * MIB });
    const { record } = await repo.firmware.store({ image: fs.readFileSync(imageFile), title: 'fleet', version: '1.0.0' });
    // BENCH_FLEET_GATEWAY=process keeps the gateway out of Node-RED (for the full 10,000 here).
    const inNodeRed = packageNodeTypes().includes('ota-gateway') && process.env.BENCH_FLEET_GATEWAY !== 'process';
    const devices = inNodeRed ? Math.min(s.devices, IN_NODE_RED_MAX) : s.devices;
    const ids = Array.from({ length: devices }, (_, i) => `f${i}`);
    await registerAndAssign(repo, hasChunkServer() ? record : null, ids);
    log(`${s.name}: ${ids.length} devices registered`);

    const { flow, server } = fleetFlow({ name: broker.name, url: broker.url }, imageFile);
    const gateways = [];
    if (inNodeRed) {
      const port = await freePort();
      flow.push({ id: 'gw', z: 'tab', type: 'ota-gateway', repository: 'repo', host: '127.0.0.1', port, broker: broker.url, namespace: 'ota', identity: 'client-id', wires: [[]] });
      gateways.push({ pid: null, url: `mqtt://127.0.0.1:${port}` });
    }
    const red = await startNodeRed({ userDir, link: true, port: 0, flows: flow });
    stops.push(() => red.stop());
    for (let g = 0; !inNodeRed && g < Math.ceil(devices / PER_GATEWAY); g++) {
      const { child, info } = await spawnReady(path.join(__dirname, 'gateway-child.js'), [repoDir, broker.url]);
      stops.push(() => stopChild(child));
      gateways.push({ pid: child.pid, url: `mqtt://127.0.0.1:${info.port}` });
    }
    await settle();
    const mem = () => ({ redMiB: rssBytes(red.child.pid) / MIB, gatewayMiB: inNodeRed ? NaN : gateways.reduce((a, g) => a + rssBytes(g.pid), 0) / MIB });
    const samples = [{ devices: 0, ...mem() }];
    let connected = 0;
    let answered = 0;
    let failed = 0;
    const step = Math.max(1, Math.ceil(devices / 4));
    const t0 = Date.now();
    for (let from = 0; from < devices; from += step) {
      const to = Math.min(devices, from + step);
      // Each slice of devices: a gateway by index, a load generator per PER_LOADGEN devices.
      for (let a = from; a < to; a += PER_LOADGEN) {
        const b = Math.min(to, a + PER_LOADGEN);
        const gen = forkChild('fleet-devices.js');
        gens.push(gen);
        const r = await gen.ask({ cmd: 'connect', urls: gateways.map((g) => g.url), perGateway: PER_GATEWAY, from: a, to: b }, 300000);
        connected += r.connected;
        answered += r.answered;
        failed += r.failed;
      }
      await settle();
      samples.push({ devices: to, ...mem() });
      log(`${s.name}: ${to} devices connected (${answered} answered, ${failed} failed), Node-RED ${sig(samples.at(-1).redMiB)} MiB${inNodeRed ? '' : `, gateway ${sig(samples.at(-1).gatewayMiB)} MiB`}`);
    }
    const first = samples[0];
    const last = samples.at(-1);
    return {
      scenario: s.name, broker: broker.name, server, gateway: inNodeRed ? 'ota-gateway node in Node-RED' : `${gateways.length} gateway process(es)`,
      devices, ...(devices < s.devices ? { capped: `${devices} of ${s.devices}: two sockets per device, 20,000 open files per process here` } : {}),
      connected, answered, failed, seconds: sig((Date.now() - t0) / 1000),
      redRssMiB: samples.map((x) => sig(x.redMiB)), ...(inNodeRed ? {} : { gatewayRssMiB: samples.map((x) => sig(x.gatewayMiB)) }), at: samples.map((x) => x.devices),
      redKiBPerDevice: sig(((last.redMiB - first.redMiB) * 1024) / devices),
      ...(inNodeRed ? {} : { gatewayKiBPerDevice: sig(((last.gatewayMiB - first.gatewayMiB) * 1024) / devices) }),
    };
  } finally {
    for (const g of gens) await g.close();
    for (const stop of stops.reverse()) await stop().catch((e) => log(`fleet cleanup: ${e.message}`));
  }
}

module.exports = { available, runFleet };
