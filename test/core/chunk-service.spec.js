'use strict';
const assert = require('assert');
const fs = require('fs');
const os = require('os');
const path = require('path');
const sinon = require('sinon');
const { OtaRepository } = require('../../dist/core/repository');
const { ChunkService, PROGRESS_INTERVAL_MS } = require('../../dist/core/dialects/chunk-service');
const { deliveryFor } = require('../../dist/core/chunking');
const { optionsFromSettings } = require('../../dist/core/dialects/options');

// Progress derived from chunk requests: enough for a dashboard, not a message per chunk.

describe('chunk service progress', function () {
  let dir;
  let repo;
  let service;
  let clock;
  const image = Buffer.alloc(400 * 100, 7); // 100 chunks of 400 bytes: one percent each

  beforeEach(async () => {
    clock = sinon.useFakeTimers({ now: Date.parse('2026-11-23T12:00:00Z'), toFake: ['Date'] });
    dir = fs.mkdtempSync(path.join(os.tmpdir(), 'ota-chunk-service-'));
    repo = new OtaRepository({ dir, maxImageBytes: 1 << 20 });
    const { record } = await repo.firmware.store({ image, title: 'app', version: '1.0.0' });
    await repo.devices.register({ id: 'd1', dialect: 'thingsboard' });
    repo.rollout.assign('d1', 'thingsboard', record);
    service = new ChunkService(repo, deliveryFor(repo, (r) => repo.firmware.read(r)), { dialects: ['thingsboard'], options: optionsFromSettings({ singleDevice: '' }) });
  });
  afterEach(async () => {
    clock.restore();
    await repo.flush();
    fs.rmSync(dir, { recursive: true, force: true });
  });

  async function download(requestId, msBetweenChunks) {
    const events = [];
    for (let n = 0; n < 100; n++) {
      const result = await service.handle(`ota/d1/v2/fw/request/${requestId}/chunk/${n}`, '400');
      assert.strictEqual(result.replies[0].payload.length, 400);
      if (result.progress) events.push([result.progress.state, result.progress.percent]);
      clock.tick(msBetweenChunks);
    }
    return events;
  }

  it('reports a fast download by its first and last chunk only', async function () {
    assert.deepStrictEqual(await download(1, 1), [['downloading', 1], ['downloaded', 100]]);
  });

  it('reports a slow download at every percent step', async function () {
    const events = await download(2, PROGRESS_INTERVAL_MS);
    // Every step the percent moved (rounding makes a few chunks share one): 1, 2, 3, ..., 100.
    assert.ok(events.length >= 95, `${events.length} events`);
    assert.ok(events.every(([, p], i) => i === 0 || p > events[i - 1][1]), 'each a step further');
    assert.deepStrictEqual(events.at(-1), ['downloaded', 100]);
    assert.deepStrictEqual(events.slice(0, 3), [['downloading', 1], ['downloading', 2], ['downloading', 3]]);
  });

  it('reports a moderate one at most once per interval', async function () {
    const events = await download(3, PROGRESS_INTERVAL_MS / 5);
    assert.deepStrictEqual(events.map(([, p]) => p), [1, 6, 11, 16, 21, 26, 31, 36, 41, 46, 51, 56, 61, 66, 71, 76, 81, 86, 91, 96, 100]);
  });
});
