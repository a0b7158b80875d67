// Device-chosen strings (client ids, topics, usernames) reach logs, events and the debug sidebar:
// a device must not be able to fill a disk (refused long client ids once wrote 114 MiB in 5 s) or
// forge log lines. Each is escaped and cut short, and each kind of line is rate-limited.

const DEFAULT_MAX_CHARS = 96;
// C0 and C1 controls, DEL, and the line and paragraph separators some viewers break lines on.
// eslint-disable-next-line no-control-regex
const UNPRINTABLE = /[\u0000-\u001f\u007f-\u009f\u2028\u2029]/g;

/** `value` with control characters escaped (`\u000a`), cut to `max` characters with a note of what is left out. */
export function printable(value: unknown, max = DEFAULT_MAX_CHARS): string {
  const text = typeof value === 'string' ? value : String(value ?? '');
  const head = text.length > max ? text.slice(0, max) : text;
  const escaped = head.replace(UNPRINTABLE, (c) => `\\u${c.charCodeAt(0).toString(16).padStart(4, '0')}`);
  return text.length > max ? `${escaped}…(+${text.length - max})` : escaped;
}

/**
 * At most `perWindow` lines of each kind per window. `allow` answers how many lines of that kind
 * were dropped since the last one let through (so it can say so), or false to drop this one.
 * Kinds are few and fixed by the caller; keys within a kind (one per device or client id) are
 * kept in a map of bounded size.
 */
export class LogLimiter {
  private readonly kinds = new Map<string, { since: number; count: number; dropped: number }>();
  private readonly recent = new Map<string, number>();

  constructor(
    private readonly perWindow = 20,
    private readonly windowMs = 10_000,
    private readonly maxKeys = 1000,
  ) {}

  allow(kind: string, now = Date.now()): number | false {
    let k = this.kinds.get(kind);
    if (!k) {
      k = { since: now, count: 0, dropped: 0 };
      this.kinds.set(kind, k);
    }
    if (now - k.since >= this.windowMs) {
      k.since = now;
      k.count = 0;
    }
    if (k.count >= this.perWindow) {
      k.dropped++;
      return false;
    }
    k.count++;
    const dropped = k.dropped;
    k.dropped = 0;
    return dropped;
  }

  /** True at most once per `everyMs` for one key (a device retrying a wrong token), within the kind's rate. */
  once(kind: string, key: string, everyMs: number, now = Date.now()): number | false {
    const full = `${kind}\u0000${key}`;
    if ((this.recent.get(full) ?? -Infinity) > now - everyMs) return false;
    // Oldest first: Map keeps insertion order, so the first key is the one to forget.
    if (this.recent.size >= this.maxKeys) this.recent.delete(this.recent.keys().next().value as string);
    this.recent.delete(full);
    this.recent.set(full, now);
    return this.allow(kind, now);
  }
}

/** ` (N more like it not shown)` when lines were dropped, else ''. */
export function droppedNote(dropped: number): string {
  return dropped > 0 ? ` (${dropped} more like it not shown)` : '';
}
