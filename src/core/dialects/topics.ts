import { DeviceRecord, DialectName, FirmwareRecord, NAMESPACED_DIALECTS, OtaError } from '../types';
import type { DialectOptions, TopicTemplates } from './dialect';
import { escapeRegExp } from '../topic-filter';
import { own } from '../own';

// Topic templates: `{name}` placeholders, filled for downlinks, matched for uplinks. A template
// compiles once into a regular expression with named groups; uplinks then cost one regex match.

const PLACEHOLDER = /\{([A-Za-z]+)\}/g;
const MAX_COMPILED = 256;
// Compiled regexes per template, exact and with any levels in front; filled templates as parts.
// Keyed by the template itself: no key is built per message.
const compiledExact = new Map<string, CompiledTemplate>();
const compiledAnyPrefix = new Map<string, CompiledTemplate>();
const fillParts = new Map<string, string[]>();

/** Adds to a bounded cache: templates come from node settings, so a full cache means churn. */
function remember<V>(cache: Map<string, V>, key: string, value: V): V {
  if (cache.size >= MAX_COMPILED) cache.clear();
  cache.set(key, value);
  return value;
}

// Templates per (options, dialect), so that the chunk hot path does not rebuild them per request.
// Options objects are built once per node and never mutated.
const resolved = new WeakMap<object, Map<TopicTemplates, TopicTemplates>>();
const NO_OPTIONS = {};

/**
 * The dialect's templates with the node's overrides and namespace prefix applied. The prefix
 * (the gateway's `{ns}/{device}/`) applies to namespaced dialects only, so one node can serve
 * every dialect: Tencent, Biotz and Sming topics stay as their devices know them.
 */
export function templatesOf(dialect: DialectName, defaults: TopicTemplates, options: DialectOptions | undefined): TopicTemplates {
  if (options?.prefix && !NAMESPACED_DIALECTS.includes(dialect)) options = perDeviceOptions(options);
  const key = options ?? NO_OPTIONS;
  let perDialect = resolved.get(key);
  if (!perDialect) resolved.set(key, (perDialect = new Map()));
  let out = perDialect.get(defaults);
  if (!out) perDialect.set(defaults, (out = buildTemplates(defaults, options)));
  return out;
}

// The prefix-less copy of an options object, made once per options object (the caches key on it).
const withoutPrefix = new WeakMap<DialectOptions, DialectOptions>();
function perDeviceOptions(options: DialectOptions): DialectOptions {
  let copy = withoutPrefix.get(options);
  if (!copy) {
    copy = { ...options };
    delete copy.prefix;
    withoutPrefix.set(options, copy);
  }
  return copy;
}

function buildTemplates(defaults: TopicTemplates, options: DialectOptions | undefined): TopicTemplates {
  const prefix = options?.prefix ?? '';
  const out: TopicTemplates = {};
  for (const [key, value] of Object.entries(defaults)) {
    const given = options?.topics?.[key];
    out[key] = prefix + (typeof given === 'string' && given.trim() !== '' ? given.trim() : value);
  }
  return out;
}

/** A template's regex, with the placeholder name of each capture group in order. */
export interface CompiledTemplate {
  re: RegExp;
  names: string[];
}

/**
 * A regex for a template; each placeholder matches one topic level (or part of one, never a '/').
 * `anyPrefix` also accepts whole levels in front, the last of them captured as `ns`: a node with no
 * namespace configured still reads `{ns}/{device}/v1/devices/me/...` (the gateway's form).
 * Plain numbered groups, not named ones: reading named groups costs several times more per
 * message, and chunk requests are parsed thousands of times a second.
 */
export function compile(template: string, anyPrefix = false): CompiledTemplate {
  const cache = anyPrefix ? compiledAnyPrefix : compiledExact;
  const hit = cache.get(template);
  if (hit) return hit;
  let source = anyPrefix ? '^(?:(?:[^/]+/)*?([^/#+]+)/)?' : '^';
  const names = anyPrefix ? ['ns'] : [];
  let last = 0;
  for (const m of template.matchAll(PLACEHOLDER)) {
    source += escapeRegExp(template.slice(last, m.index));
    const name = m[1];
    // A placeholder used twice must match the same text both times.
    const first = names.indexOf(name);
    if (first >= 0) source += `\\${first + 1}`;
    else {
      source += '([^/#+]+)';
      names.push(name);
    }
    last = (m.index ?? 0) + m[0].length;
  }
  source += escapeRegExp(template.slice(last)) + '$';
  return remember(cache, template, { re: new RegExp(source), names });
}

