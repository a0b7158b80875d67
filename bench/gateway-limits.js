'use strict';
// What a hostile device costs the gateway (issue 11), measured on mosquitto, not asserted:
// 1. RSS of the gateway process while four unauthenticated sockets each send a CONNECT claiming
//    256 MB (64 MB of it actually sent);
// 2. a legitimate ThingsBoard device's chunk round trips (1 MiB in 4 KiB chunks), alone and while
//    another device floods QoS 1 publishes the ACL refuses (reconnecting whenever it is closed).
// Run: npm run build && node bench/gateway-limits.js [--dist <other build's dist>] [--limits '{"maxRefused":1e9}']
const crypto = require('crypto');
const path = require('path');
const { fork } = require('child_process');
const { parseArgs } = require('util');
const mqttPacket = require('mqtt-packet');
const h = require('../test/gateway/helpers');

const { values: args } = parseArgs({ options: { dist: { type: 'string' }, limits: { type: 'string', default: '{}' } } });

function startGateway(brokerUrl) {
  const child = fork(path.join(__dirname, 'lib', 'limits-gateway-child.js'), [brokerUrl, args.limits], {
    execArgv: ['--expose-gc'],
    env: { ...process.env, ...(args.dist ? { OTA_DIST: path.resolve(args.dist) } : {}) },
  });
  const ask = () => new Promise((resolve) => {
    child.once('message', resolve);
    child.send('rss');
  });
  return new Promise((resolve) => child.once('message', (m) => resolve({ child, port: m.port, ask })));
}

const MB = 1024 * 1024;

async function memoryBeforeAuthentication(gw) {
  const before = (await gw.ask()).rss;
  const header = Buffer.from([0x10, 0xff, 0xff, 0xff, 0x7f]); // CONNECT, 268,435,455 bytes to come
  const chunk = Buffer.alloc(MB, 0x41);
  await Promise.all(Array.from({ length: 4 }, () => new Promise((resolve) => {
    const raw = h.rawClient(gw.port);
    let sent = 0;
    let open = true;
    raw.closed.then(() => { open = false; resolve(); });
    raw.write(header);
    const pump = () => {
      while (open && sent < 64) {
        sent++;
        if (!raw.socket.write(chunk)) return raw.socket.once('drain', pump);
      }
      if (open) setTimeout(() => { raw.socket.destroy(); }, 1000);
    };
    pump();
  })));
  const during = (await gw.ask()).rss;
  return { before: Math.round(before / MB), after: Math.round(during / MB) };
}

/** Floods refused QoS 1 publishes as a Biotz device until stopped, reconnecting when closed. */
function flood(port) {
  let stopped = false;
  let connections = 0;
  const batch = Buffer.concat(Array.from({ length: 2000 }, (_, i) => mqttPacket.generate({ cmd: 'publish', topic: 'not/mine', payload: 'x', qos: 1, messageId: i + 1, retain: false, dup: false })));
  const once = () => {
    if (stopped) return;
    connections++;
    const raw = h.rawClient(port);
    raw.send({ cmd: 'connect', protocolVersion: 4, clientId: 'bz', clean: true, keepalive: 60 });
    const pump = () => {
      while (!stopped && !raw.socket.destroyed) {
        if (!raw.socket.write(batch)) return raw.socket.once('drain', pump);
      }
    };
    raw.next('connack').then(pump);
    // Gone as soon as the gateway says so, and straight back.
    raw.socket.once('end', () => raw.socket.destroy());
    raw.closed.then(() => setImmediate(once));
  };
  once();
  return { stop: () => { stopped = true; return connections; } };
}

async function chunkRoundTrips(gw, brokerUrl, image) {
  const device = await h.connect(`mqtt://127.0.0.1:${gw.port}`, { username: 'tb-token', clientId: 'tb', protocolVersion: 5 });
  await device.subscribeAsync('v2/fw/response/+/chunk/+', { qos: 1 });
  const times = [];
  for (let n = 0; n < image.length / 4096; n++) {
    const t = process.hrtime.bigint();
    const got = new Promise((resolve) => device.once('message', resolve));
    device.publish(`v2/fw/request/1/chunk/${n}`, '4096', { qos: 1 });
    await got;
    times.push(Number(process.hrtime.bigint() - t) / 1e6);
  }
  await h.endAll([device]);
  times.sort((a, b) => a - b);
  return { median: times[times.length >> 1].toFixed(2), p99: times[Math.floor(times.length * 0.99)].toFixed(2), worst: times.at(-1).toFixed(2) };
}

(async () => {
  const broker = await h.startMosquitto();
  const image = crypto.randomBytes(MB);
  const responder = await h.connect(broker.url, { protocolVersion: 5 });
  responder.on('message', (topic, payload) => {
    const m = /^ota\/tb\/v2\/fw\/request\/(\d+)\/chunk\/(\d+)$/.exec(topic);
    if (!m) return;
    const n = Number(m[2]), size = Number(payload.toString());
    responder.publish(`ota/tb/v2/fw/response/${m[1]}/chunk/${n}`, image.subarray(n * size, (n + 1) * size));
  });
  await responder.subscribeAsync('ota/tb/v2/fw/request/+/chunk/+');

  let gw = await startGateway(broker.url);
  const memory = await memoryBeforeAuthentication(gw);
  console.log(`four unauthenticated 256 MB CONNECTs: gateway RSS ${memory.before} MB -> ${memory.after} MB`);
  gw.child.disconnect();

  gw = await startGateway(broker.url);
  await gw.ask();
  const quiet = await chunkRoundTrips(gw, broker.url, image);
  const quietLoop = (await gw.ask()).loopMaxMs;
  console.log(`chunk round trip alone (ms):        median ${quiet.median}, p99 ${quiet.p99}, worst ${quiet.worst}`);
  const flooder = flood(gw.port);
  await h.sleep(500);
  const loud = await chunkRoundTrips(gw, broker.url, image);
  const connections = flooder.stop();
  const { counters, loopMaxMs } = await gw.ask();
  console.log(`chunk round trip during flood (ms): median ${loud.median}, p99 ${loud.p99}, worst ${loud.worst}`);
  console.log(`gateway event loop, longest stall (ms): alone ${quietLoop.toFixed(1)}, during flood ${loopMaxMs.toFixed(1)}`);
  console.log(`flood: ${counters.deniedPublish} refused publishes handled over ${connections} connections`);
  gw.child.disconnect();
  await h.endAll([responder]);
  await broker.close();
})().catch((err) => {
  console.error(err);
  process.exit(1);
});
