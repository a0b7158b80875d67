'use strict';
// The two repository backends the contract specs run against, behind one shape: `instance()`
// opens a repository as one Node-RED would (a directory of its own on PostgreSQL, where only
// its image cache lives; the shared directory on files), `reset()` empties the store between
// specs, `stop()` removes everything the backend started.
const fs = require('fs');
const { OtaRepository } = require('../../../dist/core/repository');
const { tempDir } = require('../../support/images');
const { startPostgres } = require('../../support/postgres');

function files() {
  let dir;
  const dirs = [];
  return {
    name: 'files',
    shared: false,
    async start() {
      return true;
    },
    async reset() {
      dir = tempDir('ota-contract-files-');
      dirs.push(dir);
    },
    async instance(options = {}) {
      const repo = new OtaRepository({ dir, ...options });
      await repo.ready;
      // Another Node-RED process on the same directory follows devices.json (as the node does).
      repo.devices.watch(100);
      return repo;
    },
    stop() {
      for (const d of dirs) fs.rmSync(d, { recursive: true, force: true });
    },
  };
}

function postgres() {
  let cluster;
  let url;
  const dirs = [];
  return {
    name: 'postgres',
    shared: true,
    async start() {
      cluster = await startPostgres();
      return cluster !== null;
    },
    async reset() {
      // One database for the run (created empty: the first instance migrates it), emptied between
      // specs: creating a database per spec costs most of a second.
      if (!url) {
        url = await cluster.createDatabase();
        return;
      }
      const { Client } = require('pg');
      const c = new Client({ connectionString: url });
      await c.connect();
      try {
        await c.query("SELECT to_regclass('ota_settings') IS NOT NULL AS migrated").then(async ({ rows }) => {
          if (rows[0].migrated) await c.query('TRUNCATE ota_settings, ota_blobs, ota_firmware, ota_devices, ota_device_states, ota_rollouts, ota_rollout_journal, ota_leases');
        });
      } finally {
        await c.end();
      }
    },
    get url() {
      return url;
    },
    async instance(options = {}) {
      const dir = tempDir('ota-contract-pg-');
      dirs.push(dir);
      const repo = new OtaRepository({ dir, storage: { kind: 'postgres', connectionString: url, leaseMs: options.leaseMs ?? 4000 }, ...options });
      repo.on('storageError', () => undefined);
      await repo.ready;
      return repo;
    },
    stop() {
      cluster?.stop();
      for (const d of dirs) fs.rmSync(d, { recursive: true, force: true });
    },
  };
}

/** Fresh backends for one spec file (each starts and stops its own cluster). */
function makeBackends() {
  return [files(), postgres()];
}

module.exports = { makeBackends };
