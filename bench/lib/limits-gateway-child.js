'use strict';
// A gateway in its own process, so that its RSS is its own. Built from OTA_DIST (default: this
// package's dist), to compare a build before a change with one after.
// Usage: fork('limits-gateway-child.js', [upstreamUrl, limitsJson]); sends {port}, answers 'rss'.
const fs = require('fs');
const os = require('os');
const path = require('path');
const { monitorEventLoopDelay } = require('perf_hooks');

const DIST = process.env.OTA_DIST || path.join(__dirname, '..', '..', 'dist');
const { OtaRepository } = require(path.join(DIST, 'core', 'repository'));
const { OtaGateway, RegistryDirectory } = require(path.join(DIST, 'gateway'));

(async () => {
  const [upstream, limits] = process.argv.slice(2);
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'ota-bench-limits-'));
  const repo = new OtaRepository({ dir, secret: 'x'.repeat(40) });
  await repo.devices.register({ id: 'tb', dialect: 'thingsboard', token: 'tb-token' });
  await repo.devices.register({ id: 'bz', dialect: 'biotz', attributes: { customer: 'c1' } });
  const gateway = new OtaGateway({ directory: new RegistryDirectory(repo.devices, {}), upstream, namespace: 'ota', limits: JSON.parse(limits || '{}') });
  gateway.on('error', () => {});
  const address = await gateway.listen(0, '127.0.0.1');
  // How long anything else in this process (an admin API request, say) could have waited.
  const loop = monitorEventLoopDelay({ resolution: 5 });
  loop.enable();
  process.on('message', (m) => {
    if (m === 'rss') {
      global.gc?.();
      process.send({ rss: process.memoryUsage().rss, counters: gateway.counters, loopMaxMs: loop.max / 1e6 });
      loop.reset();
    }
  });
  process.on('disconnect', () => {
    fs.rmSync(dir, { recursive: true, force: true });
    process.exit(0);
  });
  process.send({ port: address.port });
})().catch((err) => {
  console.error(err);
  process.exit(1);
});
