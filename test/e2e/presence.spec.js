'use strict';
// Sming and Biotz devices report no progress: through the gateway, the repository still sees them
// take their notice and restart into the new firmware (recorded as inferred), and the shared Sming
// image is cleared once every device on its topic has it — not before, while one is offline, and
// then soon enough that a device with Sming's real decoder (which flashes an equal patch again)
// does not flash twice. Runs the "Full pipeline" example in a real Node-RED, on aedes.
const assert = require('assert');
const crypto = require('crypto');
const fs = require('fs');
const mqtt = require('mqtt');
const { startPipeline, fleetPlan, registerDevices, rollOut } = require('../../scripts/pipeline');
const { startFleet } = require('../../dist/sim');
const { tempDir } = require('../support/images');

const SMING_TOPIC = 'a/demo/u/1.0'; // fleetPlan: app demo, Sming's own topic (no prefix), patch release 1.0.1

/** Polls `fn` until it returns something truthy; bounded, with what it last saw in the error. */
async function until(what, fn, timeoutMs = 20000) {
  const end = Date.now() + timeoutMs;
  let last;
  for (;;) {
    last = await fn();
    if (last && last.ok !== false) return last;
    if (Date.now() > end) throw new Error(`not ${what} after ${timeoutMs} ms (last: ${JSON.stringify(last)})`);
    await new Promise((r) => setTimeout(r, 100));
  }
}

/**
 * The retained message on `topic` (a Buffer), or null when none: subscribes upstream, then sends
 * itself a marker; the broker hands out retained messages on subscribe, so they come first.
 */
async function retainedOn(brokerUrl, topic) {
  const client = await mqtt.connectAsync(brokerUrl, { reconnectPeriod: 0 });
  try {
    const marker = `presence-spec/${crypto.randomBytes(6).toString('hex')}`;
    let retained = null;
    const done = new Promise((resolve) => {
      client.on('message', (t, payload, packet) => {
        if (t === topic && packet.retain && payload.length) retained = payload;
        if (t === marker) resolve();
      });
    });
    await client.subscribeAsync(topic, { qos: 1 });
    await client.subscribeAsync(marker, { qos: 1 });
    await client.publishAsync(marker, 'x', { qos: 1 });
    await done;
    return retained;
  } finally {
    await client.endAsync();
  }
}

describe('end to end: Sming and Biotz devices tracked through the gateway (presence)', function () {
  this.timeout(90000);
  let p, dir;
  const fleets = [];

  before(async () => {
    dir = tempDir('mqtt-ota-presence-');
    p = await startPipeline({ userDir: dir });
  });
  after(async () => {
    for (const f of fleets) await f.stop();
    if (p) await p.stop();
    if (dir) fs.rmSync(dir, { recursive: true, force: true });
  });

  it('ends every device updated (inferred), clears the Sming image only once all have it, and no device flashes twice', async () => {
    const full = fleetPlan({ count: 2 });
    const keep = (d) => d.dialect === 'biotz' || d.dialect === 'sming';
    const plan = { ...full, groups: full.groups.filter(keep), devices: full.devices.filter(keep) };
    const group = (dialect) => plan.groups.find((g) => g.dialect === dialect);
    await registerDevices(p.api, plan);

    // Both Biotz devices and sming-1 are online; sming-2 is not (yet).
    const first = await startFleet({ broker: p.deviceUrl, retryDelayMs: 500, groups: [group('biotz'), { ...group('sming'), count: 1 }] });
    fleets.push(first);
    await rollOut(p.api, plan);

    const stateOf = async (id) => (await p.api.device(id)).rollout;
    for (const id of ['biotz-1', 'biotz-2', 'sming-1']) {
      const r = await until(`${id} updated`, async () => {
        const s = await stateOf(id);
        return { ok: s.state === 'updated', ...s };
      });
      assert.strictEqual(r.inferred, true, `${id}: nothing reported it, so the record says it was inferred`);
    }
    assert.strictEqual((await stateOf('sming-2')).state, 'notified');
    assert.ok(await retainedOn(p.brokerUrl, SMING_TOPIC), 'the image stays retained while sming-2 has not taken it');

    // sming-2 comes online, with Sming's real decoder: an image left retained would be flashed again.
    const second = await startFleet({ broker: p.deviceUrl, groups: [{ ...group('sming'), count: 1, startIndex: 2, smingDecoder: 'sming' }] });
    fleets.push(second);
    const late = second.devices[0];
    assert.strictEqual(late.id, 'sming-2');
    const r2 = await until('sming-2 updated', async () => {
      const s = await stateOf('sming-2');
      return { ok: s.state === 'updated' && late.connects >= 2, ...s };
    });
    assert.strictEqual(r2.inferred, true);
    await until('the Sming topic empty', async () => ({ ok: (await retainedOn(p.brokerUrl, SMING_TOPIC)) === null }));

    const rollout = await p.api.rollout();
    assert.deepStrictEqual(rollout.devices.map((d) => [d.device, d.state, d.current && d.current.version, d.attempts]), [
      ['biotz-1', 'updated', '1.1.0', 1],
      ['biotz-2', 'updated', '1.1.0', 1],
      ['sming-1', 'updated', '1.0.1', 1],
      ['sming-2', 'updated', '1.0.1', 1],
    ]);
    for (const d of [...first.devices, ...second.devices]) {
      assert.strictEqual(d.installs, 1, `${d.id} flashed ${d.installs} times`);
      assert.strictEqual(d.sha256, crypto.createHash('sha256').update(plan.firmware.find((f) => f.tag === (d.dialect === 'sming' ? 'demo-patch' : 'demo')).image).digest('hex'));
    }
  });
});
