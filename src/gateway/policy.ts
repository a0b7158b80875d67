import { DeviceAttributes, DialectName, NAMESPACED_DIALECTS } from '../core/types';
import { Fences, fill, isForbiddenRoot, missingIn } from './fences';
import { contains, isFilter, isTopicName, matcher } from './topics';

// What a device may do with topics, and how its topics look upstream. Two kinds:
// - namespaced dialects (ThingsBoard, TagoIO) share topic names across devices, so every topic
//   moves into `{ns}/{deviceId}/`; inside it the device may do anything, outside it nothing.
// - per-device dialects (Biotz, Tencent, Sming, Tasmota) keep their real topics; ACL rules say which.

export { NAMESPACED_DIALECTS };

/**
 * One ACL rule; placeholders {device} {customer} {product} {app} come from the device record, or
 * from the gateway's defaults. A rule is never widened for a value neither has: the device is refused.
 */
export interface AclRule {
  pattern: string;
  subscribe: boolean;
  publish: boolean;
}

/**
 * Default rules. For publishes the first rule matching the topic decides, so the notice topics
 * (subscribe-only: a device may never publish its own update notice) come first.
 */
export const DEFAULT_ACL_RULES: Record<'biotz' | 'tencent' | 'sming' | 'tasmota', AclRule[]> = {
  biotz: [
    { pattern: 'biotz/1/0/{customer}/{device}/subscribe/firmware/update', subscribe: true, publish: false },
    { pattern: 'biotz/1/0/{customer}/{device}/#', subscribe: true, publish: true },
  ],
  tencent: [
    { pattern: '$ota/update/{product}/{device}', subscribe: true, publish: false },
    { pattern: '$ota/report/{product}/{device}', subscribe: true, publish: true },
    { pattern: '{product}/{device}/#', subscribe: true, publish: true },
  ],
  // Sming notices are shared by every device of an app: `a/{app}/u/{major}.{minor}`, with or
  // without the leading slash the seed example uses.
  sming: [
    { pattern: 'a/{app}/u/#', subscribe: true, publish: false },
    { pattern: '/a/{app}/u/#', subscribe: true, publish: false },
  ],
  // Tasmota (FullTopic %prefix%/%topic%/, docs/tasmota.md): commands come down on its own cmnd
  // topic, which it never publishes on (the server alone commands it); it answers on stat and
  // tele. Its group topic (cmnd/tasmotas/#) and fallback topic (cmnd/DVES_..._fb/#) are refused:
  // through them anyone could command a whole group.
  tasmota: [
    { pattern: 'cmnd/{device}/#', subscribe: true, publish: false },
    { pattern: 'stat/{device}/#', subscribe: false, publish: true },
    { pattern: 'tele/{device}/#', subscribe: false, publish: true },
  ],
};

export interface TopicPolicy {
  /** Upstream topic for a device's PUBLISH, or null when refused. */
  publish(topic: string): string | null;
  /** Upstream filter for a device's subscription, or null when refused. */
  subscribe(filter: string): string | null;
  /** Upstream filter for an UNSUBSCRIBE (never refused: it can only shrink the device's view). */
  unsubscribe(filter: string): string;
  /** Device topic for a message coming down, or null when it is not the device's. */
  down(topic: string): string | null;
  /** Bytes the rewrite adds to a topic (for maximumPacketSize). */
  readonly overhead: number;
}

export class NamespacePolicy implements TopicPolicy {
  readonly prefix: string;
  readonly overhead: number;
  constructor(ns: string, deviceId: string) {
    this.prefix = `${ns}/${deviceId}/`;
    this.overhead = Buffer.byteLength(this.prefix);
  }
  publish(topic: string): string | null {
    return isTopicName(topic) ? this.prefix + topic : null;
  }
  subscribe(filter: string): string | null {
    return isFilter(filter) ? this.prefix + filter : null;
  }
  unsubscribe(filter: string): string {
    return this.prefix + filter;
  }
  down(topic: string): string | null {
    return topic.startsWith(this.prefix) ? topic.slice(this.prefix.length) : null;
  }
}

