'use strict';
// Target 1: everything that parses what a device sends. Dialect uplinks, the progress-parser
// path (topic detection, event objects, rollout records), chunk-service requests, topic-filter
// functions that must agree, the gateway's ACL policy, and the checksum/version/range parsers.

const fs = require('fs');
const os = require('os');
const path = require('path');
const semver = require('semver');
const g = require('../lib/gen');
const { eventViolation, recordViolation, impurity } = require('../lib/invariants');
const { topicFilter, filterAlgebra, policy, DEVICE_IDS, thrown } = require('./uplink-filters');

const dist = (p) => require(path.join(__dirname, '../../dist', p));
const { OtaError } = dist('core/types');
const dialects = dist('core/dialects/index');
const { ChunkService } = dist('core/dialects/chunk-service');
const { deliveryFor } = dist('core/chunking');
const { detectDialect } = dist('core/device-updates/detect-dialect');
const { toProgressEvent, explainError } = dist('core/device-updates/progress-events');
const { trackerFor } = dist('core/device-updates/tracker');
const { OtaRepository } = dist('core/repository');
const { verifyChecksum, deviceChecksum } = dist('sim/tb-checksum');
const { decodePatch, encodePatch } = dist('sim/sming-decoder');
const { computeChecksums } = dist('core/firmware/checksums');
const { readEspAppDescription } = dist('core/firmware/esp-app-desc');
const { parseRange } = dist('core/firmware/download');
const { patchHeader } = dist('core/dialects/sming');

const UPLINK_KINDS = ['progress', 'chunk-request', 'attribute-request', 'ignored', 'invalid'];

// Fixed option objects: the dialects cache compiled templates per options object.
const OPTIONS = [
  undefined,
  { device: 'd1' },
  { prefix: 'ota/{device}/' },
  { maxChunkSize: 1024, chunkSize: 512 },
  { topics: { telemetry: 'tele/{device}/fw', report: 'rep/{product}/{device}', data: 'tg/{device}/post', chunkRequest: 'c/{device}/{requestId}/{chunk}' } },
  { attributes: { product: 'P1', customer: 'c1', app: 'lamp' }, device: 'lamp' },
];

/** Valid uplinks per dialect: [topic, payload value]. `{d}` is replaced by a device id. */
const SEEDS = {
  thingsboard: [
    ['v1/devices/me/telemetry', { fw_state: 'DOWNLOADING', current_fw_title: 'app', current_fw_version: '1.0.0' }],
    ['v1/devices/me/telemetry', { ts: 1700000000000, values: { fw_state: 'FAILED', fw_error: 'hash mismatch' } }],
    ['v1/devices/me/telemetry', [{ fw_state: 'UPDATED', current_fw_version: '1.1.0' }, { current_fw_version: '1.1.0' }]],
    ['v1/devices/me/attributes/request/7', { sharedKeys: 'fw_title,fw_version,fw_size' }],
    ['v2/fw/request/1/chunk/0', '1024'],
    ['v2/fw/request/9/chunk/12', ''],
  ],
  tencent: [
    ['$ota/report/P1/{d}', { type: 'report_progress', report: { progress: { state: 'downloading', percent: '42', result_code: '0', result_msg: '' }, version: '1.0.0' } }],
    ['$ota/report/P1/{d}', { type: 'report_progress', report: { progress: { state: 'fail', result_code: '-4', result_msg: '' }, version: '1.0.0' } }],
    ['$ota/report/P1/{d}', { type: 'report_progress', report: { progress: '{"state":"burning"}', version: '1.0.0' } }],
    ['$ota/report/P1/{d}', { type: 'report_version', report: { version: '1.0.0' } }],
  ],
  tago: [
    ['tago/data/post', { variable: 'firmware_request', value: 3 }],
    ['tago/data/post', [{ variable: 'firmware_version', value: '1.2.0' }]],
    ['tago/data/post', { variable: 'firmware_status', value: 'failed', metadata: { error: 'flash write' } }],
  ],
  tasmota: [
    ['stat/{d}/RESULT', { Upgrade: 'Version 14.2.0(tasmota) from http://h/ota/dl/f/d/k/fw.bin' }],
    ['stat/{d}/RESULT', { POWER: 'ON' }],
    ['stat/{d}/UPGRADE', { Upgrade: 'Failed Not Enough space' }],
    ['stat/{d}/UPGRADE', { Upgrade: 'Successful. Restarting' }],
    ['tele/{d}/INFO1', { Info1: { Module: 'Generic', Version: '14.3.0(minimal)', FallbackTopic: 'cmnd/DVES_1_fb/', GroupTopic: 'cmnd/tasmotas/' } }],
    ['stat/{d}/STATUS2', { StatusFWR: { Version: '14.3.0(release-tasmota)' } }],
    ['tele/{d}/LWT', 'Offline'],
  ],
  sming: [['a/lamp/u/1.0', 'x']],
  biotz: [['biotz/1/0/c1/{d}/subscribe/firmware/update', {}]],
};
const DIALECT_NAMES = Object.keys(SEEDS);

