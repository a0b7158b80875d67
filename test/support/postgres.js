'use strict';
// A throwaway PostgreSQL cluster for specs: initdb in a temp directory, a free loopback port,
// password authentication, removed (with its server stopped) in stop(). initdb and the server
// refuse to run as root, and CI runs as root: there they run as the `postgres` user, which owns
// the directory. Returns null with the reason when PostgreSQL is not installed.
//
// OTA_PG_LOG=<dir>: the cluster logs every write with its parameters, each line naming the client
// (PGAPPNAME: the scale-out e2e names its Node-REDs red0.. and gateways gw0..), and the log is
// kept in <dir> when the cluster stops. How the races between instances were found.
const fs = require('fs');
const os = require('os');
const path = require('path');
const crypto = require('crypto');
const { execFileSync } = require('child_process');
const { freePort } = require('../../scripts/servers');

const BIN_DIRS = ['/usr/lib/postgresql/17/bin', '/usr/lib/postgresql/16/bin', '/usr/lib/postgresql/15/bin'];

function binDir() {
  if (process.env.OTA_PG_BIN) return process.env.OTA_PG_BIN;
  return BIN_DIRS.find((d) => fs.existsSync(path.join(d, 'initdb')));
}

/** Why the cluster cannot start here, or undefined when it can. */
function unavailable() {
  const bin = binDir();
  if (!bin) return `PostgreSQL is not installed (no initdb in ${BIN_DIRS.join(', ')}; apt-get install postgresql)`;
  if (process.getuid?.() === 0) {
    try {
      execFileSync('id', ['postgres'], { stdio: 'ignore' });
    } catch {
      return 'running as root and there is no postgres user to run initdb as';
    }
  }
  return undefined;
}

/** Starts a cluster; resolves to { url, stop() } or null when unavailable (reason printed). */
async function startPostgres() {
  const why = unavailable();
  if (why) {
    console.log(`      (PostgreSQL specs skipped: ${why})`);
    return null;
  }
  const bin = binDir();
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'ota-pg-'));
  const asRoot = process.getuid?.() === 0;
  const run = (cmd, args) => {
    const full = path.join(bin, cmd);
    const opts = { stdio: ['ignore', 'pipe', 'pipe'], cwd: dir };
    return asRoot ? execFileSync('runuser', ['-u', 'postgres', '--', full, ...args], opts) : execFileSync(full, args, opts);
  };
  const data = path.join(dir, 'data');
  const password = crypto.randomBytes(12).toString('hex');
  const pwfile = path.join(dir, 'pw');
  fs.writeFileSync(pwfile, password + '\n', { mode: 0o600 });
  if (asRoot) {
    execFileSync('chown', ['-R', 'postgres:postgres', dir]);
  }
  const port = await freePort();
  let started = false;
  const stop = () => {
    if (started) {
      try {
        run('pg_ctl', ['-D', data, '-m', 'immediate', 'stop', '-w']);
      } catch {
        /* already gone */
      }
      started = false;
    }
    const keep = process.env.OTA_PG_LOG;
    if (keep && fs.existsSync(path.join(dir, 'log'))) {
      fs.mkdirSync(keep, { recursive: true });
      fs.copyFileSync(path.join(dir, 'log'), path.join(keep, `postgres-${process.pid}-${Date.now()}.log`));
    }
    fs.rmSync(dir, { recursive: true, force: true });
  };
  try {
    run('initdb', ['-D', data, '-U', 'ota', '--pwfile', pwfile, '--auth', 'md5', '-E', 'UTF8', '--no-sync']);
    const logWrites = process.env.OTA_PG_LOG ? ' -c log_statement=mod -c log_line_prefix=%m:%a:' : '';
    const opts = `-c listen_addresses=127.0.0.1 -p ${port} -k ${dir} -c fsync=off -c max_connections=60${logWrites}`;
    started = true;
    run('pg_ctl', ['-D', data, '-o', opts, '-l', path.join(dir, 'log'), '-w', '-t', '30', 'start']);
  } catch (err) {
    const log = fs.existsSync(path.join(dir, 'log')) ? fs.readFileSync(path.join(dir, 'log'), 'utf8') : '';
    stop();
    throw new Error(`throwaway PostgreSQL did not start: ${err.message}\n${err.stderr ?? ''}\n${log}`, { cause: err });
  }
  const base = `postgres://ota:${password}@127.0.0.1:${port}`;
  // The password as MD5: a SCRAM login costs about 120 ms of CPU in the JS client, and specs open
  // many connections (real deployments keep SCRAM; this cluster lives for one test run).
  {
    const { Client } = require('pg');
    const c = new Client({ connectionString: `${base}/postgres` });
    await c.connect();
    try {
      await c.query("SET password_encryption = 'md5'");
      await c.query(`ALTER ROLE ota PASSWORD '${password}'`);
    } finally {
      await c.end();
    }
  }
  let dbs = 0;
  return {
    url: `${base}/postgres`,
    port,
    /** A fresh empty database in the cluster (one per spec keeps specs apart). */
    async createDatabase() {
      const { Client } = require('pg');
      const name = `ota_${process.pid}_${++dbs}`;
      const c = new Client({ connectionString: `${base}/postgres` });
      await c.connect();
      try {
        await c.query(`CREATE DATABASE ${name}`);
      } finally {
        await c.end();
      }
      return `${base}/${name}`;
    },
    stop,
  };
}

module.exports = { startPostgres, unavailable };
