#!/usr/bin/env node
'use strict';
// ota-repository from the command line: copies an OTA repository between its backends.
//
//   OTA_POSTGRES_URL=postgres://ota:pw@db/ota ota-repository to-postgres --dir ~/.node-red/mqtt-ota
//   OTA_POSTGRES_URL=postgres://ota:pw@db/ota ota-repository to-files --dir /srv/ota-copy

const fs = require('fs');
const path = require('path');
const { parseArgs } = require('util');

const USAGE = `usage: ota-repository <to-postgres | to-files> --dir <repository dir> [options]

  to-postgres               copy the file repository in --dir into an empty PostgreSQL database
  to-files                  copy the PostgreSQL repository into --dir (empty or new)
  --dir <path>              the storage directory (the ota-repository config node's)
  --postgres-url-file <p>   file holding the connection string (or the environment variable
                            OTA_POSTGRES_URL; never on the command line: it shows in ps)
  --secret-file <path>      the repository secret, when the config node was given one (or the
                            environment variable OTA_SECRET); default: secret.key in --dir

Stop Node-RED (or undeploy the repository) first: this copies the store, not a running instance.
Device tokens are HMACs under the secret, which moves with them: devices log in as before.
`;

function fail(message) {
  process.stderr.write(`ota-repository: ${message}\n\n${USAGE}`);
  process.exit(2);
}

let parsed;
try {
  parsed = parseArgs({
    allowPositionals: true,
    options: {
      dir: { type: 'string' },
      'postgres-url-file': { type: 'string' },
      'secret-file': { type: 'string' },
      help: { type: 'boolean', default: false },
    },
  });
} catch (err) {
  fail(err.message);
}
const { values: args, positionals } = parsed;
if (args.help) {
  process.stdout.write(USAGE);
  process.exit(0);
}
const command = positionals[0];
if (command !== 'to-postgres' && command !== 'to-files') fail('say to-postgres or to-files');
if (!args.dir) fail('--dir is required');

function readFileArg(name) {
  try {
    return fs.readFileSync(path.resolve(args[name]), 'utf8').trim();
  } catch (err) {
    fail(`cannot read --${name}: ${err.message}`);
  }
}

const url = args['postgres-url-file'] ? readFileArg('postgres-url-file') : process.env.OTA_POSTGRES_URL;
if (!url) fail('no connection string: set OTA_POSTGRES_URL or give --postgres-url-file');
const secret = args['secret-file'] ? readFileArg('secret-file') : process.env.OTA_SECRET || undefined;

const dist = path.join(__dirname, '..', 'dist');
const { filesToPostgres, postgresToFiles } = require(path.join(dist, 'core', 'storage', 'migrate'));
const { redact } = require(path.join(dist, 'core', 'storage', 'postgres', 'client'));
const dir = path.resolve(args.dir);

const run = command === 'to-postgres' ? filesToPostgres(dir, url, secret) : postgresToFiles(url, dir);
run.then(
  (r) => {
    const where = command === 'to-postgres' ? `${dir} -> ${redact(url)}` : `${redact(url)} -> ${dir}`;
    console.log(`ota-repository: copied ${where}: ${r.firmware} firmware (${r.images} images), ${r.devices} devices, ${r.states} device states, ${r.rollouts} rollouts, ${r.journal} journal entries`);
  },
  (err) => {
    process.stderr.write(`ota-repository: ${redact(err.message)}\n`);
    process.exit(1);
  },
);
