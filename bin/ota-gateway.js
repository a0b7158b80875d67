#!/usr/bin/env node
'use strict';
// ota-gateway from the command line: the device front door without Node-RED, reading the device
// list of an OTA repository directory (the one the ota-repository config node uses).
//
//   ota-gateway --dir ~/.node-red/mqtt-ota --listen 0.0.0.0:1884 --upstream mqtt://localhost:1883

const fs = require('fs');
const path = require('path');
const { parseArgs } = require('util');

const USAGE = `usage: ota-gateway --dir <repository dir> [options]

  --dir <path>              OTA repository storage directory (holds devices.json, secret.key)
  --listen [host:]port      where devices connect (default 0.0.0.0:1884)
  --upstream <url>          the real broker, mqtt://host:port or mqtts://host:port
                            (default mqtt://localhost:1883)
  --upstream-username <u>   the gateway's own broker login (password: OTA_GATEWAY_UPSTREAM_PASSWORD)
  --ns <prefix>             namespace for ThingsBoard/TagoIO devices (default ota)
  --identity <mode>         auto | token | client-id (default auto)
  --auto-register <dialect> register unknown devices under this dialect instead of refusing them
  --secret <text>           repository secret, when the config node was given one (or OTA_SECRET)
  --quiet                   log refusals and errors only

limits (defaults in brackets; see the README's Security section):
  --max-connect-bytes <n>   largest packet before authentication, the CONNECT [16384]
  --max-packet-bytes <n>    largest packet from an authenticated device [262144]
  --max-buffered-bytes <n>  bytes held per device while its broker connection opens [1048576]
  --topic-alias-maximum <n> topic aliases an MQTT 5 device may use [0]
  --max-refused <n>         refused publishes/subscriptions per window before disconnect [100]
  --refused-window <s>      that window, in seconds [10]
  --packets-per-turn <n>    packets of one device handled per event-loop turn [32]
  --upstream-retry <s>      how long a CONNECT is held while the broker is down [8]
`;

function fail(message) {
  process.stderr.write(`ota-gateway: ${message}\n\n${USAGE}`);
  process.exit(2);
}

let args;
try {
  args = parseArgs({
    options: {
      dir: { type: 'string' },
      listen: { type: 'string', default: '0.0.0.0:1884' },
      upstream: { type: 'string', default: 'mqtt://localhost:1883' },
      'upstream-username': { type: 'string' },
      ns: { type: 'string', default: 'ota' },
      identity: { type: 'string', default: 'auto' },
      'auto-register': { type: 'string' },
      secret: { type: 'string' },
      quiet: { type: 'boolean', default: false },
      'max-connect-bytes': { type: 'string' },
      'max-packet-bytes': { type: 'string' },
      'max-buffered-bytes': { type: 'string' },
      'topic-alias-maximum': { type: 'string' },
      'max-refused': { type: 'string' },
      'refused-window': { type: 'string' },
      'packets-per-turn': { type: 'string' },
      'upstream-retry': { type: 'string' },
      help: { type: 'boolean', short: 'h', default: false },
    },
  }).values;
} catch (err) {
  fail(err.message);
}
if (args.help) {
  process.stdout.write(USAGE);
  process.exit(0);
}
if (!args.dir) fail('--dir is required');

const dist = path.join(__dirname, '..', 'dist');
const { OtaGateway, RegistryDirectory, isIdentityMode, resolveLimits, LogLimiter, droppedNote } = require(path.join(dist, 'gateway'));
const { DeviceRegistry } = require(path.join(dist, 'core', 'devices'));
const { isDialectName } = require(path.join(dist, 'core', 'types'));

const dir = path.resolve(args.dir);
const match = /^(?:(.*):)?(\d+)$/.exec(args.listen);
if (!match) fail(`--listen must be [host:]port, not ${args.listen}`);
const host = (match[1] || '0.0.0.0').replace(/^\[|\]$/g, '');
const port = Number(match[2]);
if (!isIdentityMode(args.identity)) fail(`--identity must be auto, token or client-id, not ${args.identity}`);
const autoRegister = args['auto-register'];
if (autoRegister !== undefined && !isDialectName(autoRegister)) fail(`--auto-register must name a dialect, not ${autoRegister}`);

