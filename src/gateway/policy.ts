import { DeviceAttributes, DialectName, NAMESPACED_DIALECTS } from '../core/types';
import { contains, isFilter, isTopicName, matches } from './topics';

// What a device may do with topics, and how its topics look upstream. Two kinds:
// - namespaced dialects (ThingsBoard, TagoIO) share topic names across devices, so every topic
//   moves into `{ns}/{deviceId}/`; inside it the device may do anything, outside it nothing.
// - per-device dialects (Biotz, Tencent, Sming) keep their real topics; ACL rules say which.

export { NAMESPACED_DIALECTS };

/** One ACL rule; placeholders {device} {customer} {product} {app} come from the device record. */
export interface AclRule {
  pattern: string;
  subscribe: boolean;
  publish: boolean;
}

/**
 * Default rules. For publishes the first rule matching the topic decides, so the notice topics
 * (subscribe-only: a device may never publish its own update notice) come first.
 */
export const DEFAULT_ACL_RULES: Record<'biotz' | 'tencent' | 'sming', AclRule[]> = {
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

export class AclPolicy implements TopicPolicy {
  readonly overhead = 0;
  private readonly rules: AclRule[];
  constructor(rules: AclRule[], deviceId: string, attributes: DeviceAttributes) {
    this.rules = rules.map((r) => ({ ...r, pattern: expand(r.pattern, deviceId, attributes) }));
  }
  publish(topic: string): string | null {
    if (!isTopicName(topic)) return null;
    const rule = this.rules.find((r) => matches(r.pattern, topic));
    return rule?.publish ? topic : null;
  }
  subscribe(filter: string): string | null {
    if (!isFilter(filter)) return null;
    return this.rules.some((r) => r.subscribe && contains(r.pattern, filter)) ? filter : null;
  }
  unsubscribe(filter: string): string {
    return filter;
  }
  down(topic: string): string | null {
    return topic;
  }
}

/** Fills placeholders; an attribute the device record lacks becomes `+` (any one level). */
function expand(pattern: string, deviceId: string, attributes: DeviceAttributes): string {
  return pattern.replace(/\{(\w+)\}/g, (_, key: string) => (key === 'device' ? deviceId : (attributes[key] ?? '+')));
}

export interface PolicyOptions {
  namespace: string;
  aclRules?: Partial<Record<DialectName, AclRule[]>>;
}

export function policyFor(
  device: { deviceId: string; dialect: DialectName; attributes?: DeviceAttributes },
  options: PolicyOptions,
): TopicPolicy {
  if (NAMESPACED_DIALECTS.includes(device.dialect) && !options.aclRules?.[device.dialect]) {
    return new NamespacePolicy(options.namespace, device.deviceId);
  }
  const rules = options.aclRules?.[device.dialect] ?? DEFAULT_ACL_RULES[device.dialect as keyof typeof DEFAULT_ACL_RULES] ?? [];
  return new AclPolicy(rules, device.deviceId, device.attributes ?? {});
}
