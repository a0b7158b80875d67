'use strict';
// Many Node-REDs, one fleet (issue 16), end to end as a user deploys it: three stock Node-REDs,
// each with the "Full pipeline" example (its ota-gateway node taken out) whose ota-repository uses
// the PostgreSQL backend on one cluster and whose `mqtt in` nodes subscribe through one share group
// on one mosquitto; two `ota-gateway` CLI processes reading the device list from PostgreSQL, each
// serving half of every dialect's devices; a TCP balancer in front of the three download routes.
// 30 devices in `npm test`; `npm run e2e:scale` runs the issue's 300 (SCALE_E2E_DEVICES).
//
//  1. An assignment to every device: each ends with the image byte for byte (SHA-256), and each
//     Node-RED served about a third of the MQTT chunk requests, as its chunk-servers' status
//     ("N chunks served", read through a status node into an HTTP route of the flow) says.
//     The driver heard of every update (its assignment rollouts finish), whichever instance
//     each report reached.
//  2. A staged rollout; the Node-RED holding the driver lease (ota_leases) is killed -9 in the
//     middle: another holds the lease within 10 s, every device finishes, and no device gets a
//     notice twice (notices counted on mosquitto, per device).
const assert = require('assert');
const crypto = require('crypto');
const fs = require('fs');
const os = require('os');
const path = require('path');
const { spawn } = require('child_process');
const mqtt = require('mqtt');
const { startNodeRed, ROOT } = require('../../scripts/node-red-runtime');
const { pipelineFlow, fleetPlan, AdminApi, demoImage } = require('../../scripts/pipeline');
const { startMosquitto, haveMosquitto, freePort } = require('../../scripts/servers');
const { startPostgres, unavailable } = require('../support/postgres');
const { startBalancer } = require('../support/balancer');
const { eventually } = require('../support/eventually');
const { startFleet } = require('../../dist/sim');

const DEVICES = Math.max(12, Number(process.env.SCALE_E2E_DEVICES) || 30);
const PER_DIALECT = Math.ceil(DEVICES / 6);
const INSTANCES = 3;
const SHARE = 'ota';
const IMAGE_SIZE = 64 * 1024;
// ThingsBoard devices ask for 512 bytes at a time: enough chunk requests (about 700 with 30
// devices) for a share of a third to be told from chance.
const TB_CHUNK = 512;
const sha256 = (b) => crypto.createHash('sha256').update(b).digest('hex');

/** The example flow for one of the instances (see the header). */
function instanceFlow({ brokerUrl, publicUrl }) {
  const flow = pipelineFlow({ brokerUrl, devicePort: 1, publicUrl, progress: { retries: 3, backoff: 2 } });
  const gateways = new Set(flow.filter((n) => n.type === 'ota-gateway').map((n) => n.id));
  const out = flow.filter((n) => !gateways.has(n.id));
  const tab = out.find((n) => n.type === 'tab').id;
  for (const n of out) {
    if (n.type === 'ota-repository') n.backend = 'postgres';
    // mosquitto 2 delivers no $-topic through a shared subscription ($share/g/$ota/report/+/+
    // receives nothing): every instance takes the Tencent reports, and the states merge.
    if (n.type === 'mqtt in' && !n.topic.startsWith('$')) n.topic = `$share/${SHARE}/${n.topic}`;
  }
  const servers = out.filter((n) => n.type === 'chunk-server').map((n) => n.id);
  // The chunk-servers' status, kept in flow context and served as JSON: what the editor shows.
  out.push(
    { id: 'e2e0000000000001', type: 'status', z: tab, scope: servers, x: 100, y: 900, wires: [['e2e0000000000002']] },
    { id: 'e2e0000000000002', type: 'function', z: tab, func: "const s = flow.get('served') || {};\ns[msg.status.source.id] = msg.status.text;\nflow.set('served', s);\nreturn null;", outputs: 1, x: 300, y: 900, wires: [[]] },
    { id: 'e2e0000000000003', type: 'http in', z: tab, url: '/e2e/served', method: 'get', x: 100, y: 960, wires: [['e2e0000000000004']] },
    { id: 'e2e0000000000004', type: 'function', z: tab, func: "msg.payload = flow.get('served') || {};\nreturn msg;", outputs: 1, x: 300, y: 960, wires: [['e2e0000000000005']] },
    { id: 'e2e0000000000005', type: 'http response', z: tab, x: 500, y: 960, wires: [] },
  );
  return out;
}

