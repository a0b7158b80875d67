'use strict';
const assert = require('assert');
const fs = require('fs');
const path = require('path');
const { tencent, thingsboard, tago, biotz, sming } = require('../../../dist/core/dialects');
const { fill } = require('../../../dist/core/dialects/topics');
const { explainError, toProgressEvent } = require('../../../dist/core/device-updates/progress-events');
const { OtaRepository } = require('../../../dist/core/repository');
const { trackerFor } = require('../../../dist/core/device-updates/tracker');
const { tempDir } = require('../../support/images');
const { firmware } = require('./helpers');

// Devices choose the strings the dialects look up in their tables (states, result codes,
// attribute names). Object.prototype's names must read as unknown, never as its functions: a
// Tencent report with "state":"constructor" made a record whose state was the Object function,
// gone from the file on the next write.

const KEYS = ['constructor', '__proto__', 'toString', 'hasOwnProperty'];

/** True when nothing in the value is a function or a function's source text. */
function plain(value) {
  const text = JSON.stringify(value);
  return !/native code|function/.test(text) && JSON.stringify(JSON.parse(text)) === text && !hasFunction(value);
}
function hasFunction(value) {
  if (typeof value === 'function') return true;
  if (!value || typeof value !== 'object') return false;
  return Object.values(value).some(hasFunction);
}

describe('dialect tables and prototype keys (constructor, __proto__, toString, hasOwnProperty)', function () {
  describe('tencent', function () {
    const progress = (p) => JSON.stringify({ type: 'report_progress', report: { progress: p, version: '2.0.0' } });

    for (const key of KEYS) {
      it(`refuses the report_progress state "${key}" as unknown`, function () {
        const u = tencent.parseUplink('$ota/report/P1/dev1', progress({ state: key }));
        assert.strictEqual(u.kind, 'invalid', JSON.stringify(u));
        assert.match(u.error, /unknown state/);
      });

      it(`explains the fail result_code "${key}" with text, not a function`, function () {
        const u = tencent.parseUplink('$ota/report/P1/dev1', progress({ state: 'fail', result_code: key, result_msg: '' }));
        assert.strictEqual(u.kind, 'progress');
        const error = u.events[0].error;
        assert.strictEqual(typeof error.message, 'string');
        assert.strictEqual(error.message, `update failed (result_code ${key})`);
        assert.ok(plain(u.events[0]), JSON.stringify(u.events[0]));
        const explained = explainError('tencent', { code: key, message: '' });
        assert.deepStrictEqual(explained, { code: key, message: `error ${key}` });
      });

      it(`ignores the report type "${key}"`, function () {
        const u = tencent.parseUplink('$ota/report/P1/dev1', JSON.stringify({ type: key, report: {} }));
        assert.strictEqual(u.kind, 'ignored');
      });
    }

    it('keeps a record that such a report reaches a plain string state, on disk too', async function () {
      const dir = tempDir();
      try {
        const repo = new OtaRepository({ dir });
        await repo.devices.register({ id: 'dev1', dialect: 'tencent', attributes: { product: 'P1' } });
        const tracker = trackerFor(repo);
        for (const key of KEYS) {
          for (const body of [progress({ state: key }), progress({ state: 'fail', result_code: key })]) {
            const u = tencent.parseUplink('$ota/report/P1/dev1', body);
            if (u.kind === 'progress') for (const ev of u.events) tracker.record(ev);
          }
        }
        const record = repo.rollout.get('dev1');
        assert.strictEqual(record.state, 'failed');
        assert.ok(plain(record), JSON.stringify(record));
        await repo.flush();
        const onDisk = JSON.parse(fs.readFileSync(path.join(dir, 'device-states.json'), 'utf8'));
        assert.deepStrictEqual(onDisk[0].state, 'failed');
        assert.strictEqual(typeof onDisk[0].lastError.message, 'string');
      } finally {
        fs.rmSync(dir, { recursive: true, force: true });
      }
    });
  });

  describe('thingsboard', function () {
    const fw = firmware(Buffer.from('tb image'), 'app', '1.0.0');

    for (const key of KEYS) {
      it(`refuses the fw_state "${key}" (in any case) as unknown`, function () {
        for (const state of [key, key.toUpperCase(), key.toLowerCase()]) {
          const u = thingsboard.parseUplink('v1/devices/me/telemetry', JSON.stringify({ fw_state: state }), { device: 'd1' });
          assert.strictEqual(u.kind, 'invalid', `${state}: ${JSON.stringify(u)}`);
          assert.match(u.error, /unknown fw_state/);
        }
      });

      it(`answers an attribute request for the key "${key}" with the firmware keys only`, function () {
        const u = thingsboard.parseUplink('v1/devices/me/attributes/request/1', JSON.stringify({ sharedKeys: `${key},fw_version` }), { device: 'd1' });
        assert.strictEqual(u.kind, 'attribute-request');
        const reply = thingsboard.attributeReply(u, fw);
        assert.deepStrictEqual(JSON.parse(reply.payload), { shared: { fw_version: '1.0.0' } });
        const only = thingsboard.attributeReply({ ...u, keys: [key] }, fw);
        assert.strictEqual(only.payload, '{"shared":{}}');
      });
    }
  });

  describe('tago', function () {
    for (const key of KEYS) {
      it(`ignores the variable "${key}" and keeps the failure text a string when metadata names "${key}"`, function () {
        const u = tago.parseUplink('tago/data/post', JSON.stringify({ variable: key, value: 'firmware_request' }), { device: 't1' });
        assert.strictEqual(u.kind, 'ignored');
        const f = tago.parseUplink('tago/data/post', JSON.stringify({ variable: 'firmware_status', value: 'failed', metadata: { [key]: 'x' } }), { device: 't1' });
        assert.strictEqual(f.kind, 'progress');
        assert.ok(plain(f.events[0]), JSON.stringify(f.events[0]));
      });
    }
  });

  describe('biotz and sming (no uplinks)', function () {
    for (const key of KEYS) {
      it(`ignore an uplink on a topic or payload named "${key}"`, function () {
        for (const dialect of [biotz, sming]) {
          assert.strictEqual(dialect.parseUplink(key, JSON.stringify({ [key]: key })).kind, 'ignored');
        }
      });
    }
  });

  describe('topic templates and hand-made events', function () {
    for (const key of KEYS.filter((k) => /^[A-Za-z]+$/.test(k))) {
      it(`fill() treats the placeholder {${key}} as missing, not as Object's ${key}`, function () {
        assert.throws(() => fill(`a/{${key}}/b`, { device: 'd1' }, 'test'), (err) => err.code === 'missing_attribute' && err.field === key);
        assert.strictEqual(fill(`a/{${key}}`, { [key]: 'given' }, 'test'), 'a/given');
      });
    }

    for (const key of KEYS) {
      it(`toProgressEvent refuses the state "${key}" and explains the error code "${key}" with text`, function () {
        const ctx = { dialectOf: () => 'tencent', stateOf: () => undefined, now: () => new Date() };
        assert.match(toProgressEvent({ device: 'd1', state: key }, ctx), /state must be one of/);
        const ev = toProgressEvent({ device: 'd1', state: 'failed', error: { code: key } }, ctx);
        assert.ok(plain(ev), JSON.stringify(ev));
      });
    }
  });
});
