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

  --dir <path>              OTA repository storage directory (holds devices.json, secret.key);
                            with OTA_POSTGRES_URL set, the device list (and secret) come from that
                            PostgreSQL repository instead, and --dir is not needed: several
                            gateways behind a TCP load balancer then share one device list
  --listen [host:]port      where devices connect (default 0.0.0.0:1884)
  --upstream <url>          the real broker, mqtt://host:port or mqtts://host:port
                            (default mqtt://localhost:1883)
  --upstream-username <u>   the gateway's own broker login (password: OTA_GATEWAY_UPSTREAM_PASSWORD)
  --upstream-protocol <v>   auto | 5 | 3.1.1: the broker's MQTT version for MQTT 5 devices
                            (default auto: MQTT 5, or bridged to 3.1.1 if the broker refuses 5)
  --ns <prefix>             namespace for ThingsBoard/TagoIO devices (default ota)
  --identity <mode>         auto | token | client-id (default auto)
  --auto-register <dialect> register unknown devices under this dialect instead of refusing them
  --product <id>            Tencent product for devices whose record has none (stock Tencent
                            devices connect with client id {product}{device name})
  --customer <id>           Biotz customer for devices whose record has none
  --app <id>                Sming app for devices whose record has none
                            (a device whose topics need one of these and has none is refused)
  --secret-file <path>      file holding the repository secret, when the config node was given
                            one (or the environment variable OTA_SECRET); default: secret.key in --dir
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
      'upstream-protocol': { type: 'string', default: 'auto' },
      ns: { type: 'string', default: 'ota' },
      identity: { type: 'string', default: 'auto' },
      'auto-register': { type: 'string' },
      product: { type: 'string' },
      customer: { type: 'string' },
      app: { type: 'string' },
      // Refused below with a clear message: a secret on the command line shows in `ps`.
      secret: { type: 'string' },
      'secret-file': { type: 'string' },
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
const postgresUrl = process.env.OTA_POSTGRES_URL;
if (!args.dir && !postgresUrl) fail('--dir is required (or OTA_POSTGRES_URL)');
if (args.secret !== undefined) fail('--secret is not accepted (a command line shows in ps): give --secret-file <path> or the environment variable OTA_SECRET');

const dist = path.join(__dirname, '..', 'dist');
const { OtaGateway, RegistryDirectory, isIdentityMode, isUpstreamProtocol, resolveLimits, LogLimiter, droppedNote } = require(path.join(dist, 'gateway'));
const { DeviceRegistry, isTopicSafe } = require(path.join(dist, 'core', 'devices'));
const { redactUrl } = require(path.join(dist, 'gateway', 'upstream'));
const { isDialectName } = require(path.join(dist, 'core', 'types'));

const dir = path.resolve(args.dir ?? path.join(require('os').tmpdir(), `ota-gateway-${process.pid}`));
const match = /^(?:(.*):)?(\d+)$/.exec(args.listen);
if (!match) fail(`--listen must be [host:]port, not ${args.listen}`);
const host = (match[1] || '0.0.0.0').replace(/^\[|\]$/g, '');
const port = Number(match[2]);
if (!isUpstreamProtocol(args['upstream-protocol'])) fail(`--upstream-protocol must be auto, 5 or 3.1.1, not ${args['upstream-protocol']}`);
if (!isIdentityMode(args.identity)) fail(`--identity must be auto, token or client-id, not ${args.identity}`);
const autoRegister = args['auto-register'];
if (autoRegister !== undefined && !isDialectName(autoRegister)) fail(`--auto-register must name a dialect, not ${autoRegister}`);
const attributes = {};
for (const name of ['product', 'customer', 'app']) {
  if (args[name] === undefined) continue;
  if (!isTopicSafe(args[name])) fail(`--${name} must be 1-128 characters of letters, digits and . _ : @ -`);
  attributes[name] = args[name];
}

// Tokens are stored as HMACs under the repository secret, so the gateway needs the same one.
function readSecret() {
  if (args['secret-file']) {
    let text;
    try {
      text = fs.readFileSync(path.resolve(args['secret-file']), 'utf8').replace(/\r?\n$/, '');
    } catch (err) {
      fail(`cannot read --secret-file: ${err.message}`);
    }
    if (!text) fail('--secret-file is empty');
    return Buffer.from(text, 'utf8');
  }
  const given = process.env.OTA_SECRET;
  if (given) return Buffer.from(given, 'utf8');
  try {
    const text = fs.readFileSync(path.join(dir, 'secret.key'), 'utf8').trim();
    if (text.length >= 32) return Buffer.from(text, 'utf8');
  } catch (err) {
    if (err.code !== 'ENOENT') throw err;
  }
  fail(`no secret.key in ${dir}: point --dir at the repository directory, or give --secret-file <path> or OTA_SECRET`);
}

let registry;
let repository;
if (postgresUrl) {
  // The device list and its changes from PostgreSQL (LISTEN/NOTIFY: a device deleted or given a
  // new token on any instance loses its connections here within a second). The secret is the
  // database's unless the config node was given one (then pass the same: OTA_SECRET).
  const { OtaRepository } = require(path.join(dist, 'core', 'repository'));
  const given = args['secret-file'] || process.env.OTA_SECRET ? readSecret().toString('utf8') : undefined;
  repository = new OtaRepository({ dir, secret: given, storage: { kind: 'postgres', connectionString: postgresUrl, drive: false } });
  repository.on('storageError', (err) => limited('storage', console.error, `PostgreSQL: ${err.message}`));
  registry = repository.devices;
} else {
  registry = new DeviceRegistry(dir, readSecret());
  // Node-RED keeps editing devices.json while we run: pick up its changes within a quarter second.
  // Our own writes (auto-registration) merge with its under a lock file; a device it deletes or
  // gives a new token loses its connections here (the gateway watches the directory's registry).
  registry.watch(250);
  registry.on('reloadError', (err) => console.error(`ota-gateway: cannot reload devices.json (keeping the previous list): ${err.message}`));
}
const directory = new RegistryDirectory(registry, { mode: args.identity, autoRegister, product: attributes.product });

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
    directory,
    upstream: args.upstream,
    upstreamUsername: args['upstream-username'],
    upstreamPassword: process.env.OTA_GATEWAY_UPSTREAM_PASSWORD,
    namespace: args.ns,
    upstreamProtocol: args['upstream-protocol'],
    attributes,
    limits,
  });
} catch (err) {
  fail(err.message);
}
gateway.on('connect', (e) => log(`${e.deviceId} (${e.dialect}) connected from ${e.remote}, client id ${e.clientId}`, 'connect'));
gateway.on('disconnect', (e) => log(`${e.deviceId} disconnected: ${e.reason}`, 'disconnect'));
// Never the username: a ThingsBoard username is its token (the event does not carry it).
gateway.on('refused', (e) => limited('refused', console.log, `refused client id ${e.clientId} from ${e.remote}: ${e.message || e.reason}`));
gateway.on('denied', (e) => log(`${e.deviceId} may not ${e.kind} on ${e.topic}`, 'denied'));
gateway.on('malformed', (e) => log(`closed ${e.deviceId || e.remote}: ${e.message}`, 'malformed'));
gateway.on('error', (err) => limited('error', console.error, err.message));
gateway.on('protocol', (n) => console.log(`ota-gateway: ${n.message}`));

