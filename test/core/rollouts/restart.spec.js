'use strict';
const assert = require('assert');
const fs = require('fs');
const path = require('path');
const { spawn } = require('child_process');
const { tempDir } = require('../../support/images');

const CHILD = path.join(__dirname, '../../support/rollout-child.js');
const DEVICES = 100;

function run(dir, mode) {
  const child = spawn(process.execPath, [CHILD, dir, mode, String(DEVICES)], { stdio: ['ignore', 'pipe', 'pipe'] });
  let out = '';
  child.stdout.on('data', (d) => (out += d));
  child.stderr.on('data', (d) => (out += d));
  const exited = new Promise((resolve) => child.on('exit', (code, signal) => resolve({ code, signal, out })));
  return { child, exited };
}

function notices(dir) {
  try {
    return fs.readFileSync(path.join(dir, 'notices.log'), 'utf8').split('\n').filter(Boolean);
  } catch {
    return [];
  }
}

describe('rollout: kill -9 mid-rollout and restart', function () {
  this.timeout(30_000);
  let dir;
  beforeEach(() => (dir = tempDir()));
  afterEach(() => fs.rmSync(dir, { recursive: true, force: true }));

  it('finishes after the restart with every device notified once and the groups in order', async () => {
    const first = run(dir, 'create');
    while (notices(dir).length < 30) {
      if (first.child.exitCode !== null) assert.fail(`the first run ended early: ${(await first.exited).out}`);
      await new Promise((r) => setTimeout(r, 2));
    }
    first.child.kill('SIGKILL');
    const { signal } = await first.exited;
    assert.strictEqual(signal, 'SIGKILL');
    const before = notices(dir).length;
    assert.ok(before < DEVICES, `killed before the end (${before} notices)`);

    const second = run(dir, 'resume');
    const { code, out } = await second.exited;
    assert.strictEqual(code, 0, out);
    assert.match(out, /finished/);
    const lines = notices(dir);
    // A device whose release was written just before the kill but whose notice was not sent gets
    // it from the retry after its timeout ('renotify'): still one notice per device.
    const assigns = lines.map((l) => l.split(' ')[1]);
    assert.strictEqual(assigns.length, DEVICES, `one notice per device:\n${lines.slice(-8).join(" ")} (${lines.length})`);
    assert.strictEqual(new Set(assigns).size, DEVICES, 'no device notified twice');
    // Groups in order: the first 10 devices (10 %), then the next 30 (30 %), then the rest (first
    // notices; a retry's comes when it comes).
    const order = lines.filter((l) => l.startsWith('assign ')).map((l) => Number(l.split(' ')[1].slice(1)));
    for (const start of [10, 40]) {
      const first = order.findIndex((n) => n >= start);
      assert.ok(first >= 0 && order.slice(first).every((n) => n >= start), `no device under d${start} notified after the group starting there (no group skipped or started early)`);
    }
  });
});
