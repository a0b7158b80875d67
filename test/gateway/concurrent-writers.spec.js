'use strict';
const assert = require('assert');
const path = require('path');
const { spawn } = require('child_process');
const h = require('./helpers');
const { DeviceRegistry } = require('../../dist/core/devices');

// Node-RED and the ota-gateway command line (with --auto-register) share one storage directory.
// Each used to rewrite devices.json from its own copy, erasing the devices the other had added.

const SECRET = 'x'.repeat(40);
const registryModule = path.join(__dirname, '../../dist/core/devices');

/** Another process registering `count` devices named `{prefix}{i}`, one after the other. */
function writerProcess(dir, prefix, count) {
  const script = `
    const { DeviceRegistry } = require(${JSON.stringify(registryModule)});
    const registry = new DeviceRegistry(${JSON.stringify(dir)}, Buffer.from('${SECRET}'));
    (async () => {
      for (let i = 0; i < ${count}; i++) await registry.register({ id: '${prefix}' + i, dialect: 'tago', token: '${prefix}token' + i });
    })().catch((err) => { console.error(err); process.exit(1); });
  `;
  const child = spawn(process.execPath, ['-e', script], { stdio: ['ignore', 'ignore', 'inherit'] });
  return new Promise((resolve) => child.once('exit', resolve));
}

const ids = (registry) => registry.list().map((d) => d.id).sort();
const names = (prefix, count) => Array.from({ length: count }, (_, i) => `${prefix}${i}`);

describe('devices.json shared by several processes', function () {
  this.timeout(20000);

  it('loses no process\'s devices when three write at once, and each sees the others\'', async function () {
    const store = h.makeRepository();
    try {
      const mine = store.repo.devices;
      mine.watch?.(50);
      const here = (async () => {
        for (const id of names('here-', 30)) await mine.register({ id, dialect: 'thingsboard' });
      })();
      const codes = await Promise.all([writerProcess(store.dir, 'p1-', 30), writerProcess(store.dir, 'p2-', 30), here]);
      assert.deepStrictEqual(codes.slice(0, 2), [0, 0]);
      const expected = [...names('here-', 30), ...names('p1-', 30), ...names('p2-', 30)].sort();
      assert.deepStrictEqual(ids(new DeviceRegistry(store.dir, Buffer.from(SECRET))), expected);
      // The other processes' devices reach this one, tokens and all.
      await h.until(() => ids(mine).length === expected.length);
      assert.strictEqual(mine.byToken('p2-token7').id, 'p2-7');
    } finally {
      store.repo.devices.unwatch?.();
      await store.close();
    }
  });

  it('keeps a deletion when another process writes after it', async function () {
    const store = h.makeRepository();
    try {
      const a = store.repo.devices;
      await a.register({ id: 'gone', dialect: 'tago' });
      const b = new DeviceRegistry(store.dir, Buffer.from(SECRET));
      await a.remove('gone');
      await b.register({ id: 'new', dialect: 'tago' });
      assert.deepStrictEqual(ids(new DeviceRegistry(store.dir, Buffer.from(SECRET))), ['new']);
      assert.deepStrictEqual(ids(b), ['new']);
    } finally {
      await store.close();
    }
  });

  it('takes over the lock of a writer that died holding it', async function () {
    const store = h.makeRepository();
    try {
      const dead = spawn(process.execPath, ['-e', '0']);
      await new Promise((resolve) => dead.once('exit', resolve));
      require('fs').writeFileSync(path.join(store.dir, 'devices.json.lock'), `${dead.pid} ${require('os').hostname()}`);
      await store.repo.devices.register({ id: 'after-crash', dialect: 'tago' });
      assert.deepStrictEqual(ids(new DeviceRegistry(store.dir, Buffer.from(SECRET))), ['after-crash']);
    } finally {
      await store.close();
    }
  });

  describe('with the command line gateway auto-registering devices', function () {
    let broker, store, cli, url;
    const clients = [];

    before(async function () {
      broker = await h.startAedes();
      store = h.makeRepository();
      store.repo.devices.watch?.(50);
      cli = await h.runCli(['--dir', store.dir, '--listen', '127.0.0.1:0', '--upstream', broker.url, '--auto-register', 'thingsboard'], { OTA_SECRET: SECRET });
      url = cli.url;
    });

    after(async function () {
      store.repo.devices.unwatch?.();
      await h.endAll(clients);
      if (cli) await cli.stop();
      if (broker) await broker.close();
      if (store) await store.close();
    });

    it('keeps Node-RED\'s devices and the gateway\'s, and each side sees the other\'s', async function () {
      const strangers = names('auto-', 15);
      const nodeRed = names('nr-', 15);
      await Promise.all([
        ...strangers.map(async (id) => clients.push(await h.connect(url, { clientId: id, username: `${id}-token` }))),
        (async () => {
          for (const id of nodeRed) await store.repo.devices.register({ id, dialect: 'thingsboard', token: `${id}-token` });
        })(),
      ]);
      const expected = [...strangers, ...nodeRed].sort();
      assert.deepStrictEqual(ids(new DeviceRegistry(store.dir, Buffer.from(SECRET))), expected);
      await h.until(() => ids(store.repo.devices).length === expected.length);
      assert.strictEqual(store.repo.devices.byToken('auto-3-token').id, 'auto-3');
      // The gateway learns Node-RED's last device (it follows devices.json) and lets it in.
      let board;
      while (!board) board = await h.connect(url, { clientId: 'board', username: 'nr-14-token' }).catch(() => h.sleep(50));
      clients.push(board);
    });
  });
});