const PRESENCE_DELAY_MS = 1000;
if (repository) {
  // Sming and Biotz devices report nothing past their download: what the gateway sees them do
  // (a subscription reaching the retained notice, a reconnection after it) is how their update
  // is known, as with the ota-gateway node. Recorded here as device states in PostgreSQL, where
  // the driving Node-RED's rollouts read them; without this they stayed notified or downloaded.
  const { trackerFor } = require(path.join(dist, 'core', 'device-updates', 'tracker'));
  trackerFor(repository).start();
  // Each event is applied a second late (in order, with the time it happened): the notice's
  // state row (the driver's) or the download's (the instance that served it) may reach this
  // process after the device already acted on it, and the inference reads those states.
  const presence = (event, e, filters) => {
    if (!e.deviceId || !isDialectName(e.dialect)) return;
    const ev = { device: e.deviceId, dialect: e.dialect, event, ...(filters ? { filters } : {}), session: e.remote, at: new Date().toISOString() };
    setTimeout(() => repository.emit('presence', ev), PRESENCE_DELAY_MS).unref();
  };
  gateway.on('connect', (e) => presence('connect', e));
  gateway.on('subscribe', (e) => presence('subscribe', e, e.filters));
  gateway.on('disconnect', (e) => presence('disconnect', e));
}

(repository ? repository.ready : Promise.resolve()).then(
  () => gateway.listen(port, host),
  (err) => {
    console.error(`ota-gateway: ${err.message}`);
    process.exit(1);
  },
).then(
  (address) => console.log(`ota-gateway: devices connect to ${address.address}:${address.port}, proxied to ${redactUrl(args.upstream)} under ${args.ns}/{device}/`),
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
    registry.unwatch();
    const guard = setTimeout(() => process.exit(0), 5000);
    guard.unref();
    gateway.close().then(() => repository?.close()).then(() => process.exit(0));
  });
}
