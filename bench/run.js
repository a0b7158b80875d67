#!/usr/bin/env node
'use strict';
// `npm run bench` (= npm run build && node bench/run.js): chunk serving and download benchmarks
// on loopback. Starts its own brokers, a bare mqtt.js responder, stock Node-RED and Node-RED with
// this package, then drives them with simulated devices; prints one JSON line per scenario and a
// summary table. Ratios compare targets measured in the same run, alternating, median of --reps.
//
//   node bench/run.js [--quick] [--scenario substr[,substr]] [--reps 3] [--seconds 3] [--list]
//   node bench/run.js --table bench/results/<file>.jsonl     (print the table of an earlier run)
//
// Targets (MQTT, ThingsBoard chunk protocol, 1 MiB image):
//   bare        mqtt.js client holding the image (the baseline; TCP_NODELAY on)
//   flow-stock  stock Node-RED 4, hand-built `mqtt in` -> function -> `mqtt out` (package absent)
//   flow+repo   the same flow in Node-RED with this package and an ota-repository config node
//               (which turns TCP_NODELAY on for Node-RED's broker connections)
//   + the targets of bench/lib/targets.js: chunk-server (wired), chunk-server-direct (Reply
//     directly) and bare-in-red (the bare responder's code inside that Node-RED)
// Also: fleet/gateway/10000dev (bench/lib/fleet.js) and rollout/engine/10000dev (bench/rollout.js:
// time from the report that crosses a rollout's error threshold to paused, engine time per device
// report, bytes written per device report; median of --reps runs).
// Every loop is bounded in count and time; everything listens on 127.0.0.1 and stops by itself.
const fs = require('fs');
const os = require('os');
const path = require('path');
const { execFile, fork } = require('child_process');
const mqtt = require('mqtt');
const { startNodeRed, ROOT } = require('../scripts/node-red-runtime');
const { startMosquitto, startAedes, haveMosquitto } = require('./lib/brokers');
const { spawnReady, stopChild, machine, rssBytes, cpuMicros } = require('./lib/proc');
const { median, sig } = require('./lib/stats');
const { handBuiltFlow } = require('./lib/flows');
const extraTargets = require('./lib/targets');
const fleet = require('./lib/fleet');
const { startNginx } = require('./lib/nginx');

const MIB = 1048576;
const IMAGE_SIZE = 1 * MIB;
const HTTP_IMAGE_SIZE = 16 * MIB;

// ---------------------------------------------------------------- arguments and scenarios
function parseArgs(argv) {
  const o = { quick: false, scenario: [], reps: 3, seconds: null, warmup: null, list: false, out: null, table: null };
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i];
    if (a === '--quick') o.quick = true;
    else if (a === '--list') o.list = true;
    else if (a === '--scenario') o.scenario.push(...String(argv[++i]).split(','));
    else if (a === '--reps') o.reps = Math.max(1, Math.min(9, Number(argv[++i]) || 3));
    else if (a === '--seconds') o.seconds = Math.max(0.5, Math.min(60, Number(argv[++i]) || 3));
    else if (a === '--out') o.out = argv[++i];
    else if (a === '--table') o.table = argv[++i];
    else if (a === '--help' || a === '-h') { console.log(fs.readFileSync(path.join(__dirname, 'run.js'), 'utf8').split('\n').slice(2, 17).join('\n')); process.exit(0); }
    else throw new Error(`unknown argument ${a}`);
  }
  o.seconds = o.seconds ?? (o.quick ? 2 : 3);
  o.warmup = o.quick ? 0.5 : 1;
  return o;
}

function allScenarios() {
  const list = [];
  for (const broker of ['mosquitto', 'aedes']) {
    for (const qos of [1, 0]) {
      for (const chunk of [4096, 65536]) {
        for (const devices of [1, 10, 100, 1000]) {
          list.push({ kind: 'mqtt', name: `mqtt/${broker}/qos${qos}/${chunk / 1024}k/${devices}dev`, broker, qos, chunk, devices });
        }
      }
    }
  }
  for (const connections of [1, 10, 100]) list.push({ kind: 'http', name: `http/16MiB/${connections}conn`, connections });
  list.push({ kind: 'fleet', name: 'fleet/gateway/10000dev', devices: 10000 });
  list.push({ kind: 'rollout', name: 'rollout/engine/10000dev', devices: 10000 });
  return list;
}

