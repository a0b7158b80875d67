'use strict';
// A Node-RED stand-in for the kill -9 spec: a repository with a rollout running, notices
// "published" by appending to notices.log (what mqtt out would send), devices that take each
// notice and report the target version a little later. `resume` restarts on the same directory.
const fs = require('fs');
const path = require('path');
const { OtaRepository } = require('../../dist/core/repository');
const { DEFAULT_POLICY, trackerFor } = require('../../dist/core/device-updates/tracker');
const { rolloutsFor } = require('../../dist/core/rollouts/service');
const { imageOf } = require('./images');

async function main() {
  const [dir, mode, count] = process.argv.slice(2);
  const repo = new OtaRepository({ dir, secret: 'x'.repeat(40) });
  const log = path.join(dir, 'notices.log');
  let fw;
  if (mode === 'create') {
    ({ record: fw } = await repo.firmware.store({ image: imageOf(1000), title: 'blink', version: '2.0.0' }));
    for (let i = 0; i < Number(count); i++) await repo.devices.register({ id: `d${String(i).padStart(4, '0')}`, dialect: 'tencent', attributes: { product: 'P1' }, tags: ['fleet'] });
    await repo.flush();
  }
  const tracker = trackerFor(repo);
  tracker.start();
  // As a progress node would set it. A kill between a release's journal line and its notice (the
  // fsync makes that window wide on a busy machine) leaves a device recorded as notified that never
  // had its notice: the timeout and retry send it, once. It times out first, so each group goes on
  // at 90 % succeeded (at 100 % the group would fail when its last device times out, and pause).
  tracker.setPolicy('child', { ...DEFAULT_POLICY, timeoutMs: 3000, retries: 3, backoffMs: 50 });
  // The tracker's and the engine's timers do not keep a process alive (Node-RED does): this does, bounded.
  setTimeout(() => {
    process.stderr.write('not finished in 25 s\n');
    process.exit(2);
  }, 25_000);
  const report = (device) => tracker.record({ device, dialect: 'tencent', state: 'updated', title: 'blink', version: '2.0.0', at: new Date().toISOString() });
  repo.on('command', (cmd) => {
    if (cmd.action !== 'assign' && cmd.action !== 'renotify') return;
    for (const d of cmd.devices) {
      fs.appendFileSync(log, `${cmd.action} ${d}\n`);
      setTimeout(() => report(d), 20);
    }
  });
  const service = rolloutsFor(repo);
  service.engine.on('event', (e) => {
    if (e.type !== 'finished') return;
    // A device whose notice the kill lost ends the rollout timed out; the tracker's retry (50 ms
    // later) still sends it its notice: give it the time to be logged.
    setTimeout(() => {
      repo.flush().then(() => {
        process.stdout.write('finished\n');
        process.exit(0);
      });
    }, e.counts.timed_out > 0 ? 500 : 0);
  });
  service.start();
  if (mode === 'create') {
    await service.create({ firmware: fw.id, targets: { tag: 'fleet' }, plan: { groups: [{ percent: 10 }, { percent: 30 }, {}], success: { percent: 90 }, maxConcurrent: 4 }, start: true });
  } else {
    // Devices that had their notice before the crash updated while Node-RED was down.
    const noticed = new Set(fs.readFileSync(log, 'utf8').split('\n').filter(Boolean).map((l) => l.split(' ')[1]));
    for (const d of noticed) if (repo.rollout.get(d)?.state !== 'updated') report(d);
  }
}
main().catch((err) => {
  process.stderr.write(`${err.stack}\n`);
  process.exit(1);
});
