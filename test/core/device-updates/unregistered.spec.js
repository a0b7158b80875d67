'use strict';
const assert = require('assert');
const fs = require('fs');
const path = require('path');
const { OtaRepository } = require('../../../dist/core/repository');
const { trackerFor } = require('../../../dist/core/device-updates/tracker');
const { UnregisteredTally } = require('../../../dist/core/device-updates/unregistered');
const { imageOf, tempDir } = require('../../support/images');

// Records nobody registered: the tracker keeps none, and those an older version kept go at start.

describe('rollout records of unregistered devices', function () {
  let dir;
  beforeEach(() => {
    dir = tempDir();
  });
  afterEach(() => fs.rmSync(dir, { recursive: true, force: true }));

  it('the tracker creates none, whatever the event says', async () => {
    const repo = new OtaRepository({ dir });
    const tracker = trackerFor(repo);
    const summaries = [];
    tracker.on('summary', (s) => summaries.push(s));
    const at = new Date().toISOString();
    for (const state of ['downloading', 'updated', 'failed']) {
      assert.strictEqual(tracker.record({ device: 'ghost', dialect: 'tencent', state, version: '1.0.0', at }), undefined);
    }
    assert.strictEqual(repo.rollout.get('ghost'), undefined);
    assert.deepStrictEqual(summaries, []);
    await repo.flush();
    assert.ok(!fs.existsSync(path.join(dir, 'device-states.json')));
  });

  it('drops at start the records an older version made for unregistered ids, and keeps every other', async () => {
    const repo = new OtaRepository({ dir });
    await repo.devices.register({ id: 'known', dialect: 'thingsboard' });
    const { record: fw } = await repo.firmware.store({ image: imageOf(100), title: 'a', version: '1.0.0' });
    await repo.flush();
    const at = new Date().toISOString();
    const junk = (device) => ({ device, dialect: 'tencent', state: 'downloading', attempts: 0, stateSince: at, lastSeen: at, percent: 5 });
    const states = [
      junk('ghost-1'),
      junk('ghost-2'),
      { device: 'known', dialect: 'thingsboard', state: 'idle', attempts: 0, stateSince: at, current: { version: '0.9.0' } },
      // Assigned, then its device entry went: it can still be unassigned, so it stays.
      { device: 'gone', dialect: 'tencent', firmware: fw.id, target: { title: 'a', version: '1.0.0' }, state: 'notified', attempts: 1, stateSince: at },
    ];
    fs.writeFileSync(path.join(dir, 'device-states.json'), JSON.stringify(states));
    const reopened = new OtaRepository({ dir });
    assert.deepStrictEqual(reopened.rollout.list().map((s) => s.device), ['gone', 'known']);
    assert.strictEqual(reopened.rollout.summary().total, 1);
    await reopened.flush();
    assert.deepStrictEqual(JSON.parse(fs.readFileSync(path.join(dir, 'device-states.json'), 'utf8')).map((s) => s.device), ['gone', 'known']);
  });

  it('the tally holds a count and three short examples however many ids come, and starts afresh after each report', () => {
    const tally = new UnregisteredTally();
    assert.strictEqual(tally.take(), undefined);
    for (let i = 0; i < 100_000; i++) tally.add(`${'z'.repeat(1000)}${i}`);
    tally.add('ghost');
    const line = tally.take();
    assert.match(line, /^ignored 100001 uplinks /);
    assert.ok(line.length < 300, `${line.length} characters`);
    assert.strictEqual(tally.take(), undefined);
    tally.add('a"b\\c\n');
    assert.match(tally.take(), /ignored 1 uplink from .*"a\\"b\\\\c\\u000a"/);
  });
});