const QUICK = [
  'mqtt/mosquitto/qos1/4k/1dev', 'mqtt/mosquitto/qos1/4k/10dev', 'mqtt/mosquitto/qos1/4k/100dev', 'mqtt/mosquitto/qos1/4k/1000dev',
  'mqtt/mosquitto/qos1/64k/1dev', 'mqtt/mosquitto/qos0/4k/1dev', 'mqtt/aedes/qos1/4k/1dev', 'mqtt/aedes/qos1/4k/100dev',
  'http/16MiB/1conn', 'http/16MiB/10conn', 'http/16MiB/100conn', 'fleet/gateway/10000dev', 'rollout/engine/10000dev',
];

function select(opts) {
  let list = allScenarios();
  if (opts.quick) list = list.filter((s) => QUICK.includes(s.name));
  if (opts.scenario.length) list = list.filter((s) => opts.scenario.some((p) => s.name.includes(p)));
  if (!haveMosquitto()) list = list.filter((s) => s.broker !== 'mosquitto');
  return list;
}

// ---------------------------------------------------------------- fixtures
/** Deterministic pseudo-random bytes (xorshift32), so every run serves the same image. */
function imageOf(size, seed) {
  const buf = Buffer.alloc(size);
  let x = seed >>> 0 || 1;
  for (let i = 0; i + 4 <= size; i += 4) {
    x ^= x << 13; x >>>= 0; x ^= x >>> 17; x ^= x << 5; x >>>= 0;
    buf.writeUInt32LE(x, i);
  }
  return buf;
}

function prefixed(prefix) {
  return { request: `${prefix}{dev}/v2/fw/request/{rid}/chunk/{n}`, response: `${prefix}{dev}/v2/fw/response/{rid}/chunk/{n}` };
}

/** Waits until a target answers a chunk request (Node-RED reads its image after start). */
async function probe(url, target, ms = 30000) {
  const client = mqtt.connect(url, { reconnectPeriod: 0, clientId: `bench-probe-${process.pid}-${Date.now() % 100000}` });
  try {
    await new Promise((resolve, reject) => { client.once('connect', resolve); client.once('error', reject); });
    const rid = 'probe';
    const fill = (t, n) => t.replace('{dev}', 'd0').replace('{rid}', rid).replace('{n}', n);
    await client.subscribeAsync(fill(target.response, '+'), { qos: 1 });
    const deadline = Date.now() + ms;
    const answered = new Promise((resolve) => client.on('message', resolve));
    while (Date.now() < deadline) {
      client.publish(fill(target.request, '0'), '4096', { qos: 1 });
      const ok = await Promise.race([answered.then(() => true), new Promise((r) => setTimeout(() => r(false), 500))]);
      if (ok) return;
    }
    throw new Error(`${target.name} on ${url} did not answer a chunk request within ${ms} ms`);
  } finally {
    client.end(true);
  }
}

// ---------------------------------------------------------------- children over IPC
function forkChild(script) {
  const child = fork(path.join(__dirname, 'lib', script), [], { stdio: ['ignore', 'inherit', 'inherit', 'ipc'] });
  const ask = (msg, ms) => new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`${script}: no answer to ${msg.cmd} in ${ms} ms`)), ms);
    const onMsg = (m) => {
      clearTimeout(timer);
      child.off('exit', onExit);
      if (m.error) reject(new Error(m.error));
      else resolve(m);
    };
    const onExit = (code) => { clearTimeout(timer); child.off('message', onMsg); reject(new Error(`${script} exited (${code})`)); };
    child.once('message', onMsg);
    child.once('exit', onExit);
    child.send(msg);
  });
  return { child, ask, close: async () => { try { child.send({ cmd: 'close' }); } catch { /* gone */ } await stopChild(child, 8000); } };
}

function rotate(arr, k) {
  const n = k % arr.length;
  return arr.slice(n).concat(arr.slice(0, n));
}

