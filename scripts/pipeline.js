'use strict';
// The whole pipeline on one machine, as `npm start` runs it and the end-to-end tests check it:
//   devices ──► ota-gateway (in Node-RED) ──► broker (embedded aedes, or OTA_BROKER_URL) ◄── Node-RED
// with the "Full pipeline" example flow deployed, and the admin API to register devices and
// firmware and to assign. Everything listens on 127.0.0.1.
const crypto = require('crypto');
const fs = require('fs');
const path = require('path');
const { startNodeRed, ROOT } = require('./node-red-runtime');

const FLOW_FILE = path.join(ROOT, 'examples', 'Full pipeline.json');

const { startAedes, freePort } = require('./servers');


/** The example flow, pointed at this machine's broker, gateway port and Node-RED URL. */
function pipelineFlow({ brokerUrl, devicePort, publicUrl, bindHost = '127.0.0.1', progress = {} }) {
  const flow = JSON.parse(fs.readFileSync(FLOW_FILE, 'utf8'));
  const broker = new URL(brokerUrl);
  for (const n of flow) {
    if (n.type === 'mqtt-broker') Object.assign(n, { broker: broker.hostname, port: broker.port || (broker.protocol === 'mqtts:' ? '8883' : '1883'), usetls: broker.protocol === 'mqtts:' });
    // The gateway proxies to the flow's mqtt-broker node, set above.
    if (n.type === 'ota-gateway') Object.assign(n, { host: bindHost, port: String(devicePort) });
    if (n.type === 'ota-repository') n.publicUrl = publicUrl;
    if (n.type === 'progress-parser') Object.assign(n, progress);
  }
  return flow;
}

class AdminApi {
  constructor(url) {
    this.url = url;
  }
  async call(method, route, body, headers = {}) {
    const init = { method, headers: { ...headers } };
    if (Buffer.isBuffer(body)) {
      init.body = body;
      init.headers['Content-Type'] = 'application/octet-stream';
    } else if (body !== undefined) {
      init.body = JSON.stringify(body);
      init.headers['Content-Type'] = 'application/json';
    }
    const res = await fetch(`${this.url}${route}`, init);
    const text = await res.text();
    const data = text ? JSON.parse(text) : null;
    if (!res.ok) throw new Error(`${method} ${route}: ${res.status} ${text}`);
    return data;
  }
  storeFirmware(image, title, version) {
    return this.call('POST', `/ota/firmware?title=${encodeURIComponent(title)}&version=${encodeURIComponent(version)}`, image);
  }
  registerDevice(device) {
    return this.call('POST', '/ota/devices', device);
  }
  assign(body) {
    return this.call('POST', '/ota/assignments', body);
  }
  device(id) {
    return this.call('GET', `/ota/devices/${encodeURIComponent(id)}`);
  }
  rollout() {
    return this.call('GET', '/ota/rollout');
  }
}

/**
 * Starts broker (unless brokerUrl is given), Node-RED with the pipeline flow, and returns handles.
 * @param {object} o
 * @param {string} o.userDir
 * @param {number} [o.nodeRedPort]  0: a free port
 * @param {number} [o.devicePort]   the gateway's port for devices; 0: a free port
 * @param {string} [o.brokerUrl]    an existing broker instead of the embedded aedes
 * @param {string} [o.bindHost]     where Node-RED and the gateway listen (default 127.0.0.1;
 *                                  0.0.0.0 for devices on the network)
 * @param {string} [o.publicUrl]    where devices reach Node-RED's download route (default: the
 *                                  bind address, or 127.0.0.1 when bound to every interface)
 * @param {object} [o.settings]     extra Node-RED settings.js entries
 */
async function startPipeline({ userDir, nodeRedPort = 0, devicePort = 0, brokerUrl, bindHost = '127.0.0.1', publicUrl, progress, onLog, settings = {} }) {
  const stops = [];
  const stop = async () => {
    for (const s of stops.splice(0).reverse()) await Promise.resolve().then(s).catch(() => {});
  };
  try {
    let upstream = brokerUrl;
    if (!upstream) {
      const broker = await startAedes();
      stops.push(() => broker.close());
      upstream = broker.url;
    }
    const port = nodeRedPort || (await freePort());
    const gatewayPort = devicePort || (await freePort());
    const localHost = bindHost === '0.0.0.0' || bindHost === '::' ? '127.0.0.1' : bindHost;
    const hostInUrl = localHost.includes(':') ? `[${localHost}]` : localHost;
    const downloads = (publicUrl || `http://${hostInUrl}:${port}`).replace(/\/+$/, '');
    const flows = pipelineFlow({ brokerUrl: upstream, devicePort: gatewayPort, publicUrl: downloads, bindHost, progress });
    const red = await startNodeRed({ userDir, port, flows, settings: { uiHost: bindHost, ...settings }, onLog });
    stops.push(() => red.stop());
    return { red, api: new AdminApi(red.url), brokerUrl: upstream, deviceUrl: `mqtt://${hostInUrl}:${gatewayPort}`, publicUrl: downloads, stop };
  } catch (err) {
    await stop();
    throw err;
  }
}

