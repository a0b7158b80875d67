'use strict';
// Structure-aware input generation: valid messages mutated the ways an attacker (or a broken
// device) would: wrong types, huge and odd numbers, prototype keys, control characters, long
// strings, deep nesting, invalid UTF-8, random bytes. Every function takes the run's Rng.

const PROTO_KEYS = ['__proto__', 'constructor', 'prototype', 'toString', 'valueOf', 'hasOwnProperty', '__defineGetter__', 'isPrototypeOf'];

const STRINGS = [
  '', ' ', '\n', '\r\n', '\t', '\u0000', '\u0007', '\u001b[31m', '\u007f', '\u2028', '\ufeff', '\ud800', '\udfff', '💥',
  '-1', '0', '1', '01', '1e3', '1e309', '-0', '0x10', '1.5', ' 7 ', '١٢', 'NaN', 'Infinity', 'null', 'true', 'undefined',
  '+', '#', '/', '//', '$', '$share/g/#', '$SYS/#', '+/#', '.', '..', '../../etc/passwd', '%00', '%2e%2e', '{device}', '${x}',
  'DOWNLOADING', 'downloading', 'Downloading', 'FAILED', 'UPDATED', 'done', 'fail', 'burning', 'updated', 'timed_out', 'idle', 'assigned',
  'firmware_request', 'firmware_version', 'firmware_status', 'report_progress', 'report_version', 'failed',
  ...PROTO_KEYS, 'CONSTRUCTOR', '__PROTO__', 'Constructor',
];

const NUMBERS = [0, -0, 1, -1, 2, 99, 100, 100.4, 100.5, 101, 0.5, 1e-7, -1e-7, 255, 256, 65535, 65536, 65537, 2 ** 31, 2 ** 32, 2 ** 53, 2 ** 53 + 2, -(2 ** 53), 1e21, 1e308, Number.MAX_VALUE, Number.MIN_VALUE, NaN, Infinity, -Infinity];

/** A string from the interesting pool, a random one, or a long one. */
function string(rng) {
  return rng.weighted([
    [6, () => rng.pick(STRINGS)],
    [3, () => randomText(rng, rng.range(0, 24))],
    [1, () => rng.pick(STRINGS).repeat(rng.range(2, 64))],
    [0.3, () => 'x'.repeat(rng.pick([1000, 65536, 300000]))],
  ])();
}

/** Random characters across ASCII, control characters, topic specials and beyond the BMP. */
function randomText(rng, n) {
  let s = '';
  for (let i = 0; i < n; i++) {
    s += rng.weighted([
      [6, () => String.fromCharCode(rng.range(0x20, 0x7e))],
      [2, () => rng.pick(['/', '+', '#', '$', '\u0000', '\n', ':', '.', '%'])],
      [1, () => String.fromCharCode(rng.range(0, 0x1f))],
      [1, () => String.fromCharCode(rng.range(0x80, 0xffff))],
      [0.3, () => String.fromCodePoint(rng.range(0x10000, 0x10ffff))],
    ])();
  }
  return s;
}

function number(rng) {
  return rng.weighted([
    [5, () => rng.pick(NUMBERS)],
    [2, () => rng.range(-5, 300)],
    [1, () => (rng.next() - 0.5) * 10 ** rng.range(0, 30)],
  ])();
}

/** Sets an own property, `__proto__` included (plain assignment would change the prototype). */
function setOwn(obj, key, value) {
  Object.defineProperty(obj, key, { value, enumerable: true, writable: true, configurable: true });
  return obj;
}

/** Any JSON-ish value, small. */
function value(rng, depth = 0) {
  const kinds = [
    [3, () => string(rng)],
    [3, () => number(rng)],
    [1, () => rng.chance(0.5)],
    [1, () => null],
    [0.5, () => undefined],
  ];
  if (depth < 3) {
    kinds.push([1, () => Array.from({ length: rng.range(0, 4) }, () => value(rng, depth + 1))]);
    kinds.push([1, () => {
      const o = {};
      for (let i = rng.range(0, 4); i > 0; i--) setOwn(o, rng.chance(0.3) ? rng.pick(PROTO_KEYS) : string(rng), value(rng, depth + 1));
      return o;
    }]);
  }
  return rng.weighted(kinds)();
}