/** Median per metric over repetitions, and ratios to `base` (median of per-repetition ratios too). */
function summarise(runs, base, metric) {
  const out = {};
  for (const [name, rs] of Object.entries(runs)) {
    const m = {};
    // A run with no completed request reports null percentiles (NaN over IPC): take keys from all.
    const keys = [...new Set(rs.flatMap((r) => Object.keys(r)))];
    for (const key of keys) {
      const sample = rs.map((r) => r[key]).find((v) => v !== null && v !== undefined);
      if (typeof sample === 'number') m[key] = sig(median(rs.map((r) => (typeof r[key] === 'number' ? r[key] : NaN))), 4);
      else if (sample && typeof sample === 'object') {
        m[key] = {};
        for (const k of Object.keys(sample)) m[key][k] = sig(median(rs.map((r) => (r[key] ? r[key][k] : NaN))), 3);
      }
    }
    if (name !== base && runs[base]) {
      m.ratio = sig(m[metric] / median(runs[base].map((r) => r[metric])), 3);
      m.pairedRatio = sig(median(rs.map((r, i) => r[metric] / runs[base][i][metric])), 3);
    }
    out[name] = m;
  }
  return out;
}

// ---------------------------------------------------------------- main
async function main() {
  const opts = parseArgs(process.argv.slice(2));
  if (opts.table) {
    printTable(fs.readFileSync(opts.table, 'utf8').split('\n').filter(Boolean).map((l) => JSON.parse(l)));
    return;
  }
  const scenarios = select(opts);
  if (opts.list) { for (const s of scenarios) console.log(s.name); return; }
  if (!scenarios.length) throw new Error('no scenario matches');

  const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'ota-bench-'));
  const stops = [];
  let stopping = false;
  const cleanup = async () => {
    if (stopping) return;
    stopping = true;
    for (const stop of stops.reverse()) await stop().catch((e) => console.error(`cleanup: ${e.message}`));
    fs.rmSync(tmp, { recursive: true, force: true });
  };
  for (const sigName of ['SIGINT', 'SIGTERM']) process.once(sigName, () => { cleanup().then(() => process.exit(130)); });
  // The whole run is bounded too.
  const hardStop = setTimeout(() => { console.error('bench: overall time limit reached'); cleanup().then(() => process.exit(2)); }, 90 * 60000);
  hardStop.unref();

  const log = (...a) => console.error('#', ...a);
  const results = [];
  const outFile = opts.out || path.join(__dirname, 'results', `${new Date().toISOString().replace(/[:.]/g, '-')}.jsonl`);
  fs.mkdirSync(path.dirname(outFile), { recursive: true });
  const emit = (obj) => {
    const line = JSON.stringify(obj);
    console.log(line);
    fs.appendFileSync(outFile, line + '\n');
    results.push(obj);
  };
  emit({ machine: machine(), args: process.argv.slice(2), started: new Date().toISOString() });

  try {
    const imageFile = path.join(tmp, 'image.bin');
    fs.writeFileSync(imageFile, imageOf(IMAGE_SIZE, 1));
    const mqttScenarios = scenarios.filter((s) => s.kind === 'mqtt');
    const httpScenarios = scenarios.filter((s) => s.kind === 'http');
    const brokerNames = [...new Set(mqttScenarios.map((s) => s.broker))];

    // Brokers.
    const brokers = {};
    for (const name of brokerNames) {
      brokers[name] = name === 'mosquitto' ? await startMosquitto() : await startAedes();
      stops.push(() => brokers[name].stop());
      log(`${name} on ${brokers[name].url} (pid ${brokers[name].pid})`);
    }
    const brokerList = Object.values(brokers).map((b) => ({ name: b.name, url: b.url }));

    // Targets.
    const targets = [];
    if (brokerList.length) {
      const { child } = await spawnReady(path.join(__dirname, 'lib', 'bare-responder.js'), [imageFile, 'bare/', ...brokerList.map((b) => b.url)]);
      stops.push(() => stopChild(child));
      targets.push({ name: 'bare', pid: child.pid, ...prefixed('bare/') });
    }
    const needPackageRed = brokerList.length || httpScenarios.length;
    let http = null;
    if (brokerList.length) {
      const red = await startNodeRed({
        userDir: path.join(tmp, 'red-stock'), link: false, port: 0,
        flows: handBuiltFlow({ brokers: brokerList, prefix: 'nred/', imageFile }),
      });
      stops.push(() => red.stop());
      targets.push({ name: 'flow-stock', pid: red.child.pid, ...prefixed('nred/') });
      log(`stock Node-RED (package not installed) pid ${red.child.pid}`);
    }
    if (needPackageRed) {
      const userDir = path.join(tmp, 'red-package');
      http = await prepareRepository(userDir, {
        http: httpScenarios.length > 0,
        chunkImage: fs.readFileSync(imageFile),
        devices: Math.max(1, ...mqttScenarios.map((s) => s.devices)),
      });
      if (!httpScenarios.length) http = null;
      const flows = handBuiltFlow({ brokers: brokerList, prefix: 'nota/', imageFile, repository: {} });
      const extra = extraTargets.flows({ brokers: brokerList, imageFile, userDir });
      flows.push(...extra.nodes);
      // BENCH_SYNC_DELIVERY=1: Node-RED's runtimeSyncDelivery setting (messages passed between
      // nodes in the same tick), to measure what the asynchronous hops cost at low device counts.
      const settings = process.env.BENCH_SYNC_DELIVERY === '1' ? { runtimeSyncDelivery: true } : {};
      const red = await startNodeRed({ userDir, link: true, port: 0, flows, settings });
      stops.push(() => red.stop());
      if (brokerList.length) targets.push({ name: 'flow+repo', pid: red.child.pid, ...prefixed('nota/') });
      for (const t of extra.targets) targets.push({ pid: red.child.pid, ...t });
      if (http) http.red = red;
      log(`Node-RED with the package pid ${red.child.pid}${extra.targets.length ? `, extra targets: ${extra.targets.map((t) => t.name).join(', ')}` : ''}`);
    }
    for (const b of Object.values(brokers)) for (const t of targets) await probe(b.url, t);

    for (const s of scenarios) {
      if (s.kind === 'mqtt') emit(await runMqtt(s, brokers[s.broker], targets, opts, log));
      else if (s.kind === 'http') emit(await runHttp(s, http, opts, log, stops, tmp));
      else if (s.kind === 'fleet') emit(await runFleet(s, { tmp, log, imageFile }));
      else if (s.kind === 'rollout') emit(await runRollout(s, opts, log));
    }
  } finally {
    await cleanup();
  }
  printTable(results);
  console.error(`# results in ${path.relative(process.cwd(), outFile)}`);
}

