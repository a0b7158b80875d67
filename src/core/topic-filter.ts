// MQTT topic-filter matching, shared by the gateway (ACLs) and the rollout tracker (which
// subscription of a device reaches its notice topic). Pure.

/** `text` as a literal inside a regular expression. */
export function escapeRegExp(text: string): string {
  return text.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');
}

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

/**
 * One regular expression that tests a topic against several filters, with the meaning of
 * `matches` (for a per-message check: no split per filter and topic).
 */
export function filterRegExp(filters: string[]): RegExp {
  const alternatives = filters.map((filter) => {
    const levels = filter.split('/');
    let source = levels[0] === '+' || levels[0] === '#' ? '(?!\\$)' : '';
    levels.forEach((level, i) => {
      const sep = i === 0 ? '' : '/';
      if (level === '#') source += i === 0 ? '.*' : `(?:/.*)?`;
      else source += sep + (level === '+' ? '[^/]*' : escapeRegExp(level));
    });
    return source;
  });
  // dotAll: a topic level may hold any character but '/', line breaks included (\n, \r, \u2028),
  // so `.` must match those too or `#` would stop at a newline where matches() does not.
  return new RegExp(`^(?:${alternatives.join('|')})$`, 's');
}

/**
 * `matches(filter, ·)` compiled once: for a filter tested against many topics (an ACL rule or a
 * fence against every PUBLISH of a device), one regular expression instead of two splits a topic.
 */
export function matcher(filter: string): (topic: string) => boolean {
  const re = filterRegExp([filter]);
  return (topic) => re.test(topic);
}
