'use strict';
// One Node-RED stand-in on a shared PostgreSQL repository, for the driver takeover spec: it
// competes for the driver lease, and runs the rollout only while it holds it. Notices are
// "published" by appending to a log shared by all instances (what mqtt out would send); devices
// take each notice and report the target version a little later, through the instance that sent
// it. `create` stores the firmware and devices and starts the rollout once driving; `standby`
// waits, and on taking over hears from the devices that updated meanwhile.
const fs = require('fs');
const { OtaRepository } = require('../../dist/core/repository');
const { trackerFor } = require('../../dist/core/device-updates/tracker');
const { rolloutsFor } = require('../../dist/core/rollouts/service');
const { driveRollouts } = require('../../dist/core/storage/driving');
const { imageOf } = require('./images');

async function main() {
  const [url, dir, mode, count, log, leaseMs] = process.argv.slice(2);
  const repo = new OtaRepository({ dir, storage: { kind: 'postgres', connectionString: url, leaseMs: Number(leaseMs) } });
  repo.on('storageError', (err) => process.stderr.write(`storage: ${err.message}\n`));
  await repo.ready;
  const tracker = trackerFor(repo);
  tracker.start();
  const report = (device) => tracker.record({ device, dialect: 'tencent', state: 'updated', title: 'blink', version: '2.0.0', at: new Date().toISOString() });
  repo.on('command', (cmd) => {
    if (cmd.action !== 'assign' && cmd.action !== 'renotify') return;
    for (const d of cmd.devices) {
      fs.appendFileSync(log, `${cmd.action} ${d} ${process.pid}\n`);
      setTimeout(() => report(d), 20);
    }
  });
  const drive = driveRollouts(repo, (err) => process.stderr.write(`drive: ${err.stack}\n`));
  // A new driver builds its rollout service afresh from the database: follow whichever is current.
  const watched = new WeakSet();
  const watchEngine = () => {
    const { engine } = rolloutsFor(repo);
    if (watched.has(engine)) return;
    watched.add(engine);
    engine.on('event', (e) => {
      if (e.type !== 'finished') return;
      repo.close().then(() => {
        process.stdout.write('finished\n');
        process.exit(0);
      });
    });
  };
  setInterval(() => repo.isDriver && watchEngine(), 100);
  if (process.env.OTA_CHILD_DEBUG) setInterval(() => process.stdout.write(`debug ${repo.isDriver} ${JSON.stringify(rolloutsFor(repo).engine.list().map((r) => [r.state, r.devices.filter((e) => ['failed', 'cancelled', 'timed_out'].includes(e.phase)).map((e) => [e.device, e.phase, !!repo.devices.get(e.device), !!repo.firmware.get(r.firmware), repo.rollout.get(e.device)])]))}\n`), 1000);
  let created = false;
  repo.on('driving', (driving) => {
    process.stdout.write(`${driving ? 'driving' : 'standing by'} ${Date.now()}\n`);
    if (!driving) return;
    setTimeout(async () => {
      watchEngine();
      if (mode === 'create' && !created) {
        created = true;
        const { record: fw } = await repo.firmware.store({ image: imageOf(1000), title: 'blink', version: '2.0.0' });
        for (let i = 0; i < Number(count); i++) await repo.devices.register({ id: `d${String(i).padStart(4, '0')}`, dialect: 'tencent', attributes: { product: 'P1' }, tags: ['fleet'] });
        await repo.flush();
        await rolloutsFor(repo).create({ firmware: fw.id, targets: { tag: 'fleet' }, plan: { groups: [{ percent: 10 }, { percent: 30 }, {}], maxConcurrent: 4 }, start: true });
      } else if (mode === 'standby') {
        // Devices that had their notice before the crash updated while no one drove.
        const noticed = new Set(fs.readFileSync(log, 'utf8').split('\n').filter(Boolean).map((l) => l.split(' ')[1]));
        for (const d of noticed) if (repo.rollout.get(d)?.state !== 'updated') report(d);
      }
    }, 200);
  });
  drive.wanted();
}
main().catch((err) => {
  process.stderr.write(`${err.stack}\n`);
  process.exit(1);
});