/** A seed uplink, maybe namespaced, with its topic and payload mutated a few times. */
function uplink(rng, dialect) {
  const [t, p] = rng.pick(SEEDS[dialect]);
  const d = rng.pick(DEVICE_IDS);
  let topic = t.replace('{d}', d);
  if (rng.chance(0.5) && (dialect === 'thingsboard' || dialect === 'tago')) topic = `ota/${d}/${topic}`;
  let value = g.clone(p);
  if (rng.chance(0.4)) value = g.replaceLeaf(rng, value);
  for (let i = rng.range(0, 2); i > 0; i--) value = g.mutateValue(rng, value);
  if (rng.chance(0.3)) topic = g.mutateTopic(rng, topic, DEVICE_IDS);
  const payload = rng.chance(0.05) ? rng.bytes(rng.range(0, 128)) : g.serialize(rng, value);
  return { topic, payload };
}

function uplinkViolation(u, dialect) {
  if (!u || !UPLINK_KINDS.includes(u.kind)) return { cls: 'unknown uplink kind', detail: JSON.stringify(u && u.kind) };
  if (u.kind === 'progress') {
    if (!Array.isArray(u.events)) return { cls: 'progress without events' };
    for (const ev of u.events) {
      const bad = eventViolation(ev, dialect);
      if (bad) return { cls: `event invariant: ${bad.replace(/ [^ ]*"[^"]*".*$/, '').replace(/\$\S*/g, '')}`, detail: bad };
    }
  }
  if (u.kind === 'chunk-request') {
    if (typeof u.device !== 'string' || u.device === '') return { cls: 'chunk request without device' };
    if (!Number.isSafeInteger(u.index) || u.index < 0) return { cls: 'chunk index out of range', detail: String(u.index) };
    if (u.size !== undefined && !(Number.isSafeInteger(u.size) && u.size > 0)) return { cls: 'chunk size out of range', detail: String(u.size) };
  }
  if (u.kind === 'attribute-request' && !(Array.isArray(u.keys) && u.keys.every((k) => typeof k === 'string'))) return { cls: 'attribute keys not strings' };
  if (u.kind === 'invalid' && typeof u.error !== 'string') return { cls: 'invalid without error text' };
  const bad = impurity(u, 'uplink');
  return bad ? { cls: 'impure uplink value', detail: bad } : null;
}

// ---------------------------------------------------------------------------------- fuzzers

const dialectUplink = {
  name: 'dialect.parseUplink',
  weight: 30,
  gen(rng) {
    const dialect = rng.pick(DIALECT_NAMES);
    return { dialect, ...uplink(rng, rng.chance(0.85) ? dialect : rng.pick(DIALECT_NAMES)), options: rng.int(OPTIONS.length) };
  },
  check(c) {
    let u;
    try {
      u = dialects.dialectFor(c.dialect).parseUplink(c.topic, c.payload, OPTIONS[c.options]);
    } catch (err) {
      return thrown(err);
    }
    return uplinkViolation(u, c.dialect);
  },
};

