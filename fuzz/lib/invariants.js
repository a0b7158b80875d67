'use strict';
// Invariants every parser result must keep, whatever came in.

const { PROGRESS_STATES, DIALECTS } = require('../../dist/core/types');

/**
 * The first value in `v` that is not plain data: a function, a prototype's member shown as text
 * ("function Object() { [native code] }"), or an object of some other class. Null when clean.
 */
function impurity(v, path = '$', depth = 0) {
  if (typeof v === 'function') return `${path} is a function`;
  if (typeof v === 'symbol' || typeof v === 'bigint') return `${path} is a ${typeof v}`;
  if (typeof v === 'string') return v.includes('[native code]') ? `${path} holds a prototype member as text: ${JSON.stringify(v.slice(0, 60))}` : null;
  if (v === null || typeof v !== 'object') return null;
  if (Buffer.isBuffer(v)) return null;
  if (depth > 64) return `${path} nests deeper than 64`;
  const proto = Object.getPrototypeOf(v);
  if (proto !== Object.prototype && proto !== Array.prototype && proto !== null) return `${path} has prototype ${proto && proto.constructor ? proto.constructor.name : String(proto)}`;
  for (const k of Object.keys(v)) {
    const bad = impurity(v[k], `${path}.${k}`, depth + 1);
    if (bad) return bad;
  }
  return null;
}

/** What is wrong with a progress event, or null. */
function eventViolation(ev, dialect) {
  if (!ev || typeof ev !== 'object') return 'event is not an object';
  if (!PROGRESS_STATES.includes(ev.state)) return `state ${typeof ev.state === 'function' ? 'is a function' : JSON.stringify(ev.state)} is not a progress state`;
  if (typeof ev.device !== 'string') return 'device is not a string';
  if (!DIALECTS.includes(ev.dialect) || (dialect && ev.dialect !== dialect)) return `dialect ${JSON.stringify(ev.dialect)}`;
  if (ev.percent !== undefined && !(typeof ev.percent === 'number' && ev.percent >= 0 && ev.percent <= 100)) return `percent ${ev.percent} outside 0-100`;
  if (ev.version !== undefined && (typeof ev.version !== 'string' || ev.version === '')) return 'version is not a non-empty string';
  if (ev.title !== undefined && typeof ev.title !== 'string') return 'title is not a string';
  if (ev.error !== undefined) {
    if (!ev.error || typeof ev.error !== 'object') return 'error is not an object';
    if (typeof ev.error.message !== 'string') return `error.message is ${typeof ev.error.message}`;
    if (typeof ev.error.code !== 'string' && typeof ev.error.code !== 'number') return `error.code is ${typeof ev.error.code}`;
  }
  if (typeof ev.at !== 'string' || Number.isNaN(Date.parse(ev.at))) return 'at is not a date';
  return impurity(ev, 'event');
}

/** What is wrong with a rollout record, or null. */
function recordViolation(r) {
  if (!r || typeof r !== 'object') return 'record is not an object';
  if (r.state !== 'idle' && !PROGRESS_STATES.includes(r.state)) return `record state ${typeof r.state === 'function' ? 'is a function' : JSON.stringify(r.state)}`;
  if (r.percent !== undefined && !(typeof r.percent === 'number' && r.percent >= 0 && r.percent <= 100)) return `record percent ${r.percent}`;
  if (r.lastError !== undefined && typeof r.lastError.message !== 'string') return `record lastError.message is ${typeof r.lastError.message}`;
  return impurity(r, 'record');
}

module.exports = { impurity, eventViolation, recordViolation };
