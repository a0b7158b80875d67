'use strict';
// Each example flow, as shipped, deployed on stock Node-RED against a broker at localhost, updates
// a simulated device. Imported as they were, they did not run: the gateway went to its own broker
// URL, the download URL said localhost, and the examples did not share their config nodes.
//
// What the test changes in a flow, and only that (this machine runs several test suites at once):
// - the mqtt-broker node's port (1883 may be taken here): it stays `localhost`;
// - the gateway's listen address (Full pipeline): 127.0.0.1 and a free port instead of
//   0.0.0.0:1884, since servers a test starts listen on loopback only.
// Everything else runs as imported: the gateway's broker is the flow's mqtt-broker node, the
// repository's storage directory is `mqtt-ota` in the user directory and its Public URL is empty.
// Devices, firmware and assignments go in through the admin API, as a user without the inject
// nodes' placeholder paths would.
const assert = require('assert');
const fs = require('fs');
const path = require('path');
const { startNodeRed, ROOT } = require('../../scripts/node-red-runtime');
const { startAedes, freePort } = require('../../scripts/servers');
const { AdminApi, demoImage, fleetPlan, registerDevices, rollOut } = require('../../scripts/pipeline');
const { startFleet } = require('../../dist/sim');
const { tempDir } = require('../support/images');

const EXAMPLES = path.join(ROOT, 'examples');

/**
 * The example as shipped, with the broker's port (and, given, the gateway's listen address)
 * changed. Several files: imported one after the other into one workspace, where a config node
 * they share (same id) is one node, as Node-RED's import keeps it.
 */
function asImported(files, brokerPort, gatewayPort) {
  const flow = [];
  const byId = new Map();
  for (const file of [].concat(files)) {
    for (const n of JSON.parse(fs.readFileSync(path.join(EXAMPLES, file), 'utf8'))) {
      const seen = byId.get(n.id);
      if (seen) {
        assert.deepStrictEqual(n, seen, `${file}: node ${n.id} is shared with an example imported before, and must be the same`);
        continue;
      }
      byId.set(n.id, n);
      flow.push(n);
    }
  }
  const changed = [];
  for (const n of flow) {
    if (n.type === 'mqtt-broker') {
      assert.deepStrictEqual([n.broker, n.port], ['localhost', '1883'], `${files}: the broker as shipped`);
      n.port = String(brokerPort);
      changed.push('mqtt-broker port');
    }
    if (n.type === 'ota-gateway') {
      Object.assign(n, { host: '127.0.0.1', port: String(gatewayPort) });
      changed.push('gateway listen address');
    }
  }
  return { flow, changed };
}

// One device per single-dialect example, as its inject nodes and ota-assign settings name it.
const SINGLE = {
  'ThingsBoard devices.json': { dialect: 'thingsboard', title: 'my-app', from: '1.0.0', to: '1.1.0', group: { title: 'my-app' } },
  'TagoIO devices.json': { dialect: 'tago', title: 'my-app', from: '1.0.0', to: '1.1.0', group: {} },
  'Tencent IoT Hub devices.json': { dialect: 'tencent', title: 'my-app', from: '1.0.0', to: '1.1.0', attributes: { product: 'MYPRODUCT' }, group: { product: 'MYPRODUCT' } },
  'Biotz devices.json': { dialect: 'biotz', title: 'my-app', from: 'my-app 1.0.0', to: '1.1.0', attributes: { customer: 'my-customer' }, group: { customer: 'my-customer' } },
  'Sming devices.json': { dialect: 'sming', title: 'my-app', from: '4.3.1', to: '4.3.2', attributes: { app: 'test' }, group: { app: 'test' } },
  'Tasmota devices.json': { dialect: 'tasmota', title: 'tasmota', from: '14.2.0', to: '14.3.0', group: {} },
};

