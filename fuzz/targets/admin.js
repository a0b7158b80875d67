'use strict';
// Target 2: the admin API. Its parsers called directly with mutated bodies (multipart, device
// registration, assignments, uploads), then real HTTP against a Node-RED runtime with an
// ota-repository: every answer must be JSON with a 2xx or 4xx status, never a 500 or an HTML page.

const fs = require('fs');
const os = require('os');
const path = require('path');
const http = require('http');
const g = require('../lib/gen');
const { impurity } = require('../lib/invariants');

const dist = (p) => require(path.join(__dirname, '../../dist', p));
const { OtaError } = dist('core/types');
const { OtaRepository } = dist('core/repository');
const { multipartBoundary, parseMultipart } = dist('core/admin/multipart');
const admin = dist('core/admin/requests');
const { trackerFor } = dist('core/device-updates/tracker');
const { isTopicSafe } = dist('core/devices');

// eslint-disable-next-line no-control-regex
const CONTROL = /[\u0000-\u001f\u007f]/;

function thrown(err) {
  return { cls: `threw ${err && err.constructor ? err.constructor.name : typeof err}`, detail: String(err && err.stack ? err.stack.split('\n').slice(0, 3).join(' | ') : err) };
}

/** An OtaError is the documented way to refuse; it must map to a 4xx. Anything else escapes. */
function refusal(err) {
  if (!(err instanceof OtaError)) return thrown(err);
  const status = admin.statusFor(err);
  return status >= 400 && status < 500 ? null : { cls: `OtaError ${err.code} maps to ${status}` };
}

// ----------------------------------------------------------------------------- pure parsers

const BOUNDARY = 'XyZ-1234';
function multipartBody(rng) {
  const parts = [
    ['title', null, 'app'],
    ['version', null, '1.2.3'],
    ['file', 'fw.bin', rng.bytes(rng.range(0, 64)).toString('latin1')],
  ];
  let text = '';
  for (const [name, filename, data] of parts.slice(0, rng.range(0, 3))) {
    text += `--${BOUNDARY}\r\nContent-Disposition: form-data; name="${name}"${filename ? `; filename="${filename}"` : ''}\r\n${filename ? 'Content-Type: application/octet-stream\r\n' : ''}\r\n${data}\r\n`;
  }
  text += `--${BOUNDARY}--\r\n`;
  return Buffer.from(text, 'latin1');
}

const multipart = {
  name: 'multipart parser',
  weight: 30,
  gen(rng) {
    let contentType = `multipart/form-data; boundary=${rng.chance(0.5) ? BOUNDARY : `"${BOUNDARY}"`}`;
    if (rng.chance(0.3)) contentType = g.mutateString(rng, contentType);
    let body = multipartBody(rng);
    for (let i = rng.range(0, 3); i > 0; i--) body = g.mutateBytes(rng, body);
    if (rng.chance(0.05)) body = Buffer.from(`--${BOUNDARY}\r\n`.repeat(rng.range(30, 40)) + `--${BOUNDARY}--`);
    return { contentType, body };
  },
  check(c) {
    let boundary;
    try {
      boundary = multipartBoundary(c.contentType);
    } catch (err) {
      return thrown(err);
    }
    if (boundary === undefined) return null;
    if (typeof boundary !== 'string' || boundary.length < 1 || boundary.length > 70) return { cls: 'boundary outside 1-70 characters' };
    let parts;
    try {
      parts = parseMultipart(c.body, boundary);
    } catch (err) {
      return refusal(err);
    }
    if (parts.length > 32) return { cls: 'more than 32 parts accepted' };
    for (const p of parts) {
      if (typeof p.name !== 'string' || !Buffer.isBuffer(p.data)) return { cls: 'part without name or data' };
      if (p.data.buffer !== c.body.buffer && p.data.length) return { cls: 'part data is not a view of the body' };
      const bad = impurity({ ...p, data: null }, 'part');
      if (bad) return { cls: 'impure part', detail: bad };
    }
    return null;
  },
};