/** Deep nesting: arrays or objects `depth` levels down. */
function deep(rng, depth) {
  let v = rng.chance(0.5) ? {} : 'x';
  for (let i = 0; i < depth; i++) v = rng.chance(0.5) ? [v] : { a: v };
  return v;
}

/** A copy of the top levels (deeper levels are shared: mutations only reach the top few). */
function clone(v, depth = 0) {
  if (depth > 8) return v;
  if (Array.isArray(v)) return v.map((x) => clone(x, depth + 1));
  if (v && typeof v === 'object' && !Buffer.isBuffer(v)) {
    const o = {};
    for (const k of Object.keys(v)) setOwn(o, k, clone(v[k], depth + 1));
    return o;
  }
  return v;
}

/** One structural mutation of a JSON-ish value (a copy; the seed is left alone). */
function mutateValue(rng, v, depth = 0) {
  if (depth > 6) return value(rng);
  const isObj = v && typeof v === 'object' && !Array.isArray(v);
  const ops = [
    [1, () => value(rng)],
    [0.3, () => deep(rng, rng.pick([10, 100, 1000, 3000]))],
  ];
  if (typeof v === 'string') {
    ops.push([3, () => mutateString(rng, v)]);
    ops.push([1, () => (rng.chance(0.5) ? Number(v) : [v])]);
  }
  if (typeof v === 'number') ops.push([3, () => number(rng)], [1, () => String(v)]);
  if (Array.isArray(v)) {
    ops.push([3, () => {
      const a = v.map(clone);
      if (a.length && rng.chance(0.7)) {
        const i = rng.int(a.length);
        a[i] = mutateValue(rng, a[i], depth + 1);
      } else a.push(value(rng));
      return a;
    }]);
    ops.push([1, () => v.slice(0, rng.int(v.length + 1)).map(clone)]);
  }
  if (isObj) {
    ops.push([6, () => {
      const o = clone(v);
      const keys = Object.keys(o);
      const op = rng.int(5);
      if (op === 0 && keys.length) delete o[rng.pick(keys)];
      else if (op === 1) setOwn(o, rng.chance(0.5) ? rng.pick(PROTO_KEYS) : string(rng), value(rng));
      else if (op === 2 && keys.length) {
        const k = rng.pick(keys);
        const val = o[k];
        delete o[k];
        setOwn(o, rng.pick(PROTO_KEYS), val);
      } else if (keys.length) {
        const k = rng.pick(keys);
        setOwn(o, k, mutateValue(rng, o[k], depth + 1));
      } else setOwn(o, string(rng), value(rng));
      return o;
    }]);
    ops.push([0.5, () => [clone(v), clone(v)]]);
  }
  return rng.weighted(ops)();
}

/**
 * A copy with one leaf (string, number, boolean, null) anywhere in it replaced by an interesting
 * value: where a parser looks a value up in a table (`STATES[state]`), a prototype key lands.
 */
function replaceLeaf(rng, v) {
  const leaves = [];
  const walk = (x, path, depth) => {
    if (depth > 8) return;
    if (x && typeof x === 'object' && !Buffer.isBuffer(x)) {
      for (const k of Object.keys(x)) walk(x[k], [...path, k], depth + 1);
      if (!Object.keys(x).length) leaves.push(path);
    } else leaves.push(path);
  };
  walk(v, [], 0);
  const target = rng.pick(leaves);
  const replacement = rng.weighted([[4, () => rng.pick(PROTO_KEYS)], [3, () => rng.pick(STRINGS)], [2, () => number(rng)], [1, () => value(rng)]])();
  if (!target || target.length === 0) return replacement;
  const copy = clone(v);
  let at = copy;
  for (const k of target.slice(0, -1)) at = at[k];
  if (at && typeof at === 'object') setOwn(at, target[target.length - 1], replacement);
  return copy;
}

