import { unknownField } from '../fields';
import { OtaError, isDialectName } from '../types';
import type { ErrorCondition, GroupSpec, Plan, Rate, SuccessCondition, Targets } from './model';

// Reads a rollout request (admin API body, msg.rollout) into a Plan and Targets. Everything is
// checked before anything is created; an unknown field is named, never dropped (a misspelt
// `maxConcurent` silently ignored would notify the whole fleet at once).

const MAX_GROUPS = 100;
const MAX_DEVICES = 100_000;

type Obj = Record<string, unknown>;

function bad(message: string, field: string): OtaError {
  return new OtaError('bad_field', message, field);
}

export function objectAt(value: unknown, field: string, allowed: readonly string[]): Obj {
  if (!value || typeof value !== 'object' || Array.isArray(value) || Buffer.isBuffer(value)) throw bad(`${field} must be an object`, field);
  const name = unknownField(value, allowed);
  if (name !== undefined) throw new OtaError('unknown_field', `unknown field ${JSON.stringify(name)} in ${field}: it has ${allowed.join(', ')}`, `${field}.${name}`);
  return value as Obj;
}

function num(value: unknown, field: string, opts: { min?: number; max?: number; integer?: boolean; above?: number } = {}): number | undefined {
  if (value === undefined || value === null) return undefined;
  if (typeof value !== 'number' || !Number.isFinite(value)) throw bad(`${field} must be a number`, field);
  if (opts.integer && !Number.isInteger(value)) throw bad(`${field} must be a whole number`, field);
  if (opts.min !== undefined && value < opts.min) throw bad(`${field} must be at least ${opts.min}`, field);
  if (opts.above !== undefined && value <= opts.above) throw bad(`${field} must be more than ${opts.above}`, field);
  if (opts.max !== undefined && value > opts.max) throw bad(`${field} must be at most ${opts.max}`, field);
  return value;
}

function time(value: unknown, field: string): number | undefined {
  if (value === undefined || value === null) return undefined;
  const t = typeof value === 'string' ? Date.parse(value) : NaN;
  if (Number.isNaN(t)) throw bad(`${field} must be an ISO date and time`, field);
  return t;
}

function success(value: unknown, field: string, base?: SuccessCondition): SuccessCondition {
  const o = value === undefined ? {} : objectAt(value, field, ['percent', 'action']);
  const action = o.action ?? base?.action ?? 'next';
  if (action !== 'next' && action !== 'pause') throw bad(`${field}.action is next or pause`, `${field}.action`);
  return { percent: num(o.percent, `${field}.percent`, { above: 0, max: 100 }) ?? base?.percent ?? 100, action };
}

function error(value: unknown, field: string, base?: ErrorCondition): ErrorCondition | undefined {
  if (value === undefined) return base;
  const o = objectAt(value, field, ['count', 'percent', 'minFinished', 'action']);
  const count = num(o.count, `${field}.count`, { min: 0, integer: true });
  const percent = num(o.percent, `${field}.percent`, { min: 0, max: 100 });
  const c: ErrorCondition = {
    ...(count !== undefined ? { count } : percent === undefined && base?.count !== undefined ? { count: base.count } : {}),
    ...(percent !== undefined ? { percent } : count === undefined && base?.percent !== undefined ? { percent: base.percent } : {}),
    minFinished: num(o.minFinished, `${field}.minFinished`, { min: 0, integer: true }) ?? base?.minFinished ?? 0,
    action: (o.action ?? base?.action ?? 'pause') as ErrorCondition['action'],
  };
  if (c.action !== 'pause' && c.action !== 'abort') throw bad(`${field}.action is pause or abort`, `${field}.action`);
  if (c.count === undefined && c.percent === undefined) throw bad(`${field} needs a count or a percent`, field);
  return c;
}

function rate(value: unknown): Rate | undefined {
  if (value === undefined || value === null) return undefined;
  const o = objectAt(value, 'rate', ['perMinute', 'ramp']);
  if ((o.perMinute === undefined) === (o.ramp === undefined)) throw bad('rate is {perMinute} or {ramp}', 'rate');
  if (o.perMinute !== undefined) return { perMinute: num(o.perMinute, 'rate.perMinute', { min: 1, integer: true }) as number };
  const r = objectAt(o.ramp, 'rate.ramp', ['base', 'factor', 'every', 'max']);
  const max = num(r.max, 'rate.ramp.max', { min: 1, integer: true });
  return {
    ramp: {
      base: num(r.base, 'rate.ramp.base', { min: 1, integer: true }) ?? badRequired('rate.ramp.base'),
      factor: num(r.factor, 'rate.ramp.factor', { min: 1, max: 5 }) ?? badRequired('rate.ramp.factor'),
      every: num(r.every, 'rate.ramp.every', { min: 1, integer: true }) ?? badRequired('rate.ramp.every'),
      ...(max !== undefined ? { max } : {}),
    },
  };
}

function badRequired(field: string): never {
  throw bad(`${field} is required`, field);
}

const PLAN_FIELDS = ['groups', 'success', 'error', 'rate', 'maxConcurrent', 'jitterMs', 'soakMs', 'revertOnAbort'] as const;
const GROUP_FIELDS = ['percent', 'count', 'startAt', 'success', 'error'] as const;