const DEVICE_SEED = { id: 'dev-1', dialect: 'tencent', token: 'tok-1', attributes: { product: 'P1' }, tags: ['lab', 'b'] };

function deviceFuzzer(repo) {
  return {
    name: 'registerDevice',
    weight: 3,
    async: true,
    gen(rng) {
      let body = g.clone(DEVICE_SEED);
      if (rng.chance(0.4)) body = g.replaceLeaf(rng, body);
      if (rng.chance(0.3)) body.id = rng.pick(['.', '..', 'a', 'dev-2', 'x:y', '__proto__', 'constructor']);
      for (let i = rng.range(1, 3); i > 0; i--) body = g.mutateValue(rng, body);
      return { body };
    },
    async check(c) {
      let r;
      try {
        r = await admin.registerDevice(repo, c.body);
      } catch (err) {
        return refusal(err);
      }
      const d = r.device;
      // Device ids name files, URL paths and topic levels: '.' and '..' are path segments.
      if (d.id === '.' || d.id === '..') return { cls: 'device id . or .. accepted', detail: JSON.stringify(d.id) };
      if (!isTopicSafe(d.id)) return { cls: 'device id not topic-safe', detail: JSON.stringify(d.id) };
      for (const [k, v] of Object.entries(d.attributes)) if (typeof v !== 'string' || !isTopicSafe(v)) return { cls: 'attribute value not topic-safe', detail: `${k}=${JSON.stringify(v)}` };
      if (r.token !== undefined && c.body.token !== true) return { cls: 'a given token was echoed' };
      if ('tokenHash' in d) return { cls: 'token hash shown' };
      const bad = impurity(r, 'result');
      return bad ? { cls: 'impure device record', detail: bad } : null;
    },
  };
}

function assignFuzzer(repo, firmwareId) {
  const tracker = trackerFor(repo);
  const seeds = [
    { firmware: firmwareId, devices: ['d1', 'd2'] },
    { firmware: { title: 'app', version: '1.0.0' }, tag: 'lab' },
    { firmware: { id: firmwareId }, devices: 'd1' },
  ];
  return {
    name: 'assign/unassign',
    weight: 10,
    async: true,
    gen(rng) {
      let body = g.clone(rng.pick(seeds));
      if (rng.chance(0.4)) body = g.replaceLeaf(rng, body);
      for (let i = rng.range(0, 3); i > 0; i--) body = g.mutateValue(rng, body);
      return { op: rng.pick(['assign', 'unassign']), body };
    },
    async check(c) {
      let r;
      try {
        // assign waits for the notices' outcomes (a notice that cannot be built fails the device).
        r = await admin[c.op](repo, tracker, c.body);
      } catch (err) {
        return refusal(err);
      }
      const bad = impurity(r, 'result');
      return bad ? { cls: 'impure result', detail: bad } : null;
    },
  };
}

/** An ESP-IDF image whose app description names the firmware (title and version read from it). */
function espImage(rng, name, version) {
  const img = Buffer.alloc(200);
  img[0] = 0xe9;
  img.writeUInt32LE(0xabcd5432, 0x20);
  Buffer.from(version, 'utf8').copy(img, 0x30, 0, 31);
  Buffer.from(name, 'utf8').copy(img, 0x50, 0, 31);
  rng.bytes(32).copy(img, 168);
  return img;
}

function uploadFuzzer(repo) {
  return {
    name: 'storeFirmware',
    weight: 0.3,
    async: true,
    gen(rng) {
      const name = rng.pick(['app', 'bad\u0007name', 'x\ny', '\u001b[2Jclear', g.string(rng)]);
      const version = rng.pick(['1.0.0', `1.0.${rng.int(1000)}`, '2.0.0\r', g.string(rng)]);
      const fields = {};
      if (rng.chance(0.3)) fields.title = rng.pick(['t', 'a\u0000b', g.string(rng)]);
      if (rng.chance(0.3)) fields.version = rng.pick(['1.0.0', g.string(rng)]);
      if (rng.chance(0.2)) fields.tag = g.string(rng);
      return { image: rng.chance(0.8) ? espImage(rng, name, version) : rng.bytes(rng.range(0, 300)), fields };
    },
    async check(c) {
      let r;
      try {
        r = await admin.storeFirmware(repo, c.image, c.fields);
      } catch (err) {
        return refusal(err);
      }
      const rec = r.record;
      if (r.created) await repo.firmware.remove(rec.id).catch(() => undefined);
      // Names read from an image end up in topics, JSON notices and logs, like typed ones.
      for (const key of ['title', 'version', 'tag']) {
        if (typeof rec[key] !== 'string' || CONTROL.test(rec[key])) return { cls: `${key} with control characters stored (source ${rec.source})`, detail: JSON.stringify(rec[key]) };
      }
      const bad = impurity(rec, 'record');
      return bad ? { cls: 'impure firmware record', detail: bad } : null;
    },
  };
}

