'use strict';
// One driver among several Node-REDs on one PostgreSQL: the lease holder runs the rollout; when
// it is killed (-9, no goodbye) another instance takes over within 10 s and finishes the
// rollout, every device notified once.
const assert = require('assert');
const fs = require('fs');
const path = require('path');
const { spawn } = require('child_process');
const { tempDir } = require('../../support/images');
const { startPostgres } = require('../../support/postgres');

const CHILD = path.join(__dirname, '../../support/pg-driver-child.js');
const DEVICES = 100;
const LEASE_MS = 4000;

describe('PostgreSQL repository: one driver, and a takeover when it dies', function () {
  this.timeout(90_000);
  let cluster;
  let url;
  let dir;
  const children = [];

  before(async function () {
    cluster = await startPostgres();
    if (!cluster) this.skip();
  });
  after(() => cluster?.stop());
  beforeEach(async () => {
    url = await cluster.createDatabase();
    dir = tempDir('ota-takeover-');
  });
  afterEach(() => {
    for (const c of children.splice(0)) if (c.child.exitCode === null && c.child.signalCode === null) c.child.kill('SIGKILL');
    fs.rmSync(dir, { recursive: true, force: true });
  });

  function run(name, mode) {
    const cache = path.join(dir, name);
    const child = spawn(process.execPath, [CHILD, url, cache, mode, String(DEVICES), path.join(dir, 'notices.log'), String(LEASE_MS)], { stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '';
    child.stdout.on('data', (d) => (out += d));
    child.stderr.on('data', (d) => (out += d));
    const exited = new Promise((resolve) => child.on('exit', (code, signal) => resolve({ code, signal, out })));
    const entry = { child, exited, out: () => out };
    children.push(entry);
    return entry;
  }

  function notices() {
    try {
      return fs.readFileSync(path.join(dir, 'notices.log'), 'utf8').split('\n').filter(Boolean);
    } catch {
      return [];
    }
  }

  async function until(check, ms, what) {
    const end = Date.now() + ms;
    while (!check()) {
      if (Date.now() > end) assert.fail(what);
      await new Promise((r) => setTimeout(r, 5));
    }
  }

  it('a standby takes over within 10 s of a kill -9 of the driver; every device is notified once', async () => {
    const first = run('a', 'create');
    await until(() => /driving/.test(first.out()), 15_000, `the first instance never drove: ${first.out()}`);
    const second = run('b', 'standby');
    await until(() => notices().length >= 30, 20_000, `no notices: ${first.out()}`);
    assert.doesNotMatch(second.out(), /driving/, 'two drivers at once');
    first.child.kill('SIGKILL');
    const killedAt = Date.now();
    assert.strictEqual((await first.exited).signal, 'SIGKILL');
    const before = notices().length;
    assert.ok(before < DEVICES, `killed before the end (${before} notices)`);

    await until(() => /driving (\d+)/.test(second.out()), 15_000, `no takeover: ${second.out()}`);
    const tookOver = Number(/driving (\d+)/.exec(second.out())[1]) - killedAt;
    assert.ok(tookOver < 10_000, `took over after ${tookOver} ms`);
    const ended = await Promise.race([second.exited, new Promise((r) => setTimeout(r, 30_000))]);
    if (!ended) assert.fail(`the standby did not finish the rollout: ${second.out()}\nfirst: ${first.out()}`);
    const { code, out } = ended;
    assert.strictEqual(code, 0, out);
    assert.match(out, /finished/);
    const assigns = notices().filter((l) => l.startsWith('assign ')).map((l) => l.split(' ')[1]);
    assert.strictEqual(new Set(assigns).size, DEVICES, 'every device notified');
    assert.strictEqual(assigns.length, DEVICES, 'no device notified twice');
    console.log(`      (took over ${tookOver} ms after the kill, lease ${LEASE_MS} ms)`);
  });
});