/** A device whose ACL rules need an attribute that neither its record nor the gateway supplies. */
export class IncompleteIdentityError extends Error {
  constructor(
    readonly deviceId: string,
    readonly attribute: string,
  ) {
    super(`device ${deviceId} has no ${attribute} attribute and the gateway sets no default for it`);
    this.name = 'IncompleteIdentityError';
  }
}

export class AclPolicy implements TopicPolicy {
  readonly overhead = 0;
  /** Each rule with its pattern compiled: a device's every PUBLISH is tested against them. */
  private readonly rules: Array<AclRule & { test: (topic: string) => boolean }>;
  private readonly fences: Fences;
  /** `$` first levels the rules name literally (Tencent `$ota`): the only `$` topics a device reaches. */
  private readonly dollarRoots: Set<string>;
  /** @throws IncompleteIdentityError when a rule needs an attribute the device lacks. */
  constructor(rules: AclRule[], device: { deviceId: string; dialect: DialectName; attributes: DeviceAttributes }, namespace: string) {
    this.rules = rules.map((r) => {
      const missing = missingIn(r.pattern, device.deviceId, device.attributes);
      if (missing !== null) throw new IncompleteIdentityError(device.deviceId, missing);
      const pattern = fill(r.pattern, device.deviceId, device.attributes) as string;
      return { ...r, pattern, test: matcher(pattern) };
    });
    this.fences = new Fences(namespace, device.dialect, device.deviceId, device.attributes);
    this.dollarRoots = new Set(this.rules.map((r) => r.pattern.split('/', 1)[0]).filter((root) => root.startsWith('$') && !isForbiddenRoot(root)));
  }
  publish(topic: string): string | null {
    if (!isTopicName(topic) || !this.reachable(topic)) return null;
    const rule = this.rules.find((r) => r.test(topic));
    return rule?.publish && this.fences.mayPublish(topic) ? topic : null;
  }
  subscribe(filter: string): string | null {
    if (!isFilter(filter) || !this.reachable(filter)) return null;
    return this.rules.some((r) => r.subscribe && contains(r.pattern, filter)) && this.fences.maySubscribe(filter) ? filter : null;
  }
  unsubscribe(filter: string): string {
    return filter;
  }
  down(topic: string): string | null {
    return topic;
  }
  /** `$share/g/#` is `#` for the broker: a `$` first level only where a rule names it. */
  private reachable(topic: string): boolean {
    return !topic.startsWith('$') || this.dollarRoots.has(topic.split('/', 1)[0]);
  }
}

export interface PolicyOptions {
  namespace: string;
  aclRules?: Partial<Record<DialectName, AclRule[]>>;
  /** Attributes for devices whose record lacks them (a Tencent product, a Sming app set on the gateway). */
  attributes?: DeviceAttributes;
}

export function policyFor(
  device: { deviceId: string; dialect: DialectName; attributes?: DeviceAttributes },
  options: PolicyOptions,
): TopicPolicy {
  if (NAMESPACED_DIALECTS.includes(device.dialect) && !options.aclRules?.[device.dialect]) {
    return new NamespacePolicy(options.namespace, device.deviceId);
  }
  const rules = options.aclRules?.[device.dialect] ?? DEFAULT_ACL_RULES[device.dialect as keyof typeof DEFAULT_ACL_RULES] ?? [];
  const attributes = { ...options.attributes, ...definedOnly(device.attributes ?? {}) };
  return new AclPolicy(rules, { deviceId: device.deviceId, dialect: device.dialect, attributes }, options.namespace);
}

function definedOnly(attributes: DeviceAttributes): DeviceAttributes {
  return Object.fromEntries(Object.entries(attributes).filter(([, v]) => typeof v === 'string' && v !== ''));
}