async function repository() {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'ota-fuzz-admin-'));
  const repo = new OtaRepository({ dir, secret: 'a'.repeat(40), maxImageBytes: 1 << 16 });
  const { record } = await repo.firmware.store({ image: Buffer.alloc(1000, 1), title: 'app', version: '1.0.0' });
  await repo.devices.register({ id: 'd1', dialect: 'thingsboard', tags: ['lab'] });
  await repo.devices.register({ id: 'd2', dialect: 'biotz', attributes: { customer: 'c1' } });
  return {
    repo,
    firmwareId: record.id,
    async close() {
      await repo.flush();
      fs.rmSync(dir, { recursive: true, force: true });
    },
  };
}

// ------------------------------------------------------------------------------------ HTTP

function request(port, agent, { method, path: p, headers = {}, body }) {
  return new Promise((resolve) => {
    let req;
    try {
      req = http.request({ host: '127.0.0.1', port, method, path: p, agent, headers: { ...headers, ...(body ? { 'Content-Length': body.length } : {}) } }, (res) => {
      const chunks = [];
      res.on('data', (d) => chunks.push(d));
      res.on('end', () => resolve({ status: res.statusCode, type: res.headers['content-type'] || '', body: Buffer.concat(chunks).toString('utf8') }));
      res.on('error', (err) => resolve({ status: 0, type: '', body: String(err) }));
    });
    } catch {
      resolve({ status: -1, type: '', body: 'not sendable (Node refuses the header or path)' });
      return;
    }
    req.on('error', (err) => resolve({ status: 0, type: '', body: String(err.message) }));
    req.setTimeout(15000, () => req.destroy(new Error('timeout')));
    if (body) req.write(body);
    req.end();
  });
}

const ROUTES = [
  ['GET', '/ota/firmware'], ['GET', '/ota/firmware/:id'], ['POST', '/ota/firmware'], ['DELETE', '/ota/firmware/:id'],
  ['GET', '/ota/devices'], ['GET', '/ota/devices/:id'], ['POST', '/ota/devices'], ['DELETE', '/ota/devices/:id'],
  ['POST', '/ota/assignments'], ['DELETE', '/ota/assignments'], ['GET', '/ota/rollout'],
];

const JSON_SEEDS = {
  '/ota/devices': { id: 'h1', dialect: 'thingsboard', token: 'tok-h1', attributes: {}, tags: 'lab' },
  '/ota/assignments': { firmware: { title: 'app', version: '1.0.0' }, devices: ['h1'] },
};

/** Percent-encoded text; lone surrogates (which encodeURIComponent refuses) as raw %ED bytes. */
function enc(text) {
  try {
    return encodeURIComponent(text);
  } catch {
    return encodeURIComponent(text.replace(/[\ud800-\udfff]/g, '')) + '%ED%A0%80';
  }
}

