'use strict';
// The repository contract: what one Node-RED writes, the next start (or another instance on the
// same store) reads back the same, whichever backend keeps it. Every spec here runs against the
// files (the default) and PostgreSQL (a throwaway cluster: test/support/postgres.js); the specs
// under "shared stores" hold for PostgreSQL only (files are one instance's).
const assert = require('assert');
const { makeBackends } = require('./backends');
const { imageOf } = require('../../support/images');
const { eventually } = require('../../support/eventually');
const { verifySignature } = require('../../../dist/core/firmware/url-signing');

for (const backend of makeBackends()) {
  describe(`repository contract: ${backend.name}`, function () {
    this.timeout(30000);
    const open = [];
    let available = true;

    before(async function () {
      available = await backend.start();
      if (!available) this.skip();
    });
    after(() => backend.stop());
    beforeEach(async function () {
      if (!available) this.skip();
      await backend.reset();
    });
    afterEach(async () => {
      for (const repo of open.splice(0)) {
        repo.devices.unwatch();
        await repo.close();
      }
    });

    async function instance(options) {
      const repo = await backend.instance(options);
      open.push(repo);
      return repo;
    }

    /** Closes one instance (its writes land) and opens the next start on the same store. */
    async function restart(repo) {
      open.splice(open.indexOf(repo), 1);
      repo.devices.unwatch();
      await repo.close();
      return instance();
    }

    it('keeps a stored firmware and its bytes for the next start', async () => {
      const a = await instance();
      const image = imageOf(70000, 3);
      const { record } = await a.firmware.store({ image, title: 'blink', version: '1.2.0', tag: 'lab' });
      const b = await restart(a);
      assert.deepStrictEqual(b.firmware.get(record.id), record);
      assert.strictEqual(b.firmware.find('blink', '1.2.0').id, record.id);
      assert.ok((await b.firmware.read(record)).equals(image));
      // The same bytes again: no new record, the same one.
      const again = await b.firmware.store({ image, title: 'blink', version: '1.2.0', tag: 'lab' });
      assert.strictEqual(again.created, false);
    });

    it('refuses a second image under a stored version after a restart', async () => {
      const a = await instance();
      await a.firmware.store({ image: imageOf(1000, 1), title: 'blink', version: '1.0.0' });
      const b = await restart(a);
      await assert.rejects(b.firmware.store({ image: imageOf(1000, 2), title: 'blink', version: '1.0.0' }), /already stored with different bytes/);
    });

    it('forgets a removed firmware and its bytes', async () => {
      const a = await instance();
      const { record } = await a.firmware.store({ image: imageOf(5000, 4), title: 'blink', version: '2.0.0' });
      await a.deleteFirmware(record.id);
      const b = await restart(a);
      assert.strictEqual(b.firmware.get(record.id), undefined);
      await assert.rejects(b.firmware.read(record));
    });

    it('keeps devices, tokens only as HMACs, a sealed Tencent secret, and deletions', async () => {
      const a = await instance();
      await a.devices.register({ id: 'tb-1', dialect: 'thingsboard', token: 'TOKEN_ONE', tags: 'lab', attributes: {} });
      await a.devices.register({ id: 'tc-1', dialect: 'tencent', deviceSecret: Buffer.alloc(16, 7).toString('base64'), attributes: { product: 'P1' } });
      await a.devices.register({ id: 'gone', dialect: 'biotz', attributes: { customer: 'c1' } });
      await a.devices.remove('gone');
      const b = await restart(a);
      assert.deepStrictEqual(b.devices.list().map((d) => d.id), ['tb-1', 'tc-1']);
      assert.strictEqual(b.devices.byToken('TOKEN_ONE').id, 'tb-1');
      assert.ok(b.devices.checkToken('tb-1', 'TOKEN_ONE'));
      assert.ok(!JSON.stringify(b.devices.list()).includes('TOKEN_ONE'));
      assert.ok(b.devices.deviceSecret('tc-1').equals(Buffer.alloc(16, 7)));
      assert.deepStrictEqual(b.devices.withTag('lab').map((d) => d.id), ['tb-1']);
    });

    it("keeps each device's update state: assignment, attempts, progress, errors, and the summary", async () => {
      const a = await instance();
      const { record: fw } = await a.firmware.store({ image: imageOf(3000, 5), title: 'blink', version: '3.0.0' });
      for (const id of ['d1', 'd2', 'd3']) await a.devices.register({ id, dialect: 'thingsboard', token: `tok-${id}` });
      for (const id of ['d1', 'd2', 'd3']) a.rollout.assign(id, 'thingsboard', fw);
      a.rollout.markNotified('d1');
      a.rollout.markNotified('d2');
      a.rollout.apply({ device: 'd1', dialect: 'thingsboard', state: 'downloading', percent: 40, at: new Date().toISOString() });
      a.rollout.apply({ device: 'd2', dialect: 'thingsboard', state: 'failed', error: { code: 'bad_checksum', message: 'checksum' }, at: new Date().toISOString() });
      a.rollout.unassign('d3');
      const before = a.rollout.list();
      const summary = a.rollout.summary();
      const b = await restart(a);
      assert.deepStrictEqual(b.rollout.list(), before);
      assert.deepStrictEqual(b.rollout.summary(), summary);
      assert.strictEqual(b.rollout.get('d1').percent, 40);
      assert.strictEqual(b.rollout.get('d2').lastError.code, 'bad_checksum');
      assert.ok(b.rollout.isAssigned(fw.id));
    });

    /** Rollouts are written by the instance that drives them (on files, always this one). */
    async function driver() {
      const repo = await instance();
      await eventually(() => repo.isDriver || 'not driving', 5000, 'drives');
      return repo;
    }

    it('keeps rollouts, and replays releases no snapshot holds yet', async () => {
      const a = await driver();
      const p = a.rolloutPersistence();
      const rollout = { id: 'r1', name: 'spring', state: 'running', devices: { d1: { phase: 'released' } } };
      p.save(() => [rollout]);
      await p.flush();
      p.released('r1', ['d2', 'd3'], 1234);
      // A kill here: the snapshot does not hold d2, d3, the journal does.
      await new Promise((r) => setTimeout(r, 300));
      const b = await restart(a);
      await eventually(() => b.isDriver || 'not driving', 5000, 'b drives');
      const q = b.rolloutPersistence();
      assert.deepStrictEqual(q.load(), [rollout]);
      assert.deepStrictEqual([...q.replay()], [['r1', [{ devices: ['d2', 'd3'], at: 1234 }]]]);
      // Once a snapshot holds them, the journal is empty again.
      q.save(() => [{ ...rollout, devices: { d1: { phase: 'released' }, d2: { phase: 'released' }, d3: { phase: 'released' } } }]);
      await q.flush();
      const c = await restart(b);
      assert.deepStrictEqual([...c.rolloutPersistence().replay()], []);
      assert.deepStrictEqual(Object.keys(c.rolloutPersistence().load()[0].devices), ['d1', 'd2', 'd3']);
    });

    it('signs download URLs the next start (or another instance) accepts: one secret', async () => {
      const a = await instance();
      const { record } = await a.firmware.store({ image: imageOf(100, 6), title: 'blink', version: '1.0.1' });
      const url = new URL(a.downloadUrl(record, 'd1'), 'http://x');
      const b = await restart(a);
      const [, , , firmware, device] = url.pathname.split('/');
      const verdict = verifySignature(b.secret, { firmware, device, expires: Number(url.searchParams.get('e')) }, url.searchParams.get('s'), Math.floor(Date.now() / 1000));
      assert.deepStrictEqual(verdict, { ok: true });
    });

    it('a device registered, given a new token or deleted on one instance reaches another within a second', async () => {
      const a = await instance();
      const b = await instance();
      const changes = [];
      b.devices.on('change', (c) => changes.push(c));
      await a.devices.register({ id: 'tb-9', dialect: 'thingsboard', token: 'FIRST' });
      await eventually(() => b.devices.byToken('FIRST')?.id === 'tb-9' || b.devices.list().length, 1000, 'registered on b');
      await a.devices.register({ id: 'tb-9', dialect: 'thingsboard', token: 'SECOND' });
      await eventually(() => b.devices.checkToken('tb-9', 'SECOND') || 'old token', 1000, 'rotated on b');
      assert.strictEqual(b.devices.byToken('FIRST'), undefined);
      // What the gateway acts on: a change whose token differs (it closes the device's connections).
      const rotated = changes.find((c) => c.before && c.after && c.before.tokenHash !== c.after.tokenHash);
      assert.ok(rotated, 'b announced the new token');
      await a.devices.remove('tb-9');
      await eventually(() => b.devices.get('tb-9') === undefined || 'still there', 1000, 'deleted on b');
      assert.ok(changes.some((c) => c.before && !c.after));
    });

    it('two instances registering at once keep every device', async () => {
      const a = await instance();
      const b = await instance();
      await Promise.all([
        ...Array.from({ length: 20 }, (_, i) => a.devices.register({ id: `a${i}`, dialect: 'thingsboard' })),
        ...Array.from({ length: 20 }, (_, i) => b.devices.register({ id: `b${i}`, dialect: 'thingsboard' })),
      ]);
      const c = await instance();
      assert.strictEqual(c.devices.list().length, 40);
    });
  });
}
