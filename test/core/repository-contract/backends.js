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
      url = await cluster.createDatabase();
    },
    get url() {
      return url;
    },
    async instance(options = {}) {
      const dir = tempDir('ota-contract-pg-');
      dirs.push(dir);
      const repo = new OtaRepository({ dir, storage: { kind: 'postgres', connectionString: url, leaseMs: options.leaseMs ?? 1500 }, ...options });
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

module.exports = { backends: [files(), postgres()] };