/** Deterministic demo image bytes, with a readable header, so every run shows the same checksums. */
function demoImage(title, version, size) {
  const out = Buffer.alloc(size);
  for (let off = 0, n = 0; off < size; off += 32, n++) {
    crypto.createHash('sha256').update(`${title}@${version}:${n}`).digest().copy(out, off, 0, Math.min(32, size - off));
  }
  Buffer.from(`${title} ${version}\n`).copy(out, 0);
  return out;
}

/**
 * The demo fleet: `count` devices of each dialect, registered with the repository, a firmware
 * for each, and the simulator's group options that let those devices connect through the gateway.
 * Sming updates within major.minor (its topic is per major.minor), so it gets a patch release.
 */
function fleetPlan({ count = 2, size = 128 * 1024, from = '1.0.0' } = {}) {
  const title = 'demo-app';
  const main = { title, version: '1.1.0' };
  const patch = { title, version: '1.0.1' };
  const groups = [
    { dialect: 'thingsboard', idPattern: 'tb-{n}', tokenPattern: 'tb-token-{n}', title, version: from },
    { dialect: 'tago', idPattern: 'tago-{n}', tokenPattern: 'tago-token-{n}', version: from },
    // Tencent devices log in as the C SDK does: client id {product}{device}, username signed with a
    // device secret (one for all demo devices: a base64 pattern cannot hold a number of any length).
    { dialect: 'tencent', idPattern: 'tencent-{n}', product: 'DEMO', deviceSecretPattern: 'ZGVtby1kZXZpY2Utc2VjcmV0', version: from },
    { dialect: 'biotz', idPattern: 'biotz-{n}', tokenPattern: 'biotz-token-{n}', customer: 'demo-customer', version: `${title} ${from}` },
    { dialect: 'sming', idPattern: 'sming-{n}', app: 'demo', version: from },
    // Tasmota plugs log in with their token as MQTT user (Tasmota's MqttUser).
    { dialect: 'tasmota', idPattern: 'tasmota-{n}', tokenPattern: 'tasmota-token-{n}', version: from },
  ].map((g) => ({ ...g, count }));
  const devices = [];
  for (const g of groups) {
    for (let n = 1; n <= count; n++) {
      const id = g.idPattern.replace('{n}', n);
      devices.push({
        id,
        dialect: g.dialect,
        ...(g.tokenPattern ? { token: g.tokenPattern.replace('{n}', n) } : {}),
        ...(g.deviceSecretPattern ? { deviceSecret: g.deviceSecretPattern.replace('{n}', n) } : {}),
        attributes: { ...(g.product ? { product: g.product } : {}), ...(g.customer ? { customer: g.customer } : {}), ...(g.app ? { app: g.app } : {}) },
        tags: [g.dialect === 'sming' ? 'demo-patch' : 'demo'],
      });
    }
  }
  const firmware = [
    { ...main, image: demoImage(main.title, main.version, size), tag: 'demo' },
    { ...patch, image: demoImage(patch.title, patch.version, size + 777), tag: 'demo-patch' },
  ];
  return { groups, devices, firmware };
}

/** Registers the plan's devices (before they connect: the gateway refuses strangers). */
async function registerDevices(api, plan) {
  for (const d of plan.devices) await api.registerDevice(d);
}

/** Stores the plan's firmware, then assigns each to its tag. */
async function rollOut(api, plan) {
  const records = [];
  for (const f of plan.firmware) {
    const record = await api.storeFirmware(f.image, f.title, f.version);
    records.push({ ...f, record });
  }
  for (const f of records) await api.assign({ firmware: f.record.id, tag: f.tag });
  return records;
}

module.exports = { startPipeline, freePort, pipelineFlow, fleetPlan, registerDevices, rollOut, demoImage, AdminApi };
