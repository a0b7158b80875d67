'use strict';
const assert = require('assert');
const fs = require('fs');
const { OtaRepository } = require('../../../dist/core/repository');
const { RolloutService } = require('../../../dist/core/rollouts/service');
const { trackerFor } = require('../../../dist/core/device-updates/tracker');
const { imageOf, tempDir } = require('../../support/images');

const SECRET = 'x'.repeat(40);

describe('rollouts on a repository', () => {
  let dir, repo, service, commands, fw1, fw2;

  async function open() {
    repo = new OtaRepository({ dir, secret: SECRET });
    commands = [];
    repo.on('command', (c) => commands.push([c.action, c.firmware && c.firmware.version, [...c.devices]]));
    service = new RolloutService(repo);
    service.start();
  }

  beforeEach(async () => {
    dir = tempDir();
    await open();
    ({ record: fw1 } = await repo.firmware.store({ image: imageOf(1000, 1), title: 'blink', version: '1.0.0' }));
    ({ record: fw2 } = await repo.firmware.store({ image: imageOf(1000, 2), title: 'blink', version: '2.0.0' }));
    for (const [id, dialect, product] of [['t1', 'tencent', 'P1'], ['t2', 'tencent', 'P2'], ['b1', 'thingsboard', undefined]]) {
      await repo.devices.register({ id, dialect, attributes: product ? { product } : {}, tags: ['fleet'] });
    }
  });
  afterEach(async () => {
    await service.stop();
    trackerFor(repo).stop();
    await repo.flush();
    fs.rmSync(dir, { recursive: true, force: true });
  });

  const report = (device, version) => trackerFor(repo).record({ device, dialect: repo.devices.get(device).dialect, state: 'updated', title: 'blink', version, at: new Date().toISOString() });

  it('answers a pause only once it is on disk: a kill -9 right after finds the rollout paused', async () => {
    const r = await service.create({ firmware: fw2.id, targets: { tag: 'fleet' }, plan: { rate: { perMinute: 1 } }, start: true });
    await service.act(r.id, 'pause');
    const after = new RolloutService(new OtaRepository({ dir, secret: SECRET })); // nothing else flushed
    assert.strictEqual(after.engine.get(r.id).state, 'paused');
    assert.strictEqual(after.engine.get(r.id).reason, 'manual');
  });

  it('answers not_driver, not success, when its instance lost the driver lease while writing', async () => {
    // On a shared database a Node-RED that stops driving writes no more: a rollout it created in
    // the meantime is not on record, and the caller must not be told it is.
    const persist = service.engine.persist.bind(service.engine);
    service.engine.persist = async () => {
      Object.defineProperty(repo, 'isDriver', { value: false, configurable: true });
      await persist();
    };
    await assert.rejects(service.create({ firmware: fw2.id, targets: { tag: 'fleet' }, start: true }), (err) => err.code === 'not_driver');
    delete repo.isDriver;
  });

  it('keeps a rollout\'s firmware in the catalogue until the rollout is over', async () => {
    const r = await service.create({ firmware: fw2.id, targets: { devices: ['t1'] } });
    await assert.rejects(repo.deleteFirmware(fw2.id), /a rollout that is not finished or aborted releases it/);
    await service.act(r.id, 'abort');
    await repo.deleteFirmware(fw2.id);
  });

  it('counts a device unassigned through the admin API (or deleted) as cancelled', async () => {
    const r = await service.create({ firmware: fw2.id, targets: { devices: ['t1', 't2'] }, plan: { error: { count: 0 } }, start: true });
    trackerFor(repo).unassign(['t1']);
    assert.strictEqual(r.devices[0].phase, 'cancelled');
    assert.strictEqual(r.state, 'paused');
  });

  it('leaves released devices assigned, not notified, while no ota-assign node sends notices', async () => {
    repo.removeAllListeners('command');
    await service.create({ firmware: fw2.id, targets: { devices: ['t1'] }, start: true });
    assert.strictEqual(repo.rollout.get('t1').state, 'assigned');
  });

  it('targets by filter on dialect, attributes and reported version', async () => {
    report('t1', '1.0.0');
    const byVersion = await service.create({ firmware: fw2.id, targets: { tag: 'fleet', filter: { dialect: 'tencent', version: '1.0.0' } } });
    assert.deepStrictEqual(byVersion.devices.map((e) => e.device), ['t1']);
    const byAttr = await service.create({ firmware: fw2.id, targets: { filter: { attributes: { product: 'P2' } } } });
    assert.deepStrictEqual(byAttr.devices.map((e) => e.device), ['t2']);
    await assert.rejects(service.create({ firmware: fw2.id, targets: { filter: { dialect: 'sming' } } }), /the targets match no device/);
  });

  it('on abort with revert, gives the devices that took the new firmware the one they ran before, through the flow', async () => {
    report('t1', '1.0.0');
    report('t2', '1.0.0');
    const r = await service.create({ firmware: fw2.id, targets: { devices: ['t1', 't2'] }, plan: { revertOnAbort: true }, start: true });
    assert.deepStrictEqual(r.devices.map((e) => e.previous), [fw1.id, fw1.id]);
    assert.deepStrictEqual(commands, [['assign', '2.0.0', ['t1', 't2']]]);
    report('t1', '2.0.0');
    await service.act(r.id, 'abort');
    // t2 had not acted on its notice: withdrawn. t1 runs 2.0.0: given 1.0.0 again.
    assert.deepStrictEqual(commands.slice(1), [['unassign', '2.0.0', ['t2']], ['assign', '1.0.0', ['t1']]]);
    assert.strictEqual(repo.rollout.get('t1').firmware, fw1.id);
    assert.strictEqual(repo.rollout.get('t2').firmware, undefined);
  });
});
