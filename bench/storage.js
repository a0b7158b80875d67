#!/usr/bin/env node
'use strict';
// Files against PostgreSQL, in one run: chunk serving (1 and 100 devices downloading at once,
// progress recorded as the flow records it, about 100,000 chunks a run; the final write of the
// progress timed apart), and a fleet of registered devices (registration
// rate, the cost of a device event, list latency, time to load at start). Starts a throwaway
// PostgreSQL cluster (test/support/postgres.js: needs Debian's postgresql) on loopback.
//
//   npm run build && node bench/storage.js [--devices 100000] [--reps 3] [--image-kib 1024] [--part chunks|fleet]
//
// Chunk serving alternates the backends, median of --reps. CPU is this process's (user + system);
// PostgreSQL's own CPU is not counted in it.
const fs = require('fs');
const os = require('os');
const path = require('path');
const { parseArgs } = require('util');
const { OtaRepository } = require('../dist/core/repository');
const { trackerFor } = require('../dist/core/device-updates/tracker');
const { deliveryFor } = require('../dist/core/chunking');
const { ChunkService } = require('../dist/core/dialects/chunk-service');
const { optionsFromSettings } = require('../dist/core/dialects/options');
const { startPostgres } = require('../test/support/postgres');

const { values: args } = parseArgs({
  options: {
    devices: { type: 'string', default: '100000' },
    reps: { type: 'string', default: '3' },
    'image-kib': { type: 'string', default: '1024' },
    part: { type: 'string', default: 'all' },
  },
});
const FLEET = Number(args.devices);
const REPS = Number(args.reps);
const IMAGE = Buffer.alloc(Number(args['image-kib']) * 1024, 7);
const CHUNK = 4096;

const median = (xs) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)];
const cpu = () => {
  const u = process.cpuUsage();
  return (u.user + u.system) / 1000;
};
const dirs = [];
const tmp = (p) => {
  const d = fs.mkdtempSync(path.join(os.tmpdir(), p));
  dirs.push(d);
  return d;
};

async function open(kind, url, dir = tmp('ota-bench-')) {
  const repo = new OtaRepository({ dir, ...(kind === 'postgres' ? { storage: { kind: 'postgres', connectionString: url } } : {}) });
  await repo.ready;
  return repo;
}

/** `devices` download the whole image at once, one chunk at a time each; chunks per second. */
async function serve(repo, devices, tag) {
  const { record } = await repo.firmware.store({ image: IMAGE, title: `bench-${tag}`, version: '1.0.0' });
  const ids = Array.from({ length: devices }, (_, i) => `c${tag}-${i}`);
  await Promise.all(ids.map((id) => repo.devices.register({ id, dialect: 'thingsboard' })));
  for (const id of ids) repo.rollout.assign(id, 'thingsboard', record);
  const service = new ChunkService(repo, deliveryFor(repo, (r) => repo.firmware.read(r)), { dialects: ['thingsboard'], options: optionsFromSettings({ prefix: 'ota/{device}/' }) });
  const tracker = trackerFor(repo);
  const chunks = Math.ceil(IMAGE.length / CHUNK);
  // The first request loads the image (from the blob store, or the database into the instance's
  // cache file): timed on its own, then every chunk is served from memory as on files.
  const cold = process.hrtime.bigint();
  await service.handle(`ota/${ids[0]}/v2/fw/request/0/chunk/0`, String(CHUNK));
  const firstChunkMs = Number(process.hrtime.bigint() - cold) / 1e6;
  // About 100,000 chunks a run whatever the fleet (each device downloads the image again with a
  // new request id): a run of a few milliseconds measured timer and flush latency, not serving.
  const downloads = Math.max(1, Math.round(100_000 / (devices * chunks)));
  const t0 = process.hrtime.bigint();
  const c0 = cpu();
  await Promise.all(ids.map(async (id) => {
    for (let d = 0; d < downloads; d++) {
      for (let n = 0; n < chunks; n++) {
        const r = await service.handle(`ota/${id}/v2/fw/request/${d + 1}/chunk/${n}`, String(CHUNK));
        if (r.progress) tracker.record(r.progress, 'uplink');
        // A device waits for its chunk: give the event loop (and the writes behind) a turn.
        if (n % 16 === 15) await new Promise(setImmediate);
      }
    }
  }));
  const served = devices * chunks * downloads;
  const ms = Number(process.hrtime.bigint() - t0) / 1e6;
  // The last progress written (files: the document; PostgreSQL: the rows): timed on its own.
  const w0 = process.hrtime.bigint();
  await repo.flush();
  const finalWriteMs = Number(process.hrtime.bigint() - w0) / 1e6;
  return { chunksPerSec: Math.round(served / (ms / 1000)), cpuMsPerChunk: (cpu() - c0) / served, firstChunkMs, finalWriteMs };
}