// Tokens are stored as HMACs under the repository secret, so the gateway needs the same one.
function readSecret() {
  const given = args.secret || process.env.OTA_SECRET;
  if (given) return Buffer.from(given, 'utf8');
  try {
    const text = fs.readFileSync(path.join(dir, 'secret.key'), 'utf8').trim();
    if (text.length >= 32) return Buffer.from(text, 'utf8');
  } catch (err) {
    if (err.code !== 'ENOENT') throw err;
  }
  fail(`no secret.key in ${dir}: point --dir at the repository directory, or give --secret`);
}

const secret = readSecret();
const options = { mode: args.identity, autoRegister };
let directory = new RegistryDirectory(new DeviceRegistry(dir, secret), options);

// Node-RED keeps editing devices.json while we run: pick up its changes.
fs.watchFile(path.join(dir, 'devices.json'), { interval: 2000 }, () => {
  try {
    directory = new RegistryDirectory(new DeviceRegistry(dir, secret), options);
    log('device list reloaded');
  } catch (err) {
    console.error(`ota-gateway: cannot reload devices.json (keeping the previous list): ${err.message}`);
  }
});

const seconds = (v) => (v === undefined ? undefined : Number(v) * 1000);
let limits;
try {
  limits = resolveLimits({
    maxConnectBytes: args['max-connect-bytes'],
    maxPacketBytes: args['max-packet-bytes'],
    maxBufferedBytes: args['max-buffered-bytes'],
    topicAliasMaximum: args['topic-alias-maximum'],
    maxRefused: args['max-refused'],
    refusedWindowMs: seconds(args['refused-window']),
    packetsPerTurn: args['packets-per-turn'],
    upstreamRetryMs: seconds(args['upstream-retry']),
  });
} catch (err) {
  fail(err.message);
}

// Devices decide how often these lines come: a few of each kind per 10 s, then a count.
const lines = new LogLimiter(20, 10_000);
function limited(kind, write, text) {
  const dropped = lines.allow(kind);
  if (dropped !== false) write(`ota-gateway: ${text}${droppedNote(dropped)}`);
}
function log(text, kind = 'info') {
  if (!args.quiet) limited(kind, console.log, text);
}

let gateway;
try {
  gateway = new OtaGateway({
    directory: { authenticate: (creds) => directory.authenticate(creds) },
    upstream: args.upstream,
    upstreamUsername: args['upstream-username'],
    upstreamPassword: process.env.OTA_GATEWAY_UPSTREAM_PASSWORD,
    namespace: args.ns,
    limits,
  });
} catch (err) {
  fail(err.message);
}
gateway.on('connect', (e) => log(`${e.deviceId} (${e.dialect}) connected from ${e.remote}, client id ${e.clientId}`, 'connect'));
gateway.on('disconnect', (e) => log(`${e.deviceId} disconnected: ${e.reason}`, 'disconnect'));
gateway.on('refused', (e) => limited('refused', console.log, `refused client id ${e.clientId} from ${e.remote}: ${e.reason}`));
gateway.on('denied', (e) => log(`${e.deviceId} may not ${e.kind} on ${e.topic}`, 'denied'));
gateway.on('malformed', (e) => log(`closed ${e.deviceId || e.remote}: ${e.message}`, 'malformed'));
gateway.on('error', (err) => limited('error', console.error, err.message));

gateway.listen(port, host).then(
  (address) => console.log(`ota-gateway: devices connect to ${address.address}:${address.port}, proxied to ${args.upstream} under ${args.ns}/{device}/`),
  (err) => {
    console.error(`ota-gateway: cannot listen on ${host}:${port}: ${err.message}`);
    process.exit(1);
  },
);

let stopping = false;
for (const signal of ['SIGINT', 'SIGTERM']) {
  process.on(signal, () => {
    if (stopping) process.exit(1);
    stopping = true;
    fs.unwatchFile(path.join(dir, 'devices.json'));
    const guard = setTimeout(() => process.exit(0), 5000);
    guard.unref();
    gateway.close().then(() => process.exit(0));
  });
}