/** progress-parser's own path: dialect from the topic, no options, payload re-serialised, errors explained. */
const progressParserPath = {
  name: 'progress-parser uplink',
  weight: 15,
  gen(rng) {
    return uplink(rng, rng.pick(['thingsboard', 'tencent', 'tago', 'tasmota']));
  },
  check(c) {
    try {
      const name = detectDialect(c.topic);
      if (name === undefined) return null;
      if (!dialects.dialectFor(name)) return { cls: 'detected an unknown dialect', detail: name };
      const p = c.payload;
      const payload = Buffer.isBuffer(p) || typeof p === 'string' ? p : JSON.stringify(p ?? '');
      const u = dialects.dialectFor(name).parseUplink(c.topic, payload);
      const bad = uplinkViolation(u, name);
      if (bad || u.kind !== 'progress') return bad;
      for (const ev of u.events) {
        const out = { ...ev, device: ev.device || 'msg-device', ...(ev.error ? { error: explainError(ev.dialect, ev.error) } : {}) };
        const v = eventViolation(out, name);
        if (v) return { cls: `explained event invariant: ${v.replace(/ [^ ]*"[^"]*".*$/, '').replace(/\$\S*/g, '')}`, detail: v };
      }
      return null;
    } catch (err) {
      return thrown(err);
    }
  },
};

const EVENT_SEED = { device: 'd1', dialect: 'tencent', state: 'failed', percent: 50, version: '1.0.0', title: 'app', error: { code: '-4', message: '' }, at: '2026-11-29T00:00:00Z' };

/** toProgressEvent: event objects from flows (chunk-server's second output, users' own). */
const eventObjects = {
  name: 'toProgressEvent',
  weight: 8,
  gen(rng) {
    let v = g.clone(EVENT_SEED);
    if (rng.chance(0.5)) v = g.replaceLeaf(rng, v);
    for (let i = rng.range(0, 2); i > 0; i--) v = g.mutateValue(rng, v);
    return { value: v };
  },
  check(c) {
    const ctx = { dialectOf: (id) => (id === 'd1' ? 'tencent' : undefined), stateOf: () => 'downloading', now: () => new Date(0) };
    let ev;
    try {
      ev = toProgressEvent(c.value, ctx);
    } catch (err) {
      return thrown(err);
    }
    if (typeof ev === 'string') return null;
    const bad = eventViolation(ev);
    return bad ? { cls: `event invariant: ${bad.replace(/ [^ ]*"[^"]*".*$/, '').replace(/\$\S*/g, '')}`, detail: bad } : null;
  },
};