async function runMqtt(s, broker, targets, opts, log) {
  log(`${s.name}: connecting ${s.devices} devices`);
  const gen = forkChild('loadgen.js');
  try {
    const c = await gen.ask({ cmd: 'connect', url: broker.url, devices: s.devices, filters: targets.map((t) => t.response) }, 120000);
    const runs = Object.fromEntries(targets.map((t) => [t.name, []]));
    for (let rep = 0; rep < opts.reps; rep++) {
      for (const t of rotate(targets, rep)) {
        const { result } = await gen.ask({
          cmd: 'run', target: { request: t.request, response: t.response }, qos: s.qos, chunk: s.chunk, imageSize: IMAGE_SIZE,
          warmup: opts.warmup, seconds: opts.seconds, timeoutMs: 10000, pids: { broker: broker.pid, server: t.pid },
        }, (opts.warmup + opts.seconds + 15) * 1000);
        runs[t.name].push(result);
        log(`${s.name} ${t.name} rep ${rep + 1}: ${Math.round(result.chunksPerSec)} chunks/s, p50 ${sig(result.p50ms)} ms${result.errors || result.timeouts ? `, ${result.errors} errors, ${result.timeouts} timeouts` : ''}`);
      }
    }
    return { scenario: s.name, broker: s.broker, qos: s.qos, chunkBytes: s.chunk, devices: s.devices, imageBytes: IMAGE_SIZE, connectMs: c.ms, reps: opts.reps, seconds: opts.seconds, targets: summarise(runs, 'bare', 'chunksPerSec') };
  } finally {
    await gen.close();
  }
}

/**
 * Fills the repository directory Node-RED will open: a 16 MiB image for the download route, and
 * whatever the package's chunk-server target needs (devices with the 1 MiB image assigned).
 */
