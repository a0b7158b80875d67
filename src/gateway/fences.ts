import { DeviceAttributes, DialectName } from '../core/types';
import { contains, matcher, meet } from './topics';

// Topic spaces that belong to one device (or one Sming app), whatever ACL rules say: a device's
// rules may be customised, or two identities may spell overlapping topics (a Tencent device of
// product `a` named `demo` owns `a/demo/#`, which holds the Sming notices of app `demo`). So on top
// of its rules, a device reaches into a fenced space only where the space is its own, and nobody
// publishes on a notice topic, its own included (Biotz rule: the server alone sends notices).

interface FenceSpec {
  dialect: DialectName;
  pattern: string;
  /** A notice topic: subscribe-only for its owner, closed to everyone else. */
  notice: boolean;
}

const FENCES: FenceSpec[] = [
  { dialect: 'biotz', pattern: 'biotz/1/0/{customer}/{device}/subscribe/firmware/update', notice: true },
  { dialect: 'biotz', pattern: 'biotz/1/0/{customer}/{device}/#', notice: false },
  { dialect: 'tencent', pattern: '$ota/update/{product}/{device}', notice: true },
  { dialect: 'tencent', pattern: '$ota/report/{product}/{device}', notice: false },
  // Sming notices are shared by every device of an app, with or without the seed's leading slash.
  { dialect: 'sming', pattern: 'a/{app}/u/#', notice: true },
  { dialect: 'sming', pattern: '/a/{app}/u/#', notice: true },
  // Tasmota: commands are its notices; what it says on stat and tele is its own.
  { dialect: 'tasmota', pattern: 'cmnd/{device}/#', notice: true },
  { dialect: 'tasmota', pattern: 'stat/{device}/#', notice: false },
  { dialect: 'tasmota', pattern: 'tele/{device}/#', notice: false },
];

/**
 * `$` first levels no device is ever granted, whatever the rules: shared and exclusive
 * subscriptions read other clients' topics (`$share/g/#` is `#`), `$SYS` is the broker's, and
 * EMQX's `$delayed/{s}/{topic}` publishes to any topic later.
 */
const FORBIDDEN_ROOTS = new Set(['$share', '$queue', '$exclusive', '$delayed', '$sys']);

export function isForbiddenRoot(topic: string): boolean {
  return FORBIDDEN_ROOTS.has(topic.split('/', 1)[0].toLowerCase());
}

interface Fence {
  /** Every device's space: placeholders as `+`. */
  all: string;
  /** This device's own part of it, or null when it has none. */
  own: string | null;
  notice: boolean;
  /** `all` and `own` compiled (matcher()): every PUBLISH of a device is tested against each fence. */
  inAll: (topic: string) => boolean;
  inOwn: ((topic: string) => boolean) | null;
}

const PLACEHOLDER = /\{(\w+)\}/g;

function valueOf(key: string, deviceId: string, attributes: DeviceAttributes): string | undefined {
  return (key === 'device' ? deviceId : Object.hasOwn(attributes, key) ? attributes[key] : undefined) || undefined;
}

/** The first placeholder of `pattern` with no value, or null when it has them all. */
export function missingIn(pattern: string, deviceId: string, attributes: DeviceAttributes): string | null {
  for (const [, key] of pattern.matchAll(PLACEHOLDER)) if (!valueOf(key, deviceId, attributes)) return key;
  return null;
}

/** Fills placeholders, or null when one has no value (never a wildcard in its place). */
export function fill(pattern: string, deviceId: string, attributes: DeviceAttributes): string | null {
  if (missingIn(pattern, deviceId, attributes) !== null) return null;
  return pattern.replace(PLACEHOLDER, (_, key: string) => valueOf(key, deviceId, attributes) as string);
}

export class Fences {
  private readonly fences: Fence[];
  /**
   * @param namespace ThingsBoard/TagoIO namespaces live under `{namespace}/`: a device with ACL
   *   rules never reaches in there.
   */
  constructor(namespace: string, dialect: DialectName, deviceId: string, attributes: DeviceAttributes) {
    const fence = (all: string, own: string | null, notice: boolean): Fence => ({ all, own, notice, inAll: matcher(all), inOwn: own === null ? null : matcher(own) });
    this.fences = FENCES.map((f) => fence(f.pattern.replace(/\{\w+\}/g, '+'), f.dialect === dialect ? fill(f.pattern, deviceId, attributes) : null, f.notice));
    this.fences.push(fence(`${namespace}/#`, null, false));
  }

  /** True when every topic `filter` matches inside a fenced space is this device's. */
  maySubscribe(filter: string): boolean {
    return this.fences.every((f) => {
      const common = meet(filter, f.all);
      return common === null || (f.own !== null && contains(f.own, common));
    });
  }

  /** True when `topic` is outside every fenced space, or in this device's own and not a notice. */
  mayPublish(topic: string): boolean {
    return this.fences.every((f) => !f.inAll(topic) || (!f.notice && f.inOwn !== null && f.inOwn(topic)));
  }
}