/** Checksums, versions, ranges and image descriptions: the small parsers around the firmware. */
const firmwareParsers = {
  name: 'checksum/version/range parsers',
  weight: 5,
  gen(rng) {
    const kind = rng.pick(['verify', 'agree', 'patch', 'decode', 'range', 'esp']);
    if (kind === 'verify') return { kind, data: rng.bytes(rng.range(0, 64)), alg: rng.pick(['sha256', 'CRC32', 'MURMUR3_128', 'md5', 'Sha512', 'constructor', '__proto__', '', 5]), checksum: g.value(rng) };
    if (kind === 'agree') return { kind, data: rng.chance(0.5) ? rng.bytes(rng.range(0, 40)) : Buffer.alloc(rng.range(0, 8)) };
    if (kind === 'patch') return { kind, version: rng.chance(0.5) ? `${rng.range(0, 3)}.${rng.range(0, 3)}.${rng.pick([0, 1, 127, 128, 255, 256, 2 ** 31, 2 ** 53])}` : g.string(rng), varint: rng.chance(0.5) };
    if (kind === 'decode') return { kind, payload: rng.chance(0.5) ? rng.bytes(rng.range(0, 8)) : encodePatch(rng.range(0, 2 ** 30), true), varint: rng.chance(0.5), value: rng.range(0, 2 ** 34) };
    if (kind === 'range') return { kind, header: rng.chance(0.7) ? `bytes=${rng.pick(['', rng.range(0, 2000), '-1', '1e3', '9'.repeat(30)])}-${rng.pick(['', rng.range(0, 2000), '0x10', '9'.repeat(30)])}` : g.string(rng), size: rng.pick([0, 1, 1000, 1024]) };
    const img = Buffer.alloc(rng.range(150, 260));
    img[0] = 0xe9;
    img.writeUInt32LE(0xabcd5432, 0x20);
    img.write(rng.pick(['1.0.0', '1.0.0\u0007', g.string(rng)]).slice(0, 32), 0x30, 'utf8');
    img.write(rng.pick(['app', 'bad\nname', '\u001b[2J', g.string(rng)]).slice(0, 32), 0x50, 'utf8');
    return { kind, image: rng.chance(0.7) ? img : g.mutateBytes(rng, img) };
  },
  check(c) {
    try {
      if (c.kind === 'verify') {
        const r = verifyChecksum(c.data, c.alg, c.checksum);
        return typeof r === 'boolean' ? null : { cls: 'verifyChecksum returned a non-boolean' };
      }
      if (c.kind === 'agree') {
        const ours = computeChecksums(c.data);
        for (const alg of Object.keys(ours)) {
          if (deviceChecksum(c.data, alg) !== ours[alg]) return { cls: `fw_checksum (${alg}) differs from what the ThingsBoard SDK computes`, detail: `${ours[alg]} vs ${deviceChecksum(c.data, alg)}` };
        }
        return null;
      }
      if (c.kind === 'patch') {
        let header;
        try {
          header = patchHeader(c.version, c.varint ? 'varint' : 'byte');
        } catch (err) {
          return err instanceof OtaError ? null : thrown(err);
        }
        const patch = semver.parse(c.version).patch;
        const read = decodePatch(header, c.varint, 'sming');
        if (!read || read.patch !== patch) return { cls: 'patch header reads back as another version on a Sming device', detail: `${patch} -> ${read && read.patch}` };
        return null;
      }
      if (c.kind === 'decode') {
        const r = decodePatch(c.payload, c.varint, 'strict');
        if (r && (r.offset > c.payload.length || r.offset < 1)) return { cls: 'decodePatch offset outside the payload' };
        const back = decodePatch(encodePatch(c.value, true), true, 'strict');
        if (c.value < 2 ** 35 && back && back.offset <= 5 && back.patch !== c.value) return { cls: 'strict varint does not round-trip', detail: `${c.value} -> ${back.patch}` };
        return null;
      }
      if (c.kind === 'range') {
        const r = parseRange(c.header, c.size);
        if (r === null || r === 'unsatisfiable') return null;
        if (!(Number.isSafeInteger(r.start) && Number.isSafeInteger(r.end) && r.start >= 0 && r.start <= r.end && r.end < c.size)) return { cls: 'range outside the image', detail: JSON.stringify(r) };
        return null;
      }
      const d = readEspAppDescription(c.image);
      if (d === null) return null;
      const bad = impurity(d, 'desc');
      return bad ? { cls: 'impure app description', detail: bad } : null;
    } catch (err) {
      return thrown(err);
    }
  },
};

// --------------------------------------------------------------------- stateful: repository

async function repository() {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'ota-fuzz-uplink-'));
  const repo = new OtaRepository({ dir, secret: 'f'.repeat(40), maxImageBytes: 1 << 20 });
  const image = Buffer.alloc(10000, 7);
  const { record } = await repo.firmware.store({ image, title: 'app', version: '1.0.0' });
  for (const id of ['d1', 'lamp', 'tg1']) {
    await repo.devices.register({ id, dialect: id === 'tg1' ? 'tago' : id === 'lamp' ? 'tencent' : 'thingsboard', attributes: id === 'lamp' ? { product: 'P1' } : {} });
    repo.rollout.assign(id, repo.devices.get(id).dialect, record);
  }
  return {
    repo,
    async close() {
      await repo.flush();
      fs.rmSync(dir, { recursive: true, force: true });
    },
  };
}