async function prepareRepository(userDir, { http, chunkImage, devices }) {
  const { OtaRepository } = require(path.join(ROOT, 'dist', 'core', 'repository'));
  const repo = new OtaRepository({ dir: path.join(userDir, 'mqtt-ota'), maxImageBytes: 64 * MIB });
  await extraTargets.prepare(repo, chunkImage, devices);
  if (!http) return null;
  const { record } = await repo.firmware.store({ image: imageOf(HTTP_IMAGE_SIZE, 2), title: 'bench', version: '1.0.0' });
  await repo.flush();
  return { repo, record, file: repo.firmware.blobPath(record), size: record.size, red: null };
}

async function runHttp(s, http, opts, log, stops, tmp) {
  if (!http.plain) {
    const { child, info } = await spawnReady(path.join(__dirname, 'lib', 'plain-http.js'), [http.file]);
    stops.push(() => stopChild(child));
    http.plain = { pid: child.pid, url: `http://127.0.0.1:${info.port}/image.bin` };
  }
  if (http.nginx === undefined) {
    // null when nginx is not installed: the table then compares with the plain server only.
    http.nginx = await startNginx(http.file, path.join(tmp, 'nginx'));
    if (http.nginx) stops.push(http.nginx.stop);
    log(http.nginx ? `nginx pid ${http.nginx.pid} on ${http.nginx.url}` : 'nginx not installed: not compared');
  }
  const routeUrls = Array.from({ length: s.connections }, (_, i) => `${http.red.url}${http.repo.downloadUrl(http.record, `bench-${i}`)}`);
  const targets = [
    { name: 'plain', pid: http.plain.pid, urls: [http.plain.url] },
    { name: 'route', pid: http.red.child.pid, urls: routeUrls },
  ];
  if (http.nginx) targets.push({ name: 'nginx', pid: http.nginx.pid, urls: [http.nginx.url] });
  const runs = Object.fromEntries(targets.map((t) => [t.name, []]));
  // Background work in Node-RED (left over from earlier scenarios) would count as download cost.
  const idle0 = cpuMicros(http.red.child.pid);
  await new Promise((r) => setTimeout(r, 1000));
  const redIdleCpuPct = sig((cpuMicros(http.red.child.pid) - idle0) / 10000);
  const gen = forkChild('http-load.js');
  try {
    for (let rep = 0; rep < opts.reps; rep++) {
      for (const t of rotate(targets, rep)) {
        const { result } = await gen.ask({ cmd: 'run', urls: t.urls, connections: s.connections, warmup: opts.warmup, seconds: opts.seconds, size: http.size, pid: t.pid }, (opts.warmup + opts.seconds + 15) * 1000);
        runs[t.name].push(result);
        log(`${s.name} ${t.name} rep ${rep + 1}: ${sig(result.mibPerSec)} MiB/s${result.errors ? `, ${result.errors} errors` : ''}`);
      }
    }
  } finally {
    await gen.close();
  }
  return { scenario: s.name, connections: s.connections, imageBytes: http.size, reps: opts.reps, seconds: opts.seconds, redIdleCpuPct, redRssMiB: sig(rssBytes(http.red.child.pid) / MIB), targets: summarise(runs, 'plain', 'mibPerSec') };
}

async function runFleet(s, ctx) {
  if (!fleet.available()) {
    ctx.log(`${s.name}: skipped (the gateway is not in this checkout)`);
    return { scenario: s.name, skipped: 'the ota-gateway is not in this checkout yet' };
  }
  return fleet.runFleet(s, { ...ctx, forkChild });
}

/**
 * bench/rollout.js (the rollout engine on a real repository, driven by device reports) in a child
 * process of its own, --reps times (--quick: once); the median of each figure.
 */
async function runRollout(s, opts, log) {
  const runs = [];
  for (let i = 0; i < (opts.quick ? 1 : opts.reps); i++) {
    log(`${s.name}: run ${i + 1}`);
    const out = await new Promise((resolve, reject) => {
      execFile(process.execPath, [path.join(__dirname, 'rollout.js'), '--devices', String(s.devices)], { timeout: 300_000, maxBuffer: 1 << 20 }, (err, stdout) => {
        if (err) reject(err);
        else resolve(stdout);
      });
    });
    runs.push(JSON.parse(out.trim().split('\n').pop()));
  }
  const med = (key) => median(runs.map((r) => r[key]));
  return {
    scenario: s.name, devices: s.devices, groups: runs[0].groups, runs: runs.length, events: runs[0].events,
    pauseMs: med('pauseMs'), engineUsPerEvent: med('engineUsPerEvent'), bytesPerEvent: med('bytesPerEvent'),
    noticesAtPause: runs[0].noticesAtPause, all: runs.map((r) => ({ pauseMs: r.pauseMs, engineUsPerEvent: r.engineUsPerEvent, bytesPerEvent: r.bytesPerEvent })),
  };
}