/**
 * The named parts of a topic matching a template, or undefined. With a namespace configured the
 * topic must match exactly; without one, levels in front are accepted and the last of them is
 * taken as the device (the gateway's `{ns}/{device}/` form) unless the template names the device.
 */
export function match(template: string, topic: string, options?: DialectOptions): Record<string, string> | undefined {
  const { re, names } = compile(template, !options?.prefix);
  const m = re.exec(topic);
  if (!m) return undefined;
  const groups: Record<string, string> = {};
  let ns: string | undefined;
  for (let i = 0; i < names.length; i++) {
    const value = m[i + 1];
    if (value === undefined) continue;
    if (names[i] === 'ns') ns = value;
    else groups[names[i]] = value;
  }
  if (groups.device === undefined && ns !== undefined) groups.device = ns;
  return groups;
}

/** The MQTT subscription filter for a template: every level holding a placeholder becomes '+'. */
export function filterOf(template: string): string {
  return template
    .split('/')
    .map((level) => (/\{[A-Za-z]+\}/.test(level) ? '+' : level))
    .join('/');
}

/** Fills a template; a placeholder with no value is an error naming what is missing. */
export function fill(template: string, vars: Record<string, string | number | undefined>, what: string): string {
  // parts alternate text and placeholder name: [text, name, text, ..., text].
  const parts = fillParts.get(template) ?? remember(fillParts, template, template.split(PLACEHOLDER));
  let out = parts[0];
  for (let i = 1; i < parts.length; i += 2) {
    const name = parts[i];
    const value = own(vars, name); // a template's {constructor} is a missing value, not Object's
    if (value === undefined || value === '') {
      throw new OtaError('missing_attribute', `${what}: the topic ${template} needs {${name}}; give the device the attribute "${name}" or set it on the node`, name);
    }
    out += String(value) + parts[i + 1];
  }
  return out;
}

/** The values a device's topics may use: its id, its attributes (or the node's), the firmware's major.minor. */
export function varsOf(device: DeviceRecord, options: DialectOptions | undefined, firmware?: Pick<FirmwareRecord, 'version'>): Record<string, string | undefined> {
  const vars: Record<string, string | undefined> = { ...(options?.attributes ?? {}) };
  for (const [k, v] of Object.entries(device.attributes ?? {})) if (v) vars[k] = v;
  vars.device = device.id;
  if (firmware) {
    const [major, minor] = firmware.version.split('.');
    vars.major = major;
    vars.minor = minor;
  }
  return vars;
}

/** Payload of an uplink as text, or undefined when it is already parsed (mqtt in auto-detect). */
export function text(payload: unknown): string | undefined {
  if (Buffer.isBuffer(payload)) return payload.toString('utf8');
  if (typeof payload === 'string') return payload;
  return undefined;
}

/** Parses a JSON uplink; already-parsed objects pass through. Never throws. */
export function json(payload: unknown): { ok: true; value: unknown } | { ok: false; error: string } {
  const t = text(payload);
  if (t === undefined) {
    if (payload !== null && typeof payload === 'object') return { ok: true, value: payload };
    return { ok: false, error: `payload is ${payload === null ? 'null' : typeof payload}, not JSON` };
  }
  try {
    return { ok: true, value: JSON.parse(t) };
  } catch (err) {
    return { ok: false, error: `malformed JSON: ${(err as Error).message}` };
  }
}

export function isObject(value: unknown): value is Record<string, unknown> {
  return value !== null && typeof value === 'object' && !Array.isArray(value);
}

/** A non-negative integer written in decimal digits only (no sign, no exponent, no blanks). */
export function index(value: unknown): number | undefined {
  if (typeof value === 'number') return Number.isSafeInteger(value) && value >= 0 ? value : undefined;
  if (typeof value === 'string' && /^\d{1,15}$/.test(value)) return Number(value);
  return undefined;
}

export function now(): string {
  return new Date().toISOString();
}
