'use strict';
// The gateway's own work per chunk round trip, without sockets or a broker: one DeviceSession
// between a stub device socket and a stub broker socket. Per round trip the device's QoS 1 chunk
// request goes up, the broker's PUBACK and a 4 KiB chunk PUBLISH come down. Not a spec.
//
//   npm run build && node bench/gateway-session.js [--round-trips 20000] [--batches 15] [--against DIR]
//
// Prints the median time per round trip of each build (this one, and DIR's: a built checkout, as
// for bench/gateway-overhead.js), batches alternating. On a busy machine count instructions
// instead, which the load does not change: under `valgrind --tool=callgrind`, run it with
// `--batches 1` and `--batches 3`; the difference of the two totals over 2 x round trips is the
// instructions per round trip (startup and the first batch's compilation cancel out).
const path = require('path');
const fs = require('fs');
const os = require('os');
const { EventEmitter } = require('events');
const mqtt = require('mqtt-packet');

function parseArgs(argv) {
  const o = { roundTrips: 20000, batches: 15, roots: [path.join(__dirname, '..')] };
  for (let i = 0; i < argv.length; i++) {
    if (argv[i] === '--round-trips') o.roundTrips = Math.max(256, Math.min(1e6, Number(argv[++i]) || 20000));
    else if (argv[i] === '--batches') o.batches = Math.max(1, Math.min(100, Number(argv[++i]) || 15));
    else if (argv[i] === '--against') o.roots.push(path.resolve(String(argv[++i])));
    else throw new Error(`unknown argument ${argv[i]}`);
  }
  return o;
}

class StubSocket extends EventEmitter {
  constructor() {
    super();
    Object.assign(this, { destroyed: false, writableEnded: false, writableNeedDrain: false, remoteAddress: '127.0.0.1', remotePort: 1, bytes: 0, onwrite: null });
  }
  setNoDelay() {}
  cork() {}
  uncork() {}
  pause() {}
  resume() {}
  end() { this.writableEnded = true; }
  destroy() { this.destroyed = true; }
  write(b) {
    this.bytes += b.length;
    if (this.onwrite) this.onwrite(b);
    return true;
  }
}

const v5 = { protocolVersion: 5 };
const typeOf = (b) => b[0] >> 4;

/** A session of the build at `root`, connected, subscribed, with 256 round trips of wire bytes. */
async function setup(root) {
  const { OtaRepository } = require(path.join(root, 'dist/core/repository'));
  const { OtaGateway, RegistryDirectory } = require(path.join(root, 'dist/gateway'));
  const { DeviceSession } = require(path.join(root, 'dist/gateway/session'));
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'ota-gw-session-bench-'));
  const repo = new OtaRepository({ dir, secret: 'x'.repeat(40) });
  await repo.devices.register({ id: 'b', dialect: 'thingsboard', token: 'bt' });
  const gateway = new OtaGateway({ directory: new RegistryDirectory(repo.devices, {}), upstream: 'mqtt://127.0.0.1:1', namespace: 'ota' });
  const up = new StubSocket();
  const dev = new StubSocket();
  // The gateway's own context (private): its sessions' broker connections become the stub.
  const ctx = gateway.ctx;
  ctx.connectUpstream = () => {
    setImmediate(() => up.emit('connect'));
    return up;
  };
  new DeviceSession(dev, ctx);
  await new Promise((resolve) => {
    up.onwrite = (b) => typeOf(b) === 1 && setImmediate(() => up.emit('data', mqtt.generate({ cmd: 'connack', sessionPresent: false, reasonCode: 0 }, v5)));
    dev.onwrite = (b) => typeOf(b) === 2 && resolve();
    dev.emit('data', mqtt.generate({ cmd: 'connect', protocolId: 'MQTT', protocolVersion: 5, clean: true, clientId: 'g', keepalive: 60, username: 'bt' }, v5));
  });
  up.onwrite = (b) => typeOf(b) === 8 && up.emit('data', mqtt.generate({ cmd: 'suback', messageId: 1, granted: [1] }, v5));
  dev.emit('data', mqtt.generate({ cmd: 'subscribe', messageId: 1, subscriptions: [{ topic: 'v2/fw/response/+/chunk/+', qos: 1 }] }, v5));
  up.onwrite = dev.onwrite = null;
  const payload = Buffer.alloc(4096, 7);
  const requests = [];
  const replies = [];
  for (let n = 0; n < 256; n++) {
    const messageId = n + 2;
    requests.push(mqtt.generate({ cmd: 'publish', topic: `v2/fw/request/1/chunk/${n}`, payload: Buffer.from('4096'), qos: 1, messageId, retain: false, dup: false }, v5));
    replies.push(Buffer.concat([
      mqtt.generate({ cmd: 'puback', messageId, reasonCode: 0 }, v5),
      mqtt.generate({ cmd: 'publish', topic: `ota/b/v2/fw/response/1/chunk/${n}`, payload, qos: 0, retain: false, dup: false }, v5),
    ]));
  }
  const close = async () => {
    await gateway.close();
    await repo.flush();
    fs.rmSync(dir, { recursive: true, force: true });
  };
  return { root, dev, up, requests, replies, ns: [], close };
}

function batch(s, roundTrips) {
  const before = s.dev.bytes;
  const t = process.hrtime.bigint();
  for (let i = 0; i < roundTrips; i++) {
    s.dev.emit('data', s.requests[i & 255]);
    s.up.emit('data', s.replies[i & 255]);
  }
  const ns = Number(process.hrtime.bigint() - t) / roundTrips;
  if (s.dev.bytes - before < roundTrips * 4096) throw new Error(`${s.root}: the chunks did not reach the device`);
  return ns;
}

(async () => {
  const o = parseArgs(process.argv.slice(2));
  const sessions = [];
  try {
    for (const root of o.roots) sessions.push(await setup(root));
    for (let k = 0; k < o.batches; k++) for (const s of k % 2 ? sessions.slice().reverse() : sessions) s.ns.push(batch(s, o.roundTrips));
    const med = (a) => a.slice().sort((x, y) => x - y)[a.length >> 1];
    for (const s of sessions) console.log(`${s.root}: ${(med(s.ns) / 1000).toFixed(2)} us of gateway work per round trip (median of ${o.batches} x ${o.roundTrips})`);
  } finally {
    for (const s of sessions) await s.close();
  }
})();