function httpCase(rng) {
  const [method, route] = rng.pick(ROUTES);
  const id = rng.chance(0.5) ? rng.pick(['h1', 'nope', '..', '%2e%2e', '%00', '__proto__', 'constructor']) : enc(g.string(rng)) || 'x';
  let p = route.replace(':id', id.slice(0, 2000));
  const query = [];
  for (let i = rng.range(0, 3); i > 0; i--) {
    query.push(rng.pick([
      `title=${enc(g.string(rng))}`, 'title=a&title=b', 'version=1.0.0', `version=${enc(g.string(rng))}`,
      'repository=nope', 'repository[]=x', 'devices=h1,%00', 'devices[__proto__]=1', '__proto__[x]=1', 'tag=lab', `firmware=${enc(g.string(rng))}`,
    ]));
  }
  // Node's own HTTP parser answers URLs over 16 KB with a bare 431 before any route runs.
  if (query.length) p += `?${query.join('&')}`.slice(0, 4000);
  const headers = {};
  let body;
  if (method === 'POST' || method === 'DELETE') {
    const kind = rng.pick(['json', 'json', 'broken-json', 'urlencoded', 'octet', 'multipart', 'text', 'none']);
    if (kind === 'json' || kind === 'broken-json') {
      let v = g.clone(JSON_SEEDS[route] ?? { firmware: 'x' });
      for (let i = rng.range(0, 3); i > 0; i--) v = g.mutateValue(rng, v);
      let text = JSON.stringify(v) ?? 'null';
      if (kind === 'broken-json') text = rng.pick([text.slice(0, rng.int(text.length)), `${text}}`, '{"a":', '{\'a\':1}', '\u0000', `{"__proto__":{"x":1},"id":"h2"}`, '[' .repeat(5000)]);
      headers['Content-Type'] = rng.pick(['application/json', 'application/json; charset=utf-16', 'application/JSON']);
      body = Buffer.from(text);
    } else if (kind === 'urlencoded') {
      headers['Content-Type'] = 'application/x-www-form-urlencoded';
      body = Buffer.from(rng.pick(['id=h3&dialect=tago', 'attributes[__proto__][x]=1&id=h4&dialect=tago', 'devices[]=h1&firmware=x', 'a[b][c][d][e][f][g]=1', '%zz=1', g.string(rng)]));
    } else if (kind === 'octet') {
      headers['Content-Type'] = 'application/octet-stream';
      body = rng.bytes(rng.range(0, 2000));
    } else if (kind === 'multipart') {
      headers['Content-Type'] = rng.chance(0.7) ? `multipart/form-data; boundary=${BOUNDARY}` : g.mutateString(rng, `multipart/form-data; boundary=${BOUNDARY}`);
      body = g.mutateBytes(rng, multipartBody(rng), rng.range(0, 3));
    } else if (kind === 'text') {
      headers['Content-Type'] = 'text/plain';
      body = Buffer.from(g.string(rng));
    }
  }
  return { method, route, path: p, headers, body };
}

/** Classes by what went wrong (not by route: one cause shows on every route); the route goes in the detail. */
function httpViolation(c, res) {
  const where = `${c.method} ${c.route}`;
  const cause = /SyntaxError|not valid JSON|Unexpected/.test(res.body) ? ' (body parser: malformed JSON)' : /too large|PayloadTooLarge/i.test(res.body) ? ' (body too large)' : '';
  const detail = `${where} -> ${res.status}: ${res.body.replace(/\s+/g, ' ').slice(0, 160)}`;
  if (res.status === 0) return { cls: 'no answer', detail };
  if (res.status >= 500) return { cls: `status ${res.status}${cause}`, detail };
  if (!/application\/json/i.test(res.type)) return { cls: `${res.status} answered as ${res.type.split(';')[0] || 'no content type'}, not JSON${cause}`, detail };
  try {
    JSON.parse(res.body);
  } catch {
    return { cls: `${res.status} body is not JSON`, detail };
  }
  if (res.status >= 400 && !/"error"/.test(res.body)) return { cls: `${res.status} without an error text`, detail };
  return null;
}

