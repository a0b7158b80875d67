'use strict';
// Gateway overhead: sequential ThingsBoard chunk round trips, straight to mosquitto vs through the
// gateway. Not a spec (needs /usr/sbin/mosquitto). Run: npm run build && node bench/gateway-overhead.js
//
//   node bench/gateway-overhead.js [--runs 15] [--against DIR]
//
// --against DIR also runs the gateway of another built checkout (DIR/dist, e.g. an older commit:
// `git archive <rev> | tar -x -C DIR`, a node_modules symlink, `npx tsc -p tsconfig.json`), in
// turn with this one in the same run, so that two versions are compared on the same machine load.
const path = require('path');
const crypto = require('crypto');
const h = require('../test/gateway/helpers');

function parseArgs(argv) {
  const o = { runs: 15, against: null };
  for (let i = 0; i < argv.length; i++) {
    if (argv[i] === '--runs') o.runs = Math.max(1, Math.min(200, Number(argv[++i]) || 15));
    else if (argv[i] === '--against') o.against = path.resolve(String(argv[++i]));
    else throw new Error(`unknown argument ${argv[i]}`);
  }
  return o;
}

/** A gateway of the build at `root` (its own repository code, so that old and new read their own files). */
async function startGatewayOf(root, brokerUrl) {
  const { OtaRepository } = require(path.join(root, 'dist/core/repository'));
  const { OtaGateway, RegistryDirectory } = require(path.join(root, 'dist/gateway'));
  const store = h.makeRepository();
  const repo = new OtaRepository({ dir: store.dir + '-against', secret: 'x'.repeat(40) });
  await repo.devices.register({ id: 'b', dialect: 'thingsboard', token: 'bt' });
  const gateway = new OtaGateway({ directory: new RegistryDirectory(repo.devices, {}), upstream: brokerUrl, namespace: 'ota' });
  const address = await gateway.listen(0, '127.0.0.1');
  return {
    url: `mqtt://127.0.0.1:${address.port}`,
    async close() {
      await gateway.close();
      await repo.flush();
      require('fs').rmSync(store.dir + '-against', { recursive: true, force: true });
      await store.close();
    },
  };
}

(async () => {
  const opts = parseArgs(process.argv.slice(2));
  const broker = await h.startMosquitto();
  const store = h.makeRepository();
  await store.repo.devices.register({ id: 'b', dialect: 'thingsboard', token: 'bt' });
  const gw = await h.startGateway(store.repo, broker.url);
  const other = opts.against ? await startGatewayOf(opts.against, broker.url) : null;
  const image = crypto.randomBytes(1 << 20);
  const responder = await h.connect(broker.url, { protocolVersion: 5 });
  responder.on('message', (topic, payload) => {
    const m = /^(ota\/b\/)?v2\/fw\/request\/(\d+)\/chunk\/(\d+)$/.exec(topic);
    if (!m) return;
    const n = Number(m[3]), size = Number(payload.toString());
    responder.publish(`${m[1] || ''}v2/fw/response/${m[2]}/chunk/${n}`, image.subarray(n * size, (n + 1) * size));
  });
  await responder.subscribeAsync(['v2/fw/request/+/chunk/+', 'ota/b/v2/fw/request/+/chunk/+']);
  const run = async (url, opts) => {
    const c = await h.connect(url, { protocolVersion: 5, ...opts });
    const t = process.hrtime.bigint();
    const built = await h.thingsboardDownload(c, { size: image.length, chunkSize: 4096, filter: 'v2/fw/response/+/chunk/+' });
    const ms = Number(process.hrtime.bigint() - t) / 1e6;
    if (h.sha256(built) !== h.sha256(image)) throw new Error('bad image');
    await h.endAll([c]);
    return ms;
  };
  const ds = [], gs = [], os = [];
  for (let i = 0; i < opts.runs; i++) {
    ds.push(await run(broker.url, { clientId: 'direct' }));
    gs.push(await run(gw.url, { username: 'bt', clientId: 'g' }));
    if (other) os.push(await run(other.url, { username: 'bt', clientId: 'o' }));
  }
  const med = (a) => a.slice().sort((x, y) => x - y)[a.length >> 1];
  const perChunk = (a) => ((med(a) - med(ds)) / 256 * 1000).toFixed(0);
  let line = `1 MiB, 4 KiB chunks, 256 sequential round trips, median of ${opts.runs}: direct ${med(ds).toFixed(1)} ms, via gateway ${med(gs).toFixed(1)} ms, added ${perChunk(gs)} us per chunk`;
  if (other) line += `; via ${path.basename(opts.against)} ${med(os).toFixed(1)} ms, added ${perChunk(os)} us per chunk`;
  console.log(line);
  await h.endAll([responder]); await gw.close(); await other?.close(); await broker.close(); await store.close();
})();
