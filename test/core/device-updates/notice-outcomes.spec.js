'use strict';
const assert = require('assert');
const fs = require('fs');
const { OtaRepository } = require('../../../dist/core/repository');
const { trackerFor } = require('../../../dist/core/device-updates/tracker');
const { imageOf, tempDir } = require('../../support/images');

// What ota-assign nodes say became of each notice decides the device's state: failed when no
// listener could build it, notified when any one sent it.

describe('notice outcomes reported to the tracker', function () {
  let dir, repo, tracker, fw;
  const error = { code: 'missing_attribute', message: 'tencent notice for d1: the topic $ota/update/{product}/{device} needs {product}' };

  beforeEach(async () => {
    dir = tempDir();
    repo = new OtaRepository({ dir });
    tracker = trackerFor(repo);
    fw = (await repo.firmware.store({ image: imageOf(100), title: 'app', version: '1.0.0' })).record;
    await repo.devices.register({ id: 'd1', dialect: 'tencent' });
    await repo.devices.register({ id: 'd2', dialect: 'tencent', attributes: { product: 'P' } });
  });
  afterEach(async () => {
    await repo.flush();
    fs.rmSync(dir, { recursive: true, force: true });
  });

  const listener = (outcomeOf) => (cmd, report) => report(Promise.resolve(cmd.devices.map(outcomeOf)));

  it('fails a device whose notice could not be built, with the reason, and counts it in the summary', async () => {
    const summaries = [];
    tracker.on('summary', (s) => summaries.push(s));
    repo.on('command', listener((device) => (device === 'd1' ? { device, error } : { device })));
    const { settled } = tracker.assign(fw, [repo.devices.get('d1'), repo.devices.get('d2')]);
    assert.strictEqual(repo.rollout.get('d1').state, 'notified', 'until the listener has answered');
    await settled;
    assert.deepStrictEqual([repo.rollout.get('d1').state, repo.rollout.get('d1').lastError], ['failed', error]);
    assert.strictEqual(repo.rollout.get('d2').state, 'notified');
    assert.deepStrictEqual([summaries.at(-1).failed, summaries.at(-1).notified], [1, 1]);
  });

  it('keeps a device notified when another listener sent its notice', async () => {
    repo.on('command', listener((device) => ({ device, error })));
    repo.on('command', listener((device) => ({ device })));
    await tracker.assign(fw, [repo.devices.get('d1')]).settled;
    assert.strictEqual(repo.rollout.get('d1').state, 'notified');
  });

  it('leaves a device that moved on before the outcome came (it reported progress) as it is', async () => {
    let answer;
    repo.on('command', (cmd, report) => report(new Promise((resolve) => (answer = () => resolve(cmd.devices.map((device) => ({ device, error })))))));
    const { settled } = tracker.assign(fw, [repo.devices.get('d1')]);
    tracker.record({ device: 'd1', dialect: 'tencent', state: 'downloading', percent: 10, at: new Date().toISOString() });
    answer();
    await settled;
    assert.strictEqual(repo.rollout.get('d1').state, 'downloading');
  });

  it('changes nothing for listeners that report no outcome (a flow of their own)', async () => {
    repo.on('command', () => {});
    await tracker.assign(fw, [repo.devices.get('d1')]).settled;
    assert.strictEqual(repo.rollout.get('d1').state, 'notified');
  });
});