export function parsePlan(value: unknown): Plan {
  const o = objectAt(value ?? {}, 'plan', PLAN_FIELDS);
  const base = success(o.success, 'plan.success');
  const baseError = error(o.error, 'plan.error');
  let groups: GroupSpec[] | number;
  if (o.groups === undefined || typeof o.groups === 'number') {
    groups = num(o.groups, 'plan.groups', { min: 1, max: MAX_GROUPS, integer: true }) ?? 1;
  } else if (Array.isArray(o.groups) && o.groups.length >= 1 && o.groups.length <= MAX_GROUPS) {
    groups = o.groups.map((g, i) => {
      const field = `plan.groups[${i}]`;
      const spec = objectAt(g, field, GROUP_FIELDS);
      const percent = num(spec.percent, `${field}.percent`, { above: 0, max: 100 });
      const count = num(spec.count, `${field}.count`, { min: 1, integer: true });
      if (percent !== undefined && count !== undefined) throw bad(`${field} has a percent or a count, not both`, field);
      if (percent === undefined && count === undefined && i < (o.groups as unknown[]).length - 1) throw bad(`${field} needs a percent or a count (only the last group may take the rest)`, field);
      const at = time(spec.startAt, `${field}.startAt`);
      return {
        ...(percent !== undefined ? { percent } : {}),
        ...(count !== undefined ? { count } : {}),
        ...(at !== undefined ? { startAt: new Date(at).toISOString() } : {}),
        ...(spec.success !== undefined ? { success: success(spec.success, `${field}.success`, base) } : {}),
        ...(spec.error !== undefined ? { error: error(spec.error, `${field}.error`, baseError) } : {}),
      };
    });
  } else {
    throw bad(`plan.groups is a number of equal groups, or a list of 1 to ${MAX_GROUPS} {percent} or {count}`, 'plan.groups');
  }
  const maxConcurrent = num(o.maxConcurrent, 'plan.maxConcurrent', { min: 1, integer: true });
  const r = rate(o.rate);
  if (o.revertOnAbort !== undefined && typeof o.revertOnAbort !== 'boolean') throw bad('plan.revertOnAbort is true or false', 'plan.revertOnAbort');
  return {
    groups,
    success: base,
    ...(baseError ? { error: baseError } : {}),
    ...(r ? { rate: r } : {}),
    ...(maxConcurrent !== undefined ? { maxConcurrent } : {}),
    jitterMs: num(o.jitterMs, 'plan.jitterMs', { min: 0, max: 86_400_000 }) ?? 0,
    soakMs: num(o.soakMs, 'plan.soakMs', { min: 0, max: 7 * 86_400_000 }) ?? 0,
    revertOnAbort: o.revertOnAbort === true,
  };
}

export function parseTargets(value: unknown): Targets {
  const o = objectAt(value, 'targets', ['devices', 'tag', 'filter']);
  const out: Targets = {};
  if (o.devices !== undefined) {
    if (!Array.isArray(o.devices) || !o.devices.length || o.devices.length > MAX_DEVICES || !o.devices.every((d) => typeof d === 'string' && d.trim())) {
      throw bad(`targets.devices is a list of 1 to ${MAX_DEVICES} device ids`, 'targets.devices');
    }
    out.devices = [...new Set((o.devices as string[]).map((d) => d.trim()))];
  }
  if (o.tag !== undefined) {
    if (typeof o.tag !== 'string' || !o.tag.trim()) throw bad('targets.tag is a non-empty string', 'targets.tag');
    out.tag = o.tag.trim();
  }
  if (out.devices && out.tag) throw bad('targets has devices or a tag, not both', 'targets');
  if (o.filter !== undefined) {
    const f = objectAt(o.filter, 'targets.filter', ['dialect', 'attributes', 'version']);
    out.filter = {};
    if (f.dialect !== undefined) {
      if (!isDialectName(f.dialect)) throw bad('targets.filter.dialect is not a known dialect', 'targets.filter.dialect');
      out.filter.dialect = f.dialect;
    }
    if (f.attributes !== undefined) {
      const a = objectAt(f.attributes, 'targets.filter.attributes', Object.keys(f.attributes as object));
      if (!Object.values(a).every((v) => typeof v === 'string')) throw bad('targets.filter.attributes values are strings', 'targets.filter.attributes');
      out.filter.attributes = a as Record<string, string>;
    }
    if (f.version !== undefined) {
      if (typeof f.version !== 'string' || !f.version.trim()) throw bad('targets.filter.version is a version', 'targets.filter.version');
      out.filter.version = f.version.trim();
    }
  }
  if (!out.devices && !out.tag && !out.filter) throw bad('targets needs devices, a tag or a filter', 'targets');
  return out;
}

/**
 * Splits the targets (in the order given) into groups. A percent is of all targets, rounded up so
 * a canary group of 1 % of 50 devices still has one; a count is taken from those not yet in a
 * group; the last group takes the rest. Groups left empty are dropped.
 */
export function splitGroups(groups: Plan['groups'], total: number): Array<{ spec: GroupSpec; size: number }> {
  const specs: GroupSpec[] = typeof groups === 'number' ? Array.from({ length: groups }, () => ({})) : groups;
  const out: Array<{ spec: GroupSpec; size: number }> = [];
  let left = total;
  specs.forEach((spec, i) => {
    let size: number;
    if (i === specs.length - 1) size = left;
    else if (typeof groups === 'number') size = Math.ceil(left / (specs.length - i));
    else if (spec.count !== undefined) size = Math.min(left, spec.count);
    else size = Math.min(left, Math.ceil(((spec.percent ?? 100) * total) / 100));
    left -= size;
    if (size > 0) out.push({ spec, size });
  });
  return out;
}
