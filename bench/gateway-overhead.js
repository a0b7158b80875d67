'use strict';
// Gateway overhead: sequential ThingsBoard chunk round trips, straight to mosquitto vs through the
// gateway. Not a spec (needs /usr/sbin/mosquitto). Run: npm run build && node bench/gateway-overhead.js
const h = require('../test/gateway/helpers');
const crypto = require('crypto');
(async () => {
  const broker = await h.startMosquitto();
  const store = h.makeRepository();
  await store.repo.devices.register({ id: 'b', dialect: 'thingsboard', token: 'bt' });
  const gw = await h.startGateway(store.repo, broker.url);
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
  const ds = [], gs = [];
  for (let i = 0; i < 15; i++) {
    const d = await run(broker.url, { clientId: 'direct' });
    const g = await run(gw.url, { username: 'bt', clientId: 'g' });
    ds.push(d); gs.push(g);
  }
  const med = (a) => a.sort((x, y) => x - y)[a.length >> 1];
  console.log(`1 MiB, 4 KiB chunks, 256 sequential round trips, median of 15: direct ${med(ds).toFixed(1)} ms, via gateway ${med(gs).toFixed(1)} ms, added ${((med(gs) - med(ds)) / 256 * 1000).toFixed(0)} us per chunk`);
  await h.endAll([responder]); await gw.close(); await broker.close(); await store.close();
})();
