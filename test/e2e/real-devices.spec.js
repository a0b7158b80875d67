'use strict';
// Devices that behave as their platform's own code does, through the gateway of the "Full
// pipeline" example, on the embedded broker (aedes) and on mosquitto (issue 12):
// - Tencent: the IoT Explorer C SDK's login, client id {product}{device} and a username signed
//   with the device secret (registered through the admin API, never shown again);
// - Sming: the topic Sming's Upgrade sample subscribes to, a/{app}/u/{major}.{minor} (no slash);
// - TagoIO: the seed's script, which subscribes and waits, connecting only after its assignment.
const assert = require('assert');
const fs = require('fs');
const path = require('path');
const { startPipeline, demoImage } = require('../../scripts/pipeline');
const { startMosquitto, haveMosquitto } = require('../../scripts/servers');
const { startFleet } = require('../../dist/sim');
const { tempDir } = require('../support/images');
const { eventually } = require('../support/eventually');

// 24 base64 characters (18 bytes), the {n} keeps each device's different.
const SECRET_PATTERN = 'c2ltLXNlY3JldC1rZXkt{n}AAA';
const PRODUCT = 'RDPRODUCT1';

/** Files the repository and Node-RED wrote under dir: node_modules (the package link) left out. */
function filesUnder(dir) {
  const out = [];
  for (const e of fs.readdirSync(dir, { withFileTypes: true })) {
    const file = path.join(dir, e.name);
    // The package is linked into the user directory: following that link walks the checkout,
    // and through its own .demo/node_modules link, the checkout again, for ever.
    if (e.name === 'node_modules' || e.isSymbolicLink()) continue;
    if (e.isDirectory()) out.push(...filesUnder(file));
    else if (e.isFile()) out.push(file);
  }
  return out;
}

function realDevicesSuite(title, startBroker) {
  describe(title, function () {
    let broker, dir, pipeline, early, late;
    const firmware = {};
    const secretOf = (n) => SECRET_PATTERN.replace('{n}', n);

    before(async function () {
      broker = await startBroker(this);
      dir = tempDir('mqtt-ota-real-');
      pipeline = await startPipeline({ userDir: dir, brokerUrl: broker?.url });
      const api = pipeline.api;
      for (const n of [1, 2]) {
        await api.registerDevice({ id: `tc-${n}`, dialect: 'tencent', attributes: { product: PRODUCT }, deviceSecret: secretOf(n), tags: ['rd'] });
        await api.registerDevice({ id: `sm-${n}`, dialect: 'sming', attributes: { app: 'rd' }, tags: ['rd-sming'] });
        await api.registerDevice({ id: `tg-${n}`, dialect: 'tago', token: `tg-token-${n}`, tags: ['rd'] });
      }
      early = await startFleet({
        broker: pipeline.deviceUrl,
        retryDelayMs: 300,
        groups: [
          { dialect: 'tencent', idPattern: 'tc-{n}', product: PRODUCT, deviceSecretPattern: SECRET_PATTERN, count: 2 },
          { dialect: 'sming', idPattern: 'sm-{n}', app: 'rd', version: '1.0.0', count: 2 },
        ],
      });
      for (const [tag, version] of [['rd', '2.0.0'], ['rd-sming', '1.0.1']]) {
        firmware[tag] = await api.storeFirmware(demoImage('rd-app', version, 50 * 1024 + 123), 'rd-app', version);
        await api.assign({ firmware: firmware[tag].id, tag });
      }
      // Assigned before they ever connect: the manifest must wait for them.
      late = await startFleet({ broker: pipeline.deviceUrl, groups: [{ dialect: 'tago', idPattern: 'tg-{n}', tokenPattern: 'tg-token-{n}', tagoVersionReports: false, count: 2 }] });
    });

    after(async function () {
      if (late) await late.stop();
      if (early) await early.stop();
      if (pipeline) await pipeline.stop();
      if (broker) await broker.close();
      if (dir) fs.rmSync(dir, { recursive: true, force: true });
    });

    it('updates Tencent devices logging in as the SDK does, Sming devices on a/{app}/u/1.0, and TagoIO devices that connect after their assignment', async function () {
      await Promise.all([early.waitAllUpdated(30000), late.waitAllUpdated(30000)]);
      for (const d of [...early.devices, ...late.devices]) {
        const expected = firmware[d.dialect === 'sming' ? 'rd-sming' : 'rd'];
        assert.strictEqual(d.sha256, expected.checksums.sha256, `${d.id} runs the stored image`);
        assert.strictEqual(d.installs, 1, `${d.id} installed once`);
      }
      assert.deepStrictEqual(early.devices.filter((d) => d.dialect === 'tencent').map((d) => d.clientId), [`${PRODUCT}tc-1`, `${PRODUCT}tc-2`]);
      await eventually(async () => {
        const { devices } = await pipeline.api.rollout();
        const behind = devices.filter((d) => (d.device.startsWith('tc-') ? d.state !== 'updated' : d.device.startsWith('tg-') && d.state !== 'downloaded' && d.state !== 'updated'));
        return behind.length === 0 || behind.map((d) => `${d.device}:${d.state}`);
      }, 10000, 'devices behind in the repository');
    });

    it('clears the retained manifest once a TagoIO device has every block: restarted, the seed\'s device does not download again', async function () {
      const connects = late.devices.map((d) => d.connects);
      for (const d of late.devices) d.restart();
      await eventually(() => late.devices.every((d, i) => d.connects > connects[i] && d.state !== 'connecting') || late.devices.map((d) => d.connects), 10000, 'reconnects');
      // A retained manifest comes right behind the SUBACK; give it a few round trips.
      await new Promise((r) => setTimeout(r, 500));
      assert.deepStrictEqual(late.devices.map((d) => d.installs), [1, 1]);
      assert.deepStrictEqual(late.devices.map((d) => d.state), ['updated', 'updated']);
    });

    it('never shows the device secret again, and keeps it only sealed on disk', async function () {
      const view = await pipeline.api.device('tc-1');
      assert.strictEqual(view.hasDeviceSecret, true);
      assert.ok(!JSON.stringify(view).includes(secretOf(1)));
      assert.ok(!('sealedSecret' in view));
      const raw = Buffer.from(secretOf(1), 'base64');
      for (const file of filesUnder(dir)) {
        const bytes = fs.readFileSync(file);
        assert.ok(!bytes.includes(secretOf(1)) && !bytes.includes(raw), `${file} holds the device secret`);
      }
    });
  });
}

describe('end to end: real device code through the gateway (Tencent SDK login, Sming topic, late TagoIO device)', function () {
  this.timeout(60000);
  realDevicesSuite('on the embedded broker (aedes)', async () => undefined);
  realDevicesSuite('on mosquitto', async (ctx) => {
    if (!haveMosquitto()) {
      console.log('      skipped: mosquitto is not installed (apt-get install mosquitto)');
      ctx.skip();
    }
    return startMosquitto();
  });
});
