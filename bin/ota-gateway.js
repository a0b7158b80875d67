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
if (args.secret !== undefined) fail('--secret is not accepted (a command line shows in ps): give --secret-file <path> or the environment variable OTA_SECRET');

const dist = path.join(__dirname, '..', 'dist');
const { OtaGateway, RegistryDirectory, isIdentityMode, isUpstreamProtocol } = require(path.join(dist, 'gateway'));
const { DeviceRegistry, isTopicSafe } = require(path.join(dist, 'core', 'devices'));
const { redactUrl } = require(path.join(dist, 'gateway', 'upstream'));
const { isDialectName } = require(path.join(dist, 'core', 'types'));

const dir = path.resolve(args.dir);
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

const secret = readSecret();
const registry = new DeviceRegistry(dir, secret);
const directory = new RegistryDirectory(registry, { mode: args.identity, autoRegister, product: attributes.product });

// Node-RED keeps editing devices.json while we run: pick up its changes within a quarter second.
// Our own writes (auto-registration) merge with its under a lock file; a device it deletes or
// gives a new token loses its connections here (the gateway watches the directory's registry).
registry.watch(250);
registry.on('reloadError', (err) => console.error(`ota-gateway: cannot reload devices.json (keeping the previous list): ${err.message}`));

function log(text) {
  if (!args.quiet) console.log(`ota-gateway: ${text}`);
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
  });
} catch (err) {
  fail(err.message);
}
gateway.on('connect', (e) => log(`${e.deviceId} (${e.dialect}) connected from ${e.remote}, client id ${e.clientId}`));
gateway.on('disconnect', (e) => log(`${e.deviceId} disconnected: ${e.reason}`));
// Never the username: a ThingsBoard username is its token (the event does not carry it).
gateway.on('refused', (e) => console.log(`ota-gateway: refused client id ${e.clientId} from ${e.remote}: ${e.message || e.reason}`));
gateway.on('denied', (e) => log(`${e.deviceId} may not ${e.kind} on ${e.topic}`));
gateway.on('malformed', (e) => log(`closed ${e.deviceId || e.remote}: ${e.message}`));
gateway.on('error', (err) => console.error(`ota-gateway: ${err.message}`));
gateway.on('protocol', (n) => console.log(`ota-gateway: ${n.message}`));

gateway.listen(port, host).then(
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
    gateway.close().then(() => process.exit(0));
  });
}