async function fleet(kind, url) {
  const repo = await open(kind, url);
  const out = { backend: kind, devices: FLEET };
  let t = Date.now();
  for (let i = 0; i < FLEET; i += 1000) {
    const batch = [];
    for (let j = i; j < Math.min(FLEET, i + 1000); j++) batch.push(repo.devices.register({ id: `dev-${j}`, dialect: 'thingsboard', token: `token-${j}`, tags: 'fleet' }));
    await Promise.all(batch);
  }
  out.registerPerSec = Math.round(FLEET / ((Date.now() - t) / 1000));
  const { record } = await repo.firmware.store({ image: IMAGE, title: 'fleet', version: '2.0.0' });
  for (let j = 0; j < FLEET; j++) repo.rollout.assign(`dev-${j}`, 'thingsboard', record);
  await repo.flush();
  // Device events as a rollout brings them: 2,000 per second for 5 s, then written out.
  const events = 10_000;
  t = Date.now();
  const c0 = cpu();
  for (let k = 0; k < events; k += 200) {
    for (let j = k; j < k + 200; j++) repo.rollout.apply({ device: `dev-${(j * 7919) % FLEET}`, dialect: 'thingsboard', state: 'downloading', percent: 1 + (j % 99), at: new Date().toISOString() });
    await new Promise((r) => setTimeout(r, 100));
  }
  await repo.flush();
  out.eventCpuMs = Number(((cpu() - c0) / events).toFixed(4));
  out.eventsWallMs = Date.now() - t;
  if (kind === 'files') out.statesFileBytes = fs.statSync(path.join(repo.dir, 'device-states.json')).size;
  const lists = [];
  for (let i = 0; i < 5; i++) {
    const s = process.hrtime.bigint();
    repo.devices.list();
    lists.push(Number(process.hrtime.bigint() - s) / 1e6);
  }
  out.listMs = Number(median(lists).toFixed(1));
  const dir = repo.dir;
  await repo.close();
  t = Date.now();
  const again = await open(kind, url, kind === 'files' ? dir : undefined);
  out.loadMs = Date.now() - t;
  out.loadedDevices = again.devices.list().length;
  await again.close();
  return out;
}

async function main() {
  const pg = await startPostgres();
  if (!pg) throw new Error('PostgreSQL is not installed');
  try {
    const url = await pg.createDatabase();
    const repos = { files: await open('files'), postgres: await open('postgres', url) };
    for (const devices of args.part === 'fleet' ? [] : [1, 100]) {
      const results = { files: [], postgres: [] };
      for (let rep = 0; rep < REPS; rep++) {
        for (const kind of rep % 2 ? ['postgres', 'files'] : ['files', 'postgres']) results[kind].push(await serve(repos[kind], devices, `${devices}-${rep}`));
      }
      const line = { scenario: `chunks, ${devices} device(s), ${IMAGE.length / 1024} KiB image, ${CHUNK} B chunks` };
      for (const kind of ['files', 'postgres']) {
        line[`${kind}ChunksPerSec`] = median(results[kind].map((r) => r.chunksPerSec));
        line[`${kind}CpuMsPerChunk`] = Number(median(results[kind].map((r) => r.cpuMsPerChunk)).toFixed(4));
        line[`${kind}FirstChunkMs`] = Number(median(results[kind].map((r) => r.firstChunkMs)).toFixed(1));
        line[`${kind}FinalWriteMs`] = Number(median(results[kind].map((r) => r.finalWriteMs)).toFixed(1));
      }
      line.ratio = Number((line.postgresChunksPerSec / line.filesChunksPerSec).toFixed(3));
      console.log(JSON.stringify(line));
    }
    for (const r of Object.values(repos)) await r.close();
    const fleetUrl = await pg.createDatabase();
    if (args.part !== 'chunks') for (const kind of ['files', 'postgres']) console.log(JSON.stringify(await fleet(kind, fleetUrl)));
  } finally {
    pg.stop();
    for (const d of dirs) fs.rmSync(d, { recursive: true, force: true });
  }
}

main().catch((err) => {
  console.error(err);
  process.exit(1);
});