function mutateString(rng, s) {
  const op = rng.int(7);
  const at = rng.int(s.length + 1);
  if (op === 0) return s.slice(0, at) + string(rng) + s.slice(at);
  if (op === 1) return s.slice(0, at) + s.slice(at + rng.range(1, 4));
  if (op === 2) return rng.pick(STRINGS);
  if (op === 3) return s.toUpperCase();
  if (op === 4) return ` ${s}\n`;
  if (op === 5) return s + s;
  return s.slice(0, at) + String.fromCharCode(rng.range(0, 0xffff)) + s.slice(at + 1);
}

/** A JSON text (or bytes) for a value: sometimes broken on purpose. */
function serialize(rng, v) {
  let text;
  try {
    text = JSON.stringify(v);
  } catch {
    text = String(v);
  }
  if (text === undefined) text = 'undefined';
  return rng.weighted([
    [5, () => text],
    [3, () => Buffer.from(text)],
    [1, () => v], // already parsed (mqtt in's auto-detect mode)
    [1, () => text.slice(0, rng.int(text.length + 1))],
    [1, () => mutateBytes(rng, Buffer.from(text))],
    [0.5, () => Buffer.concat([Buffer.from(text.slice(0, 4)), Buffer.from([rng.pick([0xc0, 0xff, 0xed, 0x80, 0xfe])]), Buffer.from(text.slice(4))])],
    [0.5, () => rng.bytes(rng.range(0, 64))],
    [0.3, () => rng.pick([null, undefined, 0, 12, true, [], Symbol.for('x')])],
  ])();
}

const INTERESTING_BYTES = [0x00, 0x01, 0x7f, 0x80, 0xff, 0xc0, 0xc1, 0xed, 0xf5, 0x0a, 0x2f, 0x2b, 0x23];

/** Byte-level mutations: flips, inserts, deletions, duplicated slices, truncation. */
function mutateBytes(rng, input, rounds = rng.range(1, 4)) {
  let b = Buffer.from(input);
  for (let r = 0; r < rounds; r++) {
    const at = rng.int(b.length + 1);
    const op = rng.int(7);
    if (op === 0 && b.length) b[at % b.length] ^= 1 << rng.int(8);
    else if (op === 1) b = Buffer.concat([b.subarray(0, at), Buffer.from([rng.pick(INTERESTING_BYTES)]), b.subarray(at)]);
    else if (op === 2) b = Buffer.concat([b.subarray(0, at), b.subarray(at + rng.range(1, 8))]);
    else if (op === 3 && b.length) {
      const from = rng.int(b.length);
      b = Buffer.concat([b.subarray(0, at), b.subarray(from, from + rng.range(1, 16)), b.subarray(at)]);
    } else if (op === 4) b = b.subarray(0, at);
    else if (op === 5 && b.length) b[at % b.length] = rng.pick(INTERESTING_BYTES);
    else b = Buffer.concat([b.subarray(0, at), rng.bytes(rng.range(1, 8)), b.subarray(at)]);
  }
  return b;
}

const TOPIC_LEVELS = ['+', '#', '', '$share', '$SYS', '$ota', 'ota', 'a', 'u', 'v1', 'v2', 'fw', 'me', 'biotz', 'tago', '..', '\n', '\u0000', ...PROTO_KEYS];

/** One mutation of a topic: a level replaced, added, removed, or characters changed. */
function mutateTopic(rng, topic, extraLevels = []) {
  const levels = topic.split('/');
  const pool = [...TOPIC_LEVELS, ...extraLevels];
  const op = rng.int(8);
  const at = rng.int(levels.length);
  if (op === 0) levels[at] = rng.pick(pool);
  else if (op === 1) levels.splice(at, 0, rng.pick(pool));
  else if (op === 2 && levels.length > 1) levels.splice(at, 1);
  else if (op === 3) levels.unshift(rng.pick(pool));
  else if (op === 4) levels.push(rng.pick(pool));
  else if (op === 5) levels[at] = mutateString(rng, levels[at]);
  else if (op === 6) return rng.pick(['$share/', '$share/g/', '$SYS/', '/', '+/', '#/']) + topic;
  else levels[at] = levels[at] + rng.pick(['\n', '\u0000', '+', '#', ' ', '\r']);
  return levels.join('/');
}

module.exports = { PROTO_KEYS, STRINGS, string, randomText, number, value, deep, clone, setOwn, mutateValue, replaceLeaf, mutateString, serialize, mutateBytes, mutateTopic };