// ---------------------------------------------------------------- table
function fmt(x, d = 3) {
  if (!Number.isFinite(x)) return '-';
  return x >= 100 ? Math.round(x).toLocaleString('en-US') : String(sig(x, d));
}

function printTable(results) {
  const lines = [];
  const mq = results.filter((r) => r.scenario && r.scenario.startsWith('mqtt/'));
  if (mq.length) {
    lines.push('| scenario | target | chunks/s | MiB/s | p50 ms | p99 ms | CPU µs/chunk broker / server / loadgen | ratio to bare (paired) |');
    lines.push('|---|---|---|---|---|---|---|---|');
    for (const r of mq) {
      for (const [name, t] of Object.entries(r.targets)) {
        const c = t.cpuUsPerChunk || {};
        lines.push(`| ${r.scenario} | ${name} | ${fmt(t.chunksPerSec)} | ${fmt(t.mibPerSec)} | ${fmt(t.p50ms)} | ${fmt(t.p99ms)} | ${fmt(c.broker)} / ${fmt(c.server)} / ${fmt(c.loadgen)} | ${t.ratio !== undefined ? `${fmt(t.ratio)} (${fmt(t.pairedRatio)})` : '1'} |`);
      }
    }
  }
  const hs = results.filter((r) => r.scenario && r.scenario.startsWith('http/'));
  if (hs.length) {
    lines.push('', '| scenario | target | requests/s | MiB/s | p50 ms | p99 ms | server CPU µs/MiB | ratio to plain (paired) |');
    lines.push('|---|---|---|---|---|---|---|---|');
    for (const r of hs) {
      for (const [name, t] of Object.entries(r.targets)) {
        lines.push(`| ${r.scenario} | ${name} | ${fmt(t.requestsPerSec)} | ${fmt(t.mibPerSec)} | ${fmt(t.p50ms)} | ${fmt(t.p99ms)} | ${fmt(t.cpuUsPerMiB && t.cpuUsPerMiB.server)} | ${t.ratio !== undefined ? `${fmt(t.ratio)} (${fmt(t.pairedRatio)})` : '1'} |`);
      }
    }
  }
  for (const r of results.filter((x) => x.scenario && x.scenario.startsWith('fleet/'))) {
    if (r.skipped) lines.push('', `${r.scenario}: skipped (${r.skipped})`);
    else {
      lines.push('', `${r.scenario} (${r.server}, ${r.broker}, ${r.gateway}): ${r.devices} devices${r.capped ? ` (${r.capped})` : ''}, ${r.connected} connected, ${r.answered} answered a chunk, ${r.failed} failed, in ${r.seconds} s`);
      lines.push(`  at ${r.at.join(' / ')} devices: Node-RED RSS ${r.redRssMiB.join(' / ')} MiB (${r.redKiBPerDevice} KiB per device)${r.gatewayRssMiB ? `, gateway RSS ${r.gatewayRssMiB.join(' / ')} MiB (${r.gatewayKiBPerDevice} KiB per device)` : ''}`);
    }
  }
  for (const r of results.filter((x) => x.scenario && x.scenario.startsWith('rollout/'))) {
    lines.push('', `${r.scenario}: groups ${r.groups.join(' / ')}, error threshold 10 %, ${r.events} device reports, median of ${r.runs}:`);
    lines.push(`  crossing report to paused ${fmt(r.pauseMs)} ms (goal < 100 ms); engine ${fmt(r.engineUsPerEvent)} µs per device report; ${fmt(r.bytesPerEvent)} bytes written per device report; ${r.noticesAtPause} notices sent by the pause (groups 1 and 2)`);
  }
  console.error('\n' + lines.join('\n'));
}

main().catch((err) => {
  console.error(err);
  process.exitCode = 1;
});