/** `ota-gateway` from bin/, device list from PostgreSQL; resolves once it listens. */
async function startGateway(upstream, postgresUrl, name) {
  const port = await freePort();
  const child = spawn(process.execPath, [path.join(ROOT, 'bin', 'ota-gateway.js'), '--listen', `127.0.0.1:${port}`, '--upstream', upstream, '--quiet'], {
    env: { ...process.env, OTA_POSTGRES_URL: postgresUrl, PGAPPNAME: name },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let out = '';
  const exited = new Promise((resolve) => child.once('exit', resolve));
  await new Promise((resolve, reject) => {
    const feed = (d) => {
      out = (out + d).slice(-8000);
      if (/devices connect to/.test(out)) resolve();
    };
    child.stdout.on('data', feed);
    child.stderr.on('data', feed);
    child.once('exit', (code) => reject(new Error(`ota-gateway exited (${code}): ${out}`)));
  });
  return {
    url: `mqtt://127.0.0.1:${port}`,
    output: () => out,
    async stop() {
      if (child.exitCode === null && child.signalCode === null) {
        child.kill('SIGKILL');
        await exited;
      }
    },
  };
}

/** Counts, per device, the update notices Node-RED publishes on the broker for `versions`. */
function noticeCounter(brokerUrl, versions) {
  const counts = new Map();
  const wanted = (text) => versions.some((v) => text.includes(v));
  const kinds = [
    [/^ota\/([^/]+)\/v1\/devices\/me\/attributes$/, (t) => /"fw_version"/.test(t) && wanted(t)],
    [/^ota\/([^/]+)\/tago\/data\/post$/, (t) => t.includes('"firmware_manifest"') && wanted(t)],
    [/^\$ota\/update\/[^/]+\/([^/]+)$/, wanted],
    [/^biotz\/1\/0\/[^/]+\/([^/]+)\/subscribe\/firmware\/update$/, wanted],
    [/^cmnd\/([^/]+)\/Upgrade$/, () => true],
  ];
  const client = mqtt.connect(brokerUrl, { reconnectPeriod: 200 });
  client.on('message', (topic, payload, packet) => {
    if (packet.retain) return; // a notice left on the broker by the first phase, not a new one
    for (const [re, isNotice] of kinds) {
      const m = re.exec(topic);
      if (m && isNotice(payload.subarray(0, 4096).toString('utf8'))) counts.set(m[1], (counts.get(m[1]) ?? 0) + 1);
    }
  });
  const ready = client.subscribeAsync(['#', '$ota/update/#'], { qos: 1 });
  return { counts, ready, stop: () => client.endAsync(true) };
}

describe(`end to end: three Node-REDs on one PostgreSQL and one mosquitto, two gateways, ${PER_DIALECT * 6} devices`, function () {
  this.timeout(240_000 + PER_DIALECT * 6 * 1500);
  const temp = [];
  const stops = [];
  let cluster, postgresUrl, mosquitto, reds, apis, fleets, plan;

  before(async function () {
    const why = !haveMosquitto() ? 'mosquitto is not installed (apt-get install mosquitto)' : unavailable();
    if (why) {
      console.log(`      (skipped: ${why})`);
      this.skip();
    }
    cluster = await startPostgres();
    stops.push(() => cluster.stop());
    postgresUrl = await cluster.createDatabase();
    mosquitto = await startMosquitto();
    stops.push(() => mosquitto.close());
    const ports = [];
    for (let i = 0; i < INSTANCES; i++) ports.push(await freePort());
    const balancer = await startBalancer(ports);
    stops.push(() => balancer.close());
    reds = [];
    // One after the other: the first applies the schema migrations.
    for (let i = 0; i < INSTANCES; i++) {
      const userDir = fs.mkdtempSync(path.join(os.tmpdir(), `ota-scale-red${i}-`));
      temp.push(userDir);
      const flows = instanceFlow({ brokerUrl: mosquitto.url, publicUrl: balancer.url });
      const repo = flows.find((n) => n.type === 'ota-repository');
      fs.writeFileSync(path.join(userDir, 'flows_cred.json'), JSON.stringify({ [repo.id]: { postgresUrl } }));
      // PGAPPNAME names it in the cluster's log (OTA_PG_LOG, test/support/postgres.js).
      const red = await startNodeRed({ userDir, port: ports[i], flows, settings: { credentialSecret: false }, env: { PGAPPNAME: `red${i}` } });
      stops.push(() => red.stop());
      reds.push(red);
    }
    apis = reds.map((r) => new AdminApi(r.url));
    const gateways = [];
    for (let i = 0; i < 2; i++) {
      const g = await startGateway(mosquitto.url, postgresUrl, `gw${i}`);
      stops.push(() => g.stop());
      gateways.push(g);
    }
    plan = fleetPlan({ count: PER_DIALECT, size: IMAGE_SIZE });
    const driver = await driverApi();
    for (const d of plan.devices) await driver.registerDevice(d);
    // Half of each dialect's devices on each gateway.
    const half = Math.ceil(PER_DIALECT / 2);
    const options = { chunkTimeoutMs: 3000, maxAttempts: 5, retryDelayMs: 500, tasmotaAttemptDelayMs: 200 };
    fleets = [];
    for (const [i, g] of gateways.entries()) {
      const groups = plan.groups.map((grp) => ({
        ...grp,
        ...(grp.dialect === 'thingsboard' ? { chunkSize: TB_CHUNK } : {}),
        ...(i === 0 ? { count: half } : { count: PER_DIALECT - half, startIndex: half + 1 }),
      }));
      const fleet = await startFleet({ broker: g.url, groups, ...options });
      stops.push(() => fleet.stop());
      fleets.push(fleet);
    }
  });

  after(async () => {
    for (const s of stops.splice(0).reverse()) await Promise.resolve().then(s).catch(() => {});
    for (const d of temp) fs.rmSync(d, { recursive: true, force: true });
  });

  const devices = () => fleets.flatMap((f) => f.devices);

  /** Which instance holds the driver lease, read from ota_leases (its holder names the pid). */
  async function leaseHolder() {
    const { Client } = require('pg');
    const c = new Client({ connectionString: postgresUrl });
    await c.connect();
    try {
      const { rows } = await c.query("SELECT holder FROM ota_leases WHERE name = 'driver' AND expires_at > now()");
      if (!rows.length) return -1;
      const pid = Number(rows[0].holder.split(':')[1]);
      return reds.findIndex((r) => r.child.pid === pid);
    } finally {
      await c.end();
    }
  }
  async function driverApi() {
    let index = -1;
    await eventually(async () => (index = await leaseHolder()) >= 0 || 'no instance holds the lease', 20_000, 'a driver');
    return apis[index];
  }

  async function served(i) {
    const res = await fetch(`${reds[i].url}/e2e/served`);
    const byNode = await res.json();
    return Object.values(byNode).reduce((sum, text) => sum + (Number(/(\d+)/.exec(text)?.[1]) || 0), 0);
  }

  it('updates every device byte for byte, each Node-RED serving about a third of the chunk requests', async () => {
    const driver = await driverApi();
    const images = new Map();
    for (const f of plan.firmware) {
      const record = await driver.storeFirmware(f.image, f.title, f.version);
      images.set(f.tag, f.image);
      await driver.assign({ firmware: record.id, tag: f.tag });
    }
    await Promise.all(fleets.map((f) => f.waitAllUpdated(60_000 + DEVICES * 1000)));
    for (const d of devices()) {
      const image = images.get(d.dialect === 'sming' ? 'demo-patch' : 'demo');
      assert.strictEqual(d.sha256, sha256(image), `${d.id}: not the stored image`);
      assert.strictEqual(d.installs, 1, d.id);
    }
    // The status comes at most once a second, and once more after the last chunk.
    let counts = [];
    await new Promise((r) => setTimeout(r, 1500));
    await eventually(async () => {
      counts = await Promise.all(reds.map((_, i) => served(i)));
      return counts.every((n) => n > 0) || `served ${counts}`;
    }, 10_000, 'each instance served chunks');
    const total = counts.reduce((a, b) => a + b, 0);
    const shares = counts.map((n) => (100 * n) / total);
    console.log(`      chunk requests served per instance: ${counts.join(' / ')} of ${total} (${shares.map((s) => s.toFixed(1)).join(' / ')} %)`);
    for (const s of shares) assert.ok(Math.abs(s - 100 / INSTANCES) <= 10, `shares ${shares.map((x) => x.toFixed(1))} %`);
  });

  it('answers a rollout command sent to an instance that does not drive with 409, saying where to send it', async () => {
    const driver = await leaseHolder();
    const other = apis[(driver + 1) % INSTANCES];
    const res = await fetch(`${other.url}/ota/rollouts`, { method: 'POST', headers: { 'Content-Type': 'application/json' }, body: JSON.stringify({ firmware: 'x', targets: { tag: 'demo' } }) });
    const body = await res.json();
    assert.strictEqual(res.status, 409, JSON.stringify(body));
    assert.strictEqual(body.code, 'not_driver');
    assert.match(body.error, /send rollout commands to that instance/);
  });

  it('the driver heard of every update, whichever instance each report reached: the assignments finished', async () => {
    await eventually(async () => {
      const list = await (await driverApi()).call('GET', '/ota/rollouts');
      const open = (list.rollouts ?? list).filter((r) => r.state !== 'finished');
      if (open.length === 0) return true;
      const stuck = (await (await driverApi()).rollout()).devices.filter((x) => x.state !== 'updated');
      return `${open.map((r) => `${r.name}: ${r.state} ${JSON.stringify(r.counts)}`).join('; ')} ${JSON.stringify(stuck)}`;
    }, 20_000, 'the assignments finished on the driver');
  });

  it('survives a kill -9 of the driving instance in the middle of a staged rollout: lease moved within 10 s, every device updated, no notice twice', async () => {
    const versions = { demo: '1.2.0', 'demo-patch': '1.0.2' };
    const notices = noticeCounter(mosquitto.url, Object.values(versions));
    stops.push(() => notices.stop());
    await notices.ready;
    const driverIndex = await leaseHolder();
    const driver = apis[driverIndex];
    const images = new Map();
    const rollouts = [];
    for (const [tag, version] of Object.entries(versions)) {
      const image = demoImage('demo-app', version, IMAGE_SIZE + 333);
      images.set(tag, image);
      const fw = await driver.storeFirmware(image, 'demo-app', version);
      rollouts.push(await driver.call('POST', '/ota/rollouts', {
        name: `to ${version}`, firmware: fw.id, targets: { tag },
        // Sming devices of one app share one retained notice: one group for them.
        // and all at once: the ota-gateway CLI withholds no notice, so each takes the image as
        // the first is released.
        plan: tag === 'demo' ? { groups: [{ percent: 20 }, { percent: 30 }, {}], maxConcurrent: Math.max(2, Math.ceil(DEVICES / 15)) } : { groups: [{}] }, start: true,
      }));
    }
    const total = devices().length;
    const smingCount = devices().filter((d) => d.dialect === 'sming').length;
    const countable = total - smingCount; // Sming devices of one app share one retained notice topic
    const noticed = () => [...notices.counts.values()].reduce((a, b) => a + b, 0);
    const status = async () => (await Promise.all(rollouts.map((r) => driver.call('GET', `/ota/rollouts/${r.id}`)))).map((r) => `${r.state} ${JSON.stringify(r.groupCounts)}`).join('; ');
    // What the repository says of the devices not done, and what those devices say of themselves.
    const stuck = async (api = driver) => {
      const open = (await api.rollout()).devices.filter((x) => !['updated', 'idle'].includes(x.state) && x.target?.version !== x.current?.version);
      const sims = new Map(devices().map((d) => [d.id, d]));
      return JSON.stringify(open.map((x) => {
        const d = sims.get(x.device);
        return [x.device, x.state, x.current?.version, x.target?.version, d && { state: d.state, version: d.version, attempts: d.attempts, error: d.lastError, history: d.history.slice(-6).map((h) => `${h.state}@${new Date(h.at).toISOString().slice(17, 23)}`) }];
      }));
    };
    // In the middle: the first group's notices are out (the later groups wait for it).
    await eventually(async () => noticed() >= Math.ceil(countable / 5) || `${noticed()} noticed; ${await status()} ${await stuck()}`, 30_000 + DEVICES * 500, 'the first group noticed');
    const before = noticed();
    reds[driverIndex].child.kill('SIGKILL');
    const killedAt = Date.now();
    assert.ok(before < countable, `killed before the end (${before} of ${countable} noticed)`);

    let holder = -1;
    await eventually(async () => {
      holder = await leaseHolder();
      return (holder >= 0 && holder !== driverIndex) || `holder ${holder}`;
    }, 15_000, 'the lease moved');
    const movedMs = Date.now() - killedAt;
    console.log(`      killed the driver after ${before} of ${countable} notices; the lease moved in ${movedMs} ms`);
    assert.ok(movedMs <= 10_000, `lease moved after ${movedMs} ms`);

    const next = apis[holder];
    await eventually(async () => {
      const states = await Promise.all(rollouts.map((r) => next.call('GET', `/ota/rollouts/${r.id}`)));
      return states.every((r) => r.state === 'finished') || `${states.map((r) => `${r.state} ${JSON.stringify(r.counts)}`).join('; ')} ${await stuck(next)}`;
    }, 60_000 + DEVICES * 1000, 'both rollouts finished');
    for (const d of devices()) {
      const tag = d.dialect === 'sming' ? 'demo-patch' : 'demo';
      // A Biotz device names its firmware by title and version (the notice's firmware-name).
      assert.ok([versions[tag], `demo-app ${versions[tag]}`].includes(d.version), `${d.id} at ${d.version}`);
      assert.strictEqual(d.sha256, sha256(images.get(tag)), `${d.id}: not the stored image`);
    }
    // A late duplicate would come within the lease's length.
    await new Promise((r) => setTimeout(r, 2000));
    const twice = [...notices.counts].filter(([, n]) => n > 1).map(([id, n]) => `${id} ×${n}`);
    const never = devices().filter((d) => d.dialect !== 'sming' && !notices.counts.has(d.id)).map((d) => d.id);
    assert.deepStrictEqual(twice, [], 'devices noticed twice');
    assert.deepStrictEqual(never, [], 'devices never noticed on the broker');
  });
});
