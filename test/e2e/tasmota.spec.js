'use strict';
// Tasmota devices as Tasmota's own code behaves (src/sim/dialects/tasmota.ts, docs/tasmota.md),
// through the gateway of the "Full pipeline" example on stock Node-RED, on the embedded broker
// and on mosquitto: OtaUrl with the compact signed URL, Upgrade 1, the download, the restart and
// INFO1 with the new version; a plug whose flash is too small for the image goes through the
// minimal build first (the two-step upgrade); a plug offline when the commands went out gets
// them again when it boots with its old version.
const assert = require('assert');
const fs = require('fs');
const { startPipeline, demoImage } = require('../../scripts/pipeline');
const { startMosquitto, haveMosquitto } = require('../../scripts/servers');
const { startFleet } = require('../../dist/sim');
const { tempDir } = require('../support/images');
const { eventually } = require('../support/eventually');

const FULL = 200 * 1024 + 17;
const MINIMAL = 60 * 1024 + 3;

function tasmotaSuite(title, startBroker) {
  describe(title, function () {
    let broker, dir, pipeline, fleet, late, full, minimal;
    const heard = [];

    before(async function () {
      broker = await startBroker(this);
      dir = tempDir('mqtt-ota-tasmota-');
      pipeline = await startPipeline({ userDir: dir, brokerUrl: broker?.url });
      const api = pipeline.api;
      for (const id of ['plug-1', 'plug-2', 'small-1', 'late-1']) {
        await api.registerDevice({ id, dialect: 'tasmota', token: `${id}-token`, tags: ['plugs'] });
      }
      full = await api.storeFirmware(demoImage('tasmota', '14.3.0', FULL), 'tasmota', '14.3.0');
      minimal = await api.storeFirmware(demoImage('tasmota-minimal', '14.3.0', MINIMAL), 'tasmota-minimal', '14.3.0');
      const common = { broker: pipeline.deviceUrl, version: '14.2.0', tokenPattern: '{id}-token', retryDelayMs: 300, tasmotaAttemptDelayMs: 100 };
      fleet = await startFleet({
        ...common,
        groups: [
          { dialect: 'tasmota', idPattern: 'plug-{n}', count: 2 },
          // Small flash: the full image does not fit beside the running one (150 KiB of 300), the
          // minimal build does, and leaves room for the full image.
          { dialect: 'tasmota', idPattern: 'small-{n}', count: 1, tasmotaFlashSize: 300 * 1024 },
        ],
      });
      fleet.on('log', (line) => heard.push(line));
      // Their INFO1 after boot (14.2.0) reached the repository: assigned after that, each gets one notice.
      await eventually(async () => {
        const views = await Promise.all(fleet.devices.map((d) => api.device(d.id)));
        return views.every((v) => v.rollout?.current?.version === '14.2.0') || views.map((v) => v.rollout?.current?.version);
      }, 10000, 'INFO1 of the plugs');
      // Assign to the tag: the late plug is offline and misses the (never retained) commands.
      await api.assign({ firmware: full.id, tag: 'plugs' });
      late = await startFleet({ ...common, groups: [{ dialect: 'tasmota', idPattern: 'late-{n}', count: 1 }] });
    });

    after(async function () {
      if (late) await late.stop();
      if (fleet) await fleet.stop();
      if (pipeline) await pipeline.stop();
      if (broker) await broker.close();
      if (dir) fs.rmSync(dir, { recursive: true, force: true });
    });

    it('updates every plug to the stored image, byte for byte: the small one through the minimal build, the late one at its boot', async function () {
      await Promise.all([fleet.waitAllUpdated(40000), late.waitAllUpdated(40000)]);
      for (const d of [...fleet.devices, ...late.devices]) {
        assert.strictEqual(d.sha256, full.checksums.sha256, `${d.id} runs the stored image`);
        assert.strictEqual(d.version, '14.3.0', d.id);
      }
      const [p1, p2, small] = fleet.devices;
      assert.deepStrictEqual([p1.installs, p2.installs, late.devices[0].installs], [1, 1, 1]);
      // The minimal build first, then the full image it fetched itself.
      assert.strictEqual(small.installs, 2);
      assert.ok(heard.some((l) => l.includes('small-1: OTA attempt failed: Not Enough space')), 'the full image did not fit at first');
    });

    it('records every plug as updated with the version its INFO1 names, after one notice (two for the late one)', async function () {
      await eventually(async () => {
        const { devices } = await pipeline.api.rollout();
        const behind = devices.filter((d) => d.state !== 'updated').map((d) => `${d.device}:${d.state}`);
        return behind.length === 0 || behind;
      }, 15000, 'plugs not yet updated in the repository');
      for (const id of ['plug-1', 'plug-2', 'small-1', 'late-1']) {
        const view = await pipeline.api.device(id);
        assert.strictEqual(view.rollout.current.version, '14.3.0', id);
        assert.strictEqual(view.rollout.percent, 100, id);
      }
      for (const id of ['plug-1', 'plug-2', 'small-1']) assert.strictEqual((await pipeline.api.device(id)).rollout.attempts, 1, `${id} needed one notice`);
      assert.strictEqual((await pipeline.api.device('late-1')).rollout.attempts, 2, 'the late plug: the notice it missed, and the one its INFO1 brought');
    });

    it('never touches the minimal companion\'s own record, and runs without an error in Node-RED\'s log', async function () {
      const { devices } = await pipeline.api.rollout();
      assert.ok(devices.every((d) => d.firmware === full.id), 'every record is on the full image');
      assert.ok(minimal.id !== full.id);
      assert.deepStrictEqual(pipeline.red.logs.filter((l) => /\[error\]/.test(l)), []);
    });
  });
}

describe('end to end: Tasmota devices through the gateway and the Full pipeline flow', function () {
  this.timeout(90000);
  tasmotaSuite('on the embedded broker (aedes)', async () => undefined);
  tasmotaSuite('on mosquitto', async (ctx) => {
    if (!haveMosquitto()) {
      console.log('      skipped: mosquitto is not installed (apt-get install mosquitto)');
      ctx.skip();
    }
    return startMosquitto();
  });
});
