#!/usr/bin/env node
'use strict';
// `npm run bench:rollout`: the rollout engine on a real repository (files on disk, the tracker,
// the release journal) with 10,000 devices, driven by progress events as progress-parser feeds
// them. Groups 1 % / 10 % / rest, error threshold 10 %. Prints one JSON line:
//   pauseMs        time from the crossing report (tracker.record) to the rollout paused
//   engineUsPerEvent  time spent in the engine (synchronous: CPU time) per device report, the
//                  releases and notices it triggers included (mean over every report)
//   bytesPerEvent  bytes this process wrote (/proc/self/io wchar) per device report, all documents
//                  (device states, rollouts, release journal)
//   events         device reports fed; engineCalls: state changes the engine looked at (reports
//                  and the assignments and notices of each release)
//   journalBytesLeft  what the release journal holds at the end
//
//   node bench/rollout.js [--devices 10000]
const fs = require('fs');
const os = require('os');
const path = require('path');
const { OtaRepository } = require('../dist/core/repository');
const { trackerFor } = require('../dist/core/device-updates/tracker');
const { rolloutsFor } = require('../dist/core/rollouts/service');

function wchar() {
  try {
    return Number(/wchar:\s*(\d+)/.exec(fs.readFileSync('/proc/self/io', 'utf8'))[1]);
  } catch {
    return NaN;
  }
}

async function main() {
  const i = process.argv.indexOf('--devices');
  const N = Math.max(100, Math.min(100_000, i > 0 ? Number(process.argv[i + 1]) || 10_000 : 10_000));
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'ota-rollout-bench-'));
  try {
    const repo = new OtaRepository({ dir, secret: 'b'.repeat(40) });
    const { record: fw } = await repo.firmware.store({ image: Buffer.alloc(4096, 7), title: 'bench', version: '2.0.0' });
    const ids = Array.from({ length: N }, (_, k) => `d${String(k).padStart(6, '0')}`);
    await Promise.all(ids.map((id) => repo.devices.register({ id, dialect: 'tencent', attributes: { product: 'P' } })));
    await repo.flush();
    const tracker = trackerFor(repo);
    tracker.start();
    let notices = 0;
    repo.on('command', (c) => {
      if (c.action === 'assign') notices += c.devices.length;
    });
    const service = rolloutsFor(repo);
    service.start();
    let engineNs = 0n;
    let engineCalls = 0;
    let events = 0;
    const engine = service.engine;
    const deviceChanged = engine.deviceChanged.bind(engine);
    let depth = 0;
    engine.deviceChanged = (d) => {
      engineCalls += 1;
      // The engine's own notices change device states, which call it again: time the outer call only.
      if (depth > 0) return deviceChanged(d);
      depth += 1;
      const t = process.hrtime.bigint();
      try {
        deviceChanged(d);
      } finally {
        engineNs += process.hrtime.bigint() - t;
        depth -= 1;
      }
    };
    const at = () => new Date().toISOString();
    const report = (device, state) => (events += 1) && tracker.record({ device, dialect: 'tencent', state, ...(state === 'updated' ? { title: 'bench', version: '2.0.0' } : {}), at: at() });

    const r = await service.create({ firmware: fw.id, targets: { devices: ids }, plan: { groups: [{ percent: 1 }, { percent: 10 }, {}], error: { percent: 10 } }, start: true });
    const [g1, g2] = r.groups.map((g) => g.size);
    const before = wchar();
    for (const id of ids.slice(0, g1)) { report(id, 'downloading'); report(id, 'updated'); }
    // Second group: exactly 10 % failed (no pause), the rest updated but one, then the crossing report.
    const second = ids.slice(g1, g1 + g2);
    const limit = Math.floor(g2 / 10);
    second.slice(0, limit).forEach((id) => report(id, 'failed'));
    second.slice(limit, g2 - 1).forEach((id) => { report(id, 'downloading'); report(id, 'updated'); });
    if (engine.get(r.id).state !== 'running') throw new Error(`paused before the crossing report: ${engine.get(r.id).detail}`);
    const t0 = process.hrtime.bigint();
    report(second[g2 - 1], 'failed');
    const pauseNs = process.hrtime.bigint() - t0;
    if (engine.get(r.id).state !== 'paused') throw new Error('not paused after the crossing report');
    const noticesAtPause = notices;
    await service.act(r.id, 'resume');
    for (const id of ids.slice(g1 + g2)) { report(id, 'downloading'); report(id, 'updated'); }
    if (engine.get(r.id).state !== 'finished') throw new Error(`not finished: ${engine.get(r.id).state}`);
    await service.stop();
    tracker.stop();
    await repo.flush();
    const written = wchar() - before;
    const journal = fs.existsSync(path.join(dir, 'rollouts.journal')) ? fs.statSync(path.join(dir, 'rollouts.journal')).size : 0;
    const out = {
      scenario: 'rollout-engine', devices: N, groups: [g1, g2, N - g1 - g2], events, engineCalls,
      pauseMs: Number(pauseNs) / 1e6,
      noticesAtPause, noticesTotal: notices,
      engineUsPerEvent: Math.round(Number(engineNs) / events / 10) / 100,
      bytesPerEvent: Math.round(written / events),
      journalBytesLeft: journal,
      node: process.version, cpus: os.cpus().length,
    };
    console.log(JSON.stringify(out));
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
}

main().catch((err) => {
  console.error(err);
  process.exit(1);
});