async function runHttp({ rng, count, escapes }) {
  const { startNodeRed } = require('../../scripts/node-red-runtime');
  const userDir = fs.mkdtempSync(path.join(os.tmpdir(), 'ota-fuzz-red-'));
  const storageDir = path.join(userDir, 'ota');
  const flows = [
    { id: 'f1', type: 'tab', label: 'fuzz' },
    { id: 'repo', type: 'ota-repository', name: 'fuzz', storageDir, maxImageMB: 1 },
    { id: 'pp', z: 'f1', type: 'progress-parser', repository: 'repo', wires: [[], []] },
  ];
  const red = await startNodeRed({ userDir, flows });
  const agent = new http.Agent({ keepAlive: true, maxSockets: 8 });
  const rows = new Map();
  let inputs = 0;
  try {
    const setup = [
      { method: 'POST', path: '/ota/devices', headers: { 'Content-Type': 'application/json' }, body: Buffer.from(JSON.stringify({ id: 'h1', dialect: 'thingsboard', token: 'tok-h1', tags: ['lab'] })) },
      { method: 'POST', path: '/ota/firmware?title=app&version=1.0.0', headers: { 'Content-Type': 'application/octet-stream' }, body: Buffer.alloc(500, 3) },
    ];
    for (const s of setup) await request(red.port, agent, s);
    const cases = Array.from({ length: count }, () => httpCase(rng));
    let next = 0;
    const worker = async () => {
      while (next < cases.length) {
        const c = cases[next++];
        const res = await request(red.port, agent, c);
        if (res.status === -1) continue;
        inputs++;
        const key = `${c.method} ${c.route}`;
        const row = rows.get(key) ?? { inputs: 0, escapes: 0 };
        rows.set(key, row);
        row.inputs++;
        const bad = httpViolation(c, res);
        if (bad) {
          row.escapes++;
          // Shrinking would need a request per step: the reproducer is the request as sent.
          escapes.add(`http ${bad.cls}`, bad.detail, { method: c.method, path: c.path, headers: c.headers, body: c.body && c.body.length < 300 ? c.body.toString('latin1') : c.body });
        }
      }
    };
    await Promise.all(Array.from({ length: 4 }, worker));
  } finally {
    agent.destroy();
    await red.stop();
    fs.rmSync(userDir, { recursive: true, force: true });
  }
  return { rows: [...rows].sort().map(([k, r]) => [`http ${k}`, r.inputs, r.escapes, '']), inputs };
}

async function run({ rng, counts = {}, quick, escapes }) {
  const count = counts.admin ?? (quick ? 5_000 : 250_000);
  const httpCount = counts.http ?? (quick ? 150 : 3_000);
  const store = await repository();
  const fuzzers = [multipart, deviceFuzzer(store.repo), assignFuzzer(store.repo, store.firmwareId), uploadFuzzer(store.repo)];
  const stats = new Map(fuzzers.map((f) => [f.name, { inputs: 0, escapes: 0, ns: 0n }]));
  const picks = fuzzers.map((f) => [f.weight, f]);
  const pure = rng.fork('pure');
  try {
    for (let i = 0; i < count; i++) {
      const f = pure.weighted(picks);
      const c = f.gen(pure);
      const s = stats.get(f.name);
      s.inputs++;
      const t0 = process.hrtime.bigint();
      const bad = f.async ? await f.check(c) : f.check(c);
      s.ns += process.hrtime.bigint() - t0;
      if (bad) {
        s.escapes++;
        // Async checks write to the repository: their reproducer is the input as generated.
        escapes.add(`${f.name}: ${bad.cls}`, bad.detail, c, f.async ? undefined : (cand) => {
          const again = f.check(cand);
          return again && typeof again.then !== 'function' ? { cls: `${f.name}: ${again.cls}`, detail: again.detail } : null;
        });
      }
      if ((i & 0xfff) === 0) await new Promise((r) => setImmediate(r));
    }
  } finally {
    await store.close();
  }
  const ms = (f) => Math.round(Number(stats.get(f.name).ns) / 1e6);
  const rows = fuzzers.map((f) => [f.name, stats.get(f.name).inputs, stats.get(f.name).escapes, ms(f)]);
  let inputs = count;
  if (httpCount > 0) {
    const h = await runHttp({ rng: rng.fork('http'), count: httpCount, escapes });
    rows.push(...h.rows);
    inputs += h.inputs;
  }
  return { header: ['fuzzer', 'inputs', 'escapes', 'check ms'], rows, inputs };
}

module.exports = { run };
