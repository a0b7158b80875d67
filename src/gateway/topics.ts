// MQTT topic-filter arithmetic the gateway's rewriting and ACLs rest on. Pure functions.

/** True when `filter` (may hold + and #) matches the concrete `topic`. */
export function matches(filter: string, topic: string): boolean {
  const f = filter.split('/');
  const t = topic.split('/');
  // A filter starting with a wildcard never matches a $-topic (MQTT 3.1.1 4.7.2).
  if ((f[0] === '+' || f[0] === '#') && topic.startsWith('$')) return false;
  for (let i = 0; i < f.length; i++) {
    if (f[i] === '#') return true;
    if (i >= t.length) return false;
    if (f[i] !== '+' && f[i] !== t[i]) return false;
  }
  return f.length === t.length;
}

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
