#!/usr/bin/env node
'use strict';
// ota-sim: simulated OTA devices of any dialect against an MQTT broker, with a progress display.
// Usage text: `ota-sim --help`, and docs/simulator.md.
const { parseArgs } = require('util');
const path = require('path');

const HELP = `Usage: ota-sim [options]

Simulates devices that update their firmware over MQTT the way real devices of each platform do.

  --broker URL          MQTT broker (default $OTA_BROKER_URL or mqtt://127.0.0.1:1883)
  --dialect NAME        thingsboard | tago | tencent | biotz | sming | tasmota | all (default thingsboard)
  --count N             devices per dialect (default 1)
  --groups LIST         several groups, e.g. thingsboard:5,tago:2,sming:1 (instead of --dialect/--count)
  --id PATTERN          device id pattern; {n} number, {i} fleet index, {dialect} (default {dialect}-{n})
  --token PATTERN       token pattern; {id} too (default: the device id)
  --client-id PATTERN   MQTT client id pattern (default: the device id; Tencent: {product}{id}, as its SDK)
  --device-secret PATTERN
                        Tencent device secret (base64) pattern, {id} too: the device signs its
                        username with it as Tencent's C SDK does (default: no signature)
  --start-index N       first {n} (default 1)
  --version V           version the devices run at start (default 1.0.0; Biotz: the firmware name)
  --title T             ThingsBoard current_fw_title (default sim-firmware)
  --product P           Tencent product id (default SIMPRODUCT)
  --customer C          Biotz customer id
  --app A               Sming application id (default test)
  --sming-prefix P      Sming topic prefix (default '': a/test/u/4.3, what Sming's Upgrade sample
                        subscribes to; '/' gives the older /a/test/u/4.3)
  --sming-decoder D     strict | sming (sming = the real decoder, bugs included)
  --sming-one-byte      Sming one-byte patch version instead of varint
  --tago-seed           TagoIO devices as the seed's script: no firmware_version/firmware_status
                        reports, they subscribe and wait
  --tasmota-flash BYTES Tasmota: flash the running image and a new one share; an image that does
                        not fit goes through {title}-minimal first (default: any image fits)
  --chunk-size BYTES    ThingsBoard chunk size asked for (default 4096)
  --protocol-version V  4 (MQTT 3.1.1, default) or 5; ThingsBoard devices with 5 behave as the
                        stock Python SDK (subscribe v2/fw/response/+: needs the ota-gateway)
  --concurrency N       most devices downloading at once
  --drop-at F           fault: cut the download connection at fraction F (0..1) of the image, then resume
  --corrupt-chunk N     fault: corrupt chunk N (HTTP dialects: 4 KiB block N) once
  --stall-at F          fault: stop requesting at fraction F ...
  --stall-ms MS         ... for MS milliseconds
  --fault-devices LIST  which device numbers ({n}) get the faults, e.g. 1,3 (default all)
  --fail-rate F         this share (0..1) of each group's devices fail every update (each image
                        they take arrives corrupted): to watch a rollout's error threshold work
  --fail-devices LIST   these device numbers ({n}) fail every update, e.g. 5,10
  --exit-when-updated   exit 0 once every device runs a new image (default: run until Ctrl-C)
  --timeout SECONDS     with --exit-when-updated: exit 1 if not all updated by then
  --json                one JSON line per device state change instead of bars
  --quiet               no display, errors only
  -h, --help            this text
`;

function fail(message) {
  process.stderr.write(`ota-sim: ${message}\n`);
  process.exit(2);
}

function number(value, name, { min = 0, integer = true } = {}) {
  if (value === undefined) return undefined;
  const n = Number(value);
  if (!Number.isFinite(n) || n < min || (integer && !Number.isInteger(n))) fail(`--${name} must be a${integer ? 'n integer' : ' number'} >= ${min}`);
  return n;
}