describe('examples as imported, on stock Node-RED with a broker at localhost', function () {
  this.timeout(60000);
  let broker, dir, red, fleet;

  beforeEach(async () => {
    broker = await startAedes();
    dir = tempDir('mqtt-ota-imported-');
  });
  afterEach(async () => {
    if (fleet) await fleet.stop();
    if (red) await red.stop();
    await broker.close();
    fleet = red = undefined;
    fs.rmSync(dir, { recursive: true, force: true });
  });

  async function deploy(files, gatewayPort) {
    const { flow, changed } = asImported(files, broker.port, gatewayPort);
    // Node-RED on 127.0.0.1, at a port known before it starts (the download URL default names it).
    red = await startNodeRed({ userDir: dir, flows: flow, port: await freePort() });
    return { flow, changed };
  }

  const noErrors = () => assert.deepStrictEqual(red.logs.filter((l) => /\[error\]|\[warn\] \[(ota-|firmware-|chunk-|progress-)/.test(l)), []);

  for (const [file, d] of Object.entries(SINGLE)) {
    it(`"${path.basename(file, '.json')}" updates a ${d.dialect} device`, async () => {
      const { changed } = await deploy(file);
      assert.deepStrictEqual(changed, ['mqtt-broker port']);
      const api = new AdminApi(red.url);
      await api.registerDevice({ id: 'my-device', dialect: d.dialect, ...(d.attributes ? { attributes: d.attributes } : {}) });
      fleet = await startFleet({ broker: `mqtt://localhost:${broker.port}`, groups: [{ dialect: d.dialect, idPattern: 'my-device', count: 1, version: d.from, ...d.group }], retryDelayMs: 300 });
      const image = demoImage(d.title, d.to, 40 * 1024 + 7);
      const record = await api.storeFirmware(image, d.title, d.to);
      const assigned = await api.assign({ firmware: record.id, devices: ['my-device'] });
      assert.strictEqual(assigned.published, true, JSON.stringify(assigned));
      await fleet.waitAllUpdated(30000);
      assert.strictEqual(fleet.devices[0].sha256, record.checksums.sha256);
      // The repository's storage is where the example says: mqtt-ota in the user directory.
      assert.ok(fs.existsSync(path.join(dir, 'mqtt-ota', 'blobs', record.checksums.sha256.slice(0, 2), record.checksums.sha256)));
      noErrors();
    });
  }

  it('"Full pipeline" updates devices of every dialect through its gateway, on the flow\'s broker node', async () => {
    const gatewayPort = await freePort();
    const { changed } = await deploy('Full pipeline.json', gatewayPort);
    assert.deepStrictEqual(changed.sort(), ['gateway listen address', 'mqtt-broker port']);
    const api = new AdminApi(red.url);
    const plan = fleetPlan({ count: 1, size: 32 * 1024 + 3 });
    await registerDevices(api, plan);
    fleet = await startFleet({ broker: `mqtt://127.0.0.1:${gatewayPort}`, groups: plan.groups, retryDelayMs: 300 });
    const firmware = await rollOut(api, plan);
    await fleet.waitAllUpdated(45000);
    for (const device of fleet.devices) {
      const expected = firmware.find((f) => f.tag === (device.dialect === 'sming' ? 'demo-patch' : 'demo'));
      assert.strictEqual(device.sha256, expected.record.checksums.sha256, device.id);
    }
    // Every device went through the gateway to the broker node's port: the broker saw only namespaced
    // or per-device topics, and Node-RED's own subscriptions.
    assert.ok(red.logs.some((l) => new RegExp(`proxied to mqtt://localhost:${broker.port}`).test(l)), 'the gateway names the broker node it uses');
    noErrors();
  });

  it('"Register firmware" registers an image through the admin API, and the API answers JSON where it has no route', async () => {
    await deploy('Register firmware.json');
    const api = new AdminApi(red.url);
    const record = await api.storeFirmware(demoImage('blink', '1.0.0', 1000), 'blink', '1.0.0');
    assert.strictEqual(record.version, '1.0.0');
    const res = await fetch(`${red.url}/ota/no-such-thing`);
    assert.strictEqual(res.status, 404);
    assert.strictEqual((await res.json()).code, 'not_found');
    noErrors();
  });

  it('"Staged rollout", imported beside "Full pipeline", updates in waves and waits for approval of the third', async () => {
    const gatewayPort = await freePort();
    const { flow, changed } = asImported(['Full pipeline.json', 'Staged rollout.json'], broker.port, gatewayPort);
    // The one change beyond addresses: the plan's soak time (60 s as shipped, so a user sees it)
    // is shortened to 1 s, or the spec would wait two minutes.
    const start = flow.find((n) => n.type === 'inject' && n.name === 'start the rollout');
    const rolloutProp = start.props.find((p) => p.p === 'rollout');
    const plan = JSON.parse(rolloutProp.v);
    assert.strictEqual(plan.plan.soakMs, 60000);
    plan.plan.soakMs = 1000;
    rolloutProp.v = JSON.stringify(plan);
    assert.deepStrictEqual(changed.sort(), ['gateway listen address', 'mqtt-broker port']);
    red = await startNodeRed({ userDir: dir, flows: flow, port: await freePort() });
    const repositories = flow.filter((n) => n.type === 'ota-repository');
    assert.strictEqual(repositories.length, 1, 'the two examples share one repository');

    const api = new AdminApi(red.url);
    const fleetOf = fleetPlan({ count: 3, size: 24 * 1024 + 5 });
    fleetOf.groups = fleetOf.groups.filter((g) => g.dialect !== 'sming'); // the plan targets tag "demo"
    fleetOf.devices = fleetOf.devices.filter((d) => d.dialect !== 'sming');
    await registerDevices(api, fleetOf);
    fleet = await startFleet({ broker: `mqtt://127.0.0.1:${gatewayPort}`, groups: fleetOf.groups, retryDelayMs: 300 });
    const notified = new Set();
    fleet.on('state', (device, state) => { if (state !== 'idle') notified.add(device.id); });
    const main = fleetOf.firmware.find((f) => f.tag === 'demo');
    const record = await api.storeFirmware(main.image, main.title, main.version);

    // The user presses the inject buttons.
    const press = async (name) => {
      const node = flow.find((n) => n.type === 'inject' && n.name === name);
      const res = await fetch(`${red.url}/inject/${node.id}`, { method: 'POST' });
      assert.strictEqual(res.status, 200, `pressing "${name}"`);
    };
    const current = async () => (await api.call('GET', '/ota/rollouts')).find((r) => r.name === plan.name);
    await press('start the rollout');
    const eventuallyState = async (state, ms) => {
      const until = Date.now() + ms;
      let r;
      while (Date.now() < until) {
        r = await current();
        if (r && r.state === state) return r;
        await new Promise((res) => setTimeout(res, 100));
      }
      assert.fail(`rollout still ${JSON.stringify(r && { state: r.state, status: r.status })}, expected ${state}`);
    };
    // Three of each dialect tagged demo: 1 % -> 1 device, 10 % -> 2 (success action pause), the rest.
    const targets = fleetOf.devices.length;
    const sizes = [1, 2, targets - 3];
    assert.strictEqual(Math.ceil(targets / 100), sizes[0]);
    assert.strictEqual(Math.ceil((targets * 10) / 100), sizes[1]);
    const paused = await eventuallyState('paused', 45000);
    assert.deepStrictEqual(paused.groups.map((g) => [g.size, g.state]), [[sizes[0], 'succeeded'], [sizes[1], 'succeeded'], [sizes[2], 'pending']]);
    assert.strictEqual(paused.reason, 'threshold');
    assert.deepStrictEqual(paused.groupCounts.map((c) => c.succeeded), [1, 2, 0]);
    const detail = await api.call('GET', `/ota/rollouts/${paused.id}?devices=true`);
    const third = detail.devices.filter((d) => d.group === 2).map((d) => d.device);
    assert.strictEqual(third.length, sizes[2]);
    for (const id of third) assert.ok(!notified.has(id), `${id} (third wave) got a notice before approval`);
    assert.strictEqual(fleet.devices.filter((d) => d.sha256 === record.checksums.sha256).length, 3);

    await press('approve the next wave');
    await eventuallyState('finished', 45000);
    for (const d of fleet.devices) assert.strictEqual(d.sha256, record.checksums.sha256, d.id);
    noErrors();
  });
});
