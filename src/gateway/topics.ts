// MQTT topic-filter arithmetic the gateway's rewriting and ACLs rest on. Pure functions.

import { matcher, matches } from '../core/topic-filter';

export { matcher, matches };

/** True when some topic could match both filters (used to avoid double deliveries). */
export function intersects(a: string, b: string): boolean {
  const x = a.split('/');
  const y = b.split('/');
  for (let i = 0; i < Math.max(x.length, y.length); i++) {
    if (x[i] === '#' || y[i] === '#') return true;
    if (x[i] === undefined || y[i] === undefined) return false;
    if (x[i] !== '+' && y[i] !== '+' && x[i] !== y[i]) return false;
  }
  return true;
}

/**
 * True when every topic `inner` can match is also matched by `outer`: a device's subscription
 * `inner` stays inside what an ACL rule `outer` grants.
 */
export function contains(outer: string, inner: string): boolean {
  const o = outer.split('/');
  const i = inner.split('/');
  // MQTT 3.1.1 4.7.2: a leading wildcard never matches a `$` level (`$share`, `$SYS`, `$ota`).
  if ((o[0] === '+' || o[0] === '#') && i[0].startsWith('$')) return false;
  for (let k = 0; k < o.length; k++) {
    if (o[k] === '#') return true;
    if (k >= i.length) return false;
    if (i[k] === '#') return false;
    if (o[k] !== '+' && o[k] !== i[k]) return false;
  }
  return o.length === i.length;
}

/** A valid topic name for PUBLISH: non-empty, no wildcards, no NUL. */
export function isTopicName(topic: string): boolean {
  return topic.length > 0 && !/[+#]/.test(topic) && !topic.includes('\u0000');
}

/** A valid subscription filter: # only last and alone in its level, + alone in its level. */
export function isFilter(filter: string): boolean {
  if (filter.length === 0 || filter.includes('\u0000')) return false;
  const levels = filter.split('/');
  return levels.every((level, k) => {
    if (level.includes('#')) return level === '#' && k === levels.length - 1;
    if (level.includes('+')) return level === '+';
    return true;
  });
}

/**
 * The filter matching exactly the topics both filters match, or null when they share none
 * (`$`-topics kept apart from a leading wildcard, as in `matches`).
 */
export function meet(a: string, b: string): string | null {
  const x = a.split('/');
  const y = b.split('/');
  const wild = (level: string) => level === '+' || level === '#';
  if ((wild(x[0]) && y[0].startsWith('$')) || (wild(y[0]) && x[0].startsWith('$'))) return null;
  const out: string[] = [];
  for (let k = 0; ; k++) {
    if (x[k] === '#') return [...out, ...y.slice(k)].join('/');
    if (y[k] === '#') return [...out, ...x.slice(k)].join('/');
    if (x[k] === undefined || y[k] === undefined) return x[k] === y[k] ? out.join('/') : null;
    if (x[k] === '+') out.push(y[k]);
    else if (y[k] === '+' || x[k] === y[k]) out.push(x[k]);
    else return null;
  }
}
