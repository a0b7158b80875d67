'use strict';
// The package's ota-gateway in its own process (until it runs as a Node-RED node), devices
// identified by client id against the repository's device list, namespace "ota".
// Usage: node gateway-child.js <repository dir> <upstream broker url>; prints {"port":N}.
const path = require('path');

const ROOT = path.join(__dirname, '..', '..');
const { OtaRepository } = require(path.join(ROOT, 'dist', 'core', 'repository'));
const { OtaGateway, RegistryDirectory } = require(path.join(ROOT, 'dist', 'gateway'));

(async () => {
  const [dir, upstream] = process.argv.slice(2);
  const repo = new OtaRepository({ dir });
  const gateway = new OtaGateway({ directory: new RegistryDirectory(repo.devices, { mode: 'client-id' }), upstream, namespace: 'ota' });
  gateway.on('error', () => { /* counted in gateway.counters */ });
  const address = await gateway.listen(0, '127.0.0.1');
  process.stdout.write(JSON.stringify({ port: address.port }) + '\n');
  const stop = () => {
    gateway.close().then(() => process.exit(0));
    setTimeout(() => process.exit(0), 5000).unref();
  };
  process.on('SIGTERM', stop);
  process.on('SIGINT', stop);
})().catch((err) => {
  console.error(err);
  process.exit(1);
});