function chunkFuzzer(repo) {
  const service = new ChunkService(repo, deliveryFor(repo, (r) => repo.firmware.read(r)), { dialects: ['thingsboard', 'tago'], options: {} });
  return {
    name: 'chunk-service handle',
    weight: 6,
    async warm() {
      await service.handle('ota/d1/v2/fw/request/1/chunk/0', '100');
    },
    gen(rng) {
      const { topic, payload } = uplink(rng, rng.pick(['thingsboard', 'tago']));
      return { topic: topic.replace(/ota\/[^/]+\//, `ota/${rng.pick(['d1', 'tg1', 'ghost'])}/`), payload, device: rng.chance(0.2) ? rng.pick(['d1', 'tg1', '']) : undefined };
    },
    check(c) {
      try {
        const r = service.handle(c.topic, c.payload, c.device);
        if (r && typeof r.then === 'function') return null; // a cache miss (not expected: warmed)
        if (typeof r.handled !== 'boolean' || !Array.isArray(r.replies)) return { cls: 'malformed result' };
        for (const out of r.replies) {
          if (typeof out.topic !== 'string' || out.topic === '' || /[+#]/.test(out.topic)) return { cls: 'reply topic is not a topic name', detail: JSON.stringify(out.topic) };
          if (!(Buffer.isBuffer(out.payload) || typeof out.payload === 'string')) return { cls: 'reply payload not bytes' };
        }
        if (r.error && !(r.error instanceof OtaError)) return { cls: 'error not an OtaError' };
        if (r.progress) {
          const bad = eventViolation(r.progress);
          if (bad) return { cls: 'progress invariant', detail: bad };
        }
        return null;
      } catch (err) {
        return thrown(err);
      }
    },
  };
}

function recordFuzzer(repo) {
  const tracker = trackerFor(repo);
  const registered = new Set(['d1', 'lamp', 'tg1']);
  return {
    name: 'rollout records',
    weight: 4,
    gen(rng) {
      const c = uplink(rng, rng.pick(['thingsboard', 'tencent', 'tago', 'tasmota']));
      c.device = rng.pick(['d1', 'lamp', 'tg1', 'ghost-1', 'constructor']);
      return c;
    },
    check(c) {
      try {
        const name = detectDialect(c.topic);
        if (!name) return null;
        const u = dialects.dialectFor(name).parseUplink(c.topic, c.payload, { device: c.device });
        if (u.kind !== 'progress') return null;
        for (const ev of u.events) {
          const event = { ...ev, ...(ev.error ? { error: explainError(ev.dialect, ev.error) } : {}) };
          const existed = repo.rollout.get(event.device) !== undefined;
          tracker.record(event, 'uplink');
          const rec = repo.rollout.get(event.device);
          if (!registered.has(event.device)) {
            repo.rollout.forget(event.device);
            if (rec && !existed) return { cls: 'an uplink from an unregistered device created a rollout record', detail: `device ${JSON.stringify(event.device)}` };
          }
          const bad = rec && recordViolation(rec);
          if (bad) {
            repo.rollout.forget(event.device);
            return { cls: `record invariant: ${bad.replace(/ [^ ]*"[^"]*".*$/, '').replace(/\$\S*/g, '')}`, detail: bad };
          }
        }
        return null;
      } catch (err) {
        return thrown(err);
      }
    },
  };
}

/**
 * Runs `count` inputs spread over the fuzzers by weight.
 * @returns {Promise<{rows: Array<[string, number, number]>, inputs: number}>}
 */
async function run({ rng, counts = {}, quick, escapes }) {
  const count = counts.uplink ?? (quick ? 20_000 : 800_000);
  const store = await repository();
  const chunk = chunkFuzzer(store.repo);
  await chunk.warm();
  const fuzzers = [dialectUplink, progressParserPath, eventObjects, topicFilter, filterAlgebra, policy, firmwareParsers, chunk, recordFuzzer(store.repo)];
  const stats = new Map(fuzzers.map((f) => [f.name, { inputs: 0, escapes: 0, ns: 0n }]));
  const picks = fuzzers.map((f) => [f.weight, f]);
  try {
    for (let i = 0; i < count; i++) {
      const f = rng.weighted(picks);
      const c = f.gen(rng);
      const s = stats.get(f.name);
      s.inputs++;
      const t0 = process.hrtime.bigint();
      const bad = f.check(c);
      s.ns += process.hrtime.bigint() - t0;
      if (bad) {
        s.escapes++;
        escapes.add(`${f.name}: ${bad.cls}`, bad.detail, c, (cand) => {
          const again = f.check(cand);
          return again && typeof again.then !== 'function' ? { cls: `${f.name}: ${again.cls}`, detail: again.detail } : null;
        });
      }
      if ((i & 0x3fff) === 0) await new Promise((r) => setImmediate(r));
    }
  } finally {
    await store.close();
  }
  const ms = (f) => Math.round(Number(stats.get(f.name).ns) / 1e6);
  return {
    header: ['fuzzer', 'inputs', 'escapes', 'check ms'],
    rows: fuzzers.map((f) => [f.name, stats.get(f.name).inputs, stats.get(f.name).escapes, ms(f)]),
    inputs: count,
  };
}

module.exports = { run };
