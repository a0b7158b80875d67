#!/usr/bin/env node
'use strict';
// `npm run fuzz` (= npm run build && node --expose-gc fuzz/run.js): fuzzes everything a device or an admin
// client can reach, and prints one table per target, each escape class with a shrunk
// reproducer, and a final line. Exit code 1 on any escape. Not part of `npm test` (a bounded
// slice of it is: test/fuzz.spec.js).
//
//   node fuzz/run.js [--seed S] [--target uplink,admin,gateway] [--quick]
//                    [--uplink N] [--admin N] [--http N] [--connections N] [--concurrency N]
//                    [--brokers aedes,mosquitto]
//
// Targets:
//   uplink   dialect uplink parsers, progress-parser path, chunk-service, topic filters, the
//            gateway's ACL policy, checksum/version/range parsers       (default 800,000 inputs)
//   admin    the admin API's parsers called directly (default 250,000) and real HTTP against a
//            Node-RED runtime (default 3,000 requests)
//   gateway  a real OtaGateway in front of aedes and mosquitto: hostile connections (default
//            10,000 per broker, 200 at a time) while a ThingsBoard device downloads an image
// The same --seed and counts give the same inputs (the gateway's timing still varies).

const { Rng } = require('./lib/prng');
const { EscapeLog } = require('./lib/escapes');

const TARGETS = { uplink: './targets/uplink', admin: './targets/admin', gateway: './targets/gateway' };

function parseArgs(argv) {
  const o = { seed: String(Date.now() % 1e9), targets: Object.keys(TARGETS), quick: false, counts: {} };
  const num = (v, name) => {
    const n = Number(String(v).replace(/_/g, ''));
    if (!Number.isSafeInteger(n) || n < 0) throw new Error(`${name} must be a whole number`);
    return n;
  };
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i];
    const v = () => {
      if (i + 1 >= argv.length) throw new Error(`${a} needs a value`);
      return argv[++i];
    };
    if (a === '--seed') o.seed = v();
    else if (a === '--target') o.targets = v().split(',').filter(Boolean);
    else if (a === '--quick') o.quick = true;
    else if (['--uplink', '--admin', '--http', '--connections', '--concurrency'].includes(a)) o.counts[a.slice(2)] = num(v(), a);
    else if (a === '--brokers') o.brokers = v().split(',').filter(Boolean);
    else if (a === '--help' || a === '-h') {
      console.log(require('fs').readFileSync(require.resolve('./run'), 'utf8').split('\n').slice(2, 20).join('\n'));
      process.exit(0);
    } else throw new Error(`unknown argument ${a} (try --help)`);
  }
  for (const t of o.targets) if (!TARGETS[t]) throw new Error(`unknown target ${t}: use ${Object.keys(TARGETS).join(', ')}`);
  return o;
}

function table(title, header, rows) {
  const all = [header, ...rows.map((r) => r.map((c) => (typeof c === 'number' ? c.toLocaleString('en-US') : String(c))))];
  const widths = header.map((_, k) => Math.max(...all.map((r) => r[k].length)));
  const line = (r) => '  ' + r.map((c, k) => (k === 0 ? c.padEnd(widths[k]) : c.padStart(widths[k]))).join('  ');
  return [title, line(header), '  ' + widths.map((w) => '-'.repeat(w)).join('  '), ...all.slice(1).map(line)].join('\n');
}

/**
 * Runs the targets; returns {results, escapes, inputs}. Used by the CLI and by test/fuzz.spec.js.
 * @param {object} o  {seed, targets, quick, counts, brokers, log}
 */
async function fuzz(o) {
  const log = o.log ?? ((line) => console.log(line));
  const results = [];
  for (const name of o.targets) {
    const target = require(TARGETS[name]);
    const escapes = new EscapeLog(name);
    const started = Date.now();
    const result = await target.run({ rng: new Rng(`${o.seed}:${name}`), escapes, quick: o.quick, counts: o.counts, brokers: o.brokers, log });
    const seconds = (Date.now() - started) / 1000;
    log('');
    log(table(`${name}: seed ${o.seed}, ${seconds.toFixed(1)} s`, result.header ?? ['fuzzer', 'inputs', 'escapes'], result.rows));
    for (const extra of result.notes ?? []) log(`  ${extra}`);
    for (const line of escapes.lines()) log(line);
    results.push({ name, escapes, inputs: result.inputs, result });
  }
  const escapes = results.reduce((n, r) => n + r.escapes.total, 0);
  const inputs = results.reduce((n, r) => n + r.inputs, 0);
  return { results, escapes, inputs };
}

if (require.main === module) {
  let o;
  try {
    o = parseArgs(process.argv.slice(2));
  } catch (err) {
    console.error(err.message);
    process.exit(2);
  }
  console.log(`fuzz: seed ${o.seed}, targets ${o.targets.join(', ')}${o.quick ? ' (quick)' : ''}; rerun with --seed ${o.seed}`);
  fuzz(o).then(
    ({ results, escapes, inputs }) => {
      const classes = results.reduce((n, r) => n + r.escapes.classes.size, 0);
      console.log('');
      const parts = results.map((r) => `${r.name} ${r.inputs.toLocaleString('en-US')}${r.name === 'gateway' ? ' connections' : ''}`).join(', ');
      console.log(`fuzz ${escapes ? 'FAILED' : 'passed'}: ${inputs.toLocaleString('en-US')} inputs (${parts}), ${escapes.toLocaleString('en-US')} escapes in ${classes} classes, seed ${o.seed}`);
      process.exit(escapes ? 1 : 0);
    },
    (err) => {
      console.error(err);
      process.exit(2);
    },
  );
}

module.exports = { fuzz, parseArgs };