function main() {
  let args;
  try {
    ({ values: args } = parseArgs({
      options: {
        broker: { type: 'string' }, dialect: { type: 'string' }, count: { type: 'string' }, groups: { type: 'string' },
        id: { type: 'string' }, token: { type: 'string' }, 'client-id': { type: 'string' }, 'device-secret': { type: 'string' }, 'start-index': { type: 'string' },
        version: { type: 'string' }, title: { type: 'string' }, product: { type: 'string' }, customer: { type: 'string' },
        app: { type: 'string' }, 'sming-prefix': { type: 'string' }, 'sming-decoder': { type: 'string' }, 'sming-one-byte': { type: 'boolean' }, 'tago-seed': { type: 'boolean' }, 'tasmota-flash': { type: 'string' },
        'chunk-size': { type: 'string' }, concurrency: { type: 'string' }, 'protocol-version': { type: 'string' },
        'drop-at': { type: 'string' }, 'corrupt-chunk': { type: 'string' }, 'stall-at': { type: 'string' }, 'stall-ms': { type: 'string' },
        'fault-devices': { type: 'string' }, 'fail-rate': { type: 'string' }, 'fail-devices': { type: 'string' }, 'exit-when-updated': { type: 'boolean' }, timeout: { type: 'string' },
        json: { type: 'boolean' }, quiet: { type: 'boolean' }, help: { type: 'boolean', short: 'h' },
      },
      strict: true,
    }));
  } catch (err) {
    fail(`${err.message}\n\n${HELP}`);
  }
  if (args.help) {
    process.stdout.write(HELP);
    return;
  }

  let sim;
  try {
    sim = require(path.join(__dirname, '..', 'dist', 'sim'));
  } catch {
    fail('dist/sim is missing: run `npm run build` first');
  }

  const ALL = ['thingsboard', 'tago', 'tencent', 'biotz', 'sming', 'tasmota'];
  const count = number(args.count, 'count') ?? 1;
  let groups;
  if (args.groups) {
    groups = args.groups.split(',').filter(Boolean).map((g) => {
      const [dialect, n = '1'] = g.split(':');
      return { dialect, count: number(n, 'groups') };
    });
  } else if (args.dialect === 'all') {
    groups = ALL.map((dialect) => ({ dialect, count }));
  } else {
    groups = [{ dialect: args.dialect ?? 'thingsboard', count }];
  }
  const decoder = args['sming-decoder'];
  if (decoder !== undefined && decoder !== 'strict' && decoder !== 'sming') fail('--sming-decoder is strict or sming');
  const faults = {
    dropAt: number(args['drop-at'], 'drop-at', { integer: false }),
    corruptChunk: number(args['corrupt-chunk'], 'corrupt-chunk'),
    stallAt: number(args['stall-at'], 'stall-at', { integer: false }),
    stallMs: number(args['stall-ms'], 'stall-ms'),
  };
  const options = {
    broker: args.broker ?? process.env.OTA_BROKER_URL ?? 'mqtt://127.0.0.1:1883',
    groups,
    idPattern: args.id,
    tokenPattern: args.token,
    clientIdPattern: args['client-id'],
    deviceSecretPattern: args['device-secret'],
    startIndex: number(args['start-index'], 'start-index'),
    version: args.version,
    title: args.title,
    product: args.product,
    customer: args.customer,
    app: args.app,
    smingPrefix: args['sming-prefix'],
    smingDecoder: decoder,
    smingVarint: args['sming-one-byte'] ? false : undefined,
    tagoVersionReports: args['tago-seed'] ? false : undefined,
    tasmotaFlashSize: number(args['tasmota-flash'], 'tasmota-flash'),
    chunkSize: number(args['chunk-size'], 'chunk-size', { min: 1 }),
    protocolVersion: number(args['protocol-version'], 'protocol-version', { min: 4 }),
    concurrency: number(args.concurrency, 'concurrency', { min: 1 }),
    faults: Object.fromEntries(Object.entries(faults).filter(([, v]) => v !== undefined)),
    faultDevices: args['fault-devices'] ? args['fault-devices'].split(',').map((n) => number(n, 'fault-devices')) : undefined,
    failRate: number(args['fail-rate'], 'fail-rate', { integer: false }),
    failDevices: args['fail-devices'] ? args['fail-devices'].split(',').map((n) => number(n, 'fail-devices')) : undefined,
  };
  for (const key of Object.keys(options)) if (options[key] === undefined) delete options[key];
  const timeoutS = number(args.timeout, 'timeout', { integer: false });

  let fleet;
  try {
    fleet = new sim.Fleet(options);
  } catch (err) {
    fail(err.message);
  }

  const display = !args.json && !args.quiet ? new sim.ProgressDisplay(fleet, process.stdout) : undefined;
  const say = (line) => (display ? display.log(line) : args.quiet ? undefined : process.stderr.write(line + '\n'));
  if (args.json) {
    fleet.on('state', (d, state) => {
      process.stdout.write(JSON.stringify({ at: new Date().toISOString(), device: d.id, dialect: d.dialect, state, version: d.version, percent: d.percent(), sha256: state === 'updated' ? d.sha256 : undefined, error: state === 'failed' ? d.lastError : undefined }) + '\n');
    });
  }
  fleet.on('state', (d, state) => {
    if (state === 'failed' && !args.json) say(`${d.id}: failed: ${d.lastError ?? 'unknown error'}`);
  });
  fleet.on('log', (line) => { if (process.env.OTA_SIM_DEBUG) say(line); });

  let stopping = false;
  const shutdown = async (code) => {
    if (stopping) return;
    stopping = true;
    display?.stop();
    await fleet.stop();
    process.exitCode = code;
  };
  process.on('SIGINT', () => void shutdown(130));
  process.on('SIGTERM', () => void shutdown(143));

  say(`ota-sim: ${fleet.devices.length} device(s) -> ${options.broker}`);
  fleet.start().then(async () => {
    display?.start();
    if (!args['exit-when-updated']) return;
    try {
      await fleet.waitAllUpdated(timeoutS !== undefined ? timeoutS * 1000 : 2 ** 31 - 1);
      await shutdown(0);
    } catch (err) {
      say(err.message);
      await shutdown(1);
    }
  }, (err) => {
    display?.stop();
    process.stderr.write(`ota-sim: ${err.message}\n`);
    process.exitCode = 1;
  });
}

main();
