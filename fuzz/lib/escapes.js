'use strict';
// Escapes, counted per class and kept with one reproducer each: the first input found, shrunk
// (greedily: keys, elements, characters removed while the same class still fails) so that the
// printout is the smallest input that shows the problem.

const MAX_SHRINK_STEPS = 400;

/** JavaScript-ish text for a reproducer: Buffers as hex, strings JSON-escaped, long text cut. */
function show(v, budget = 2000) {
  const text = render(v);
  return text.length > budget ? `${text.slice(0, budget)}… (${text.length} chars)` : text;
}

function render(v) {
  if (v === undefined) return 'undefined';
  if (typeof v === 'symbol') return v.toString();
  if (typeof v === 'number') return Object.is(v, -0) ? '-0' : String(v);
  if (typeof v === 'bigint') return `${v}n`;
  if (typeof v === 'function') return '[function]';
  if (Buffer.isBuffer(v)) return `Buffer.from('${v.toString('hex')}', 'hex')`;
  if (typeof v === 'string') return JSON.stringify(v.length > 1500 ? v.slice(0, 40) + `…(${v.length} chars)` : v);
  if (Array.isArray(v)) return `[${v.map(render).join(', ')}]`;
  if (v && typeof v === 'object') return `{${Object.keys(v).map((k) => `${JSON.stringify(k)}: ${render(v[k])}`).join(', ')}}`;
  return String(v);
}

/** Smaller variants of a value, most aggressive first. */
/** The value a JSON text holds, when it holds an object or a list; undefined otherwise. */
function parsedJson(text) {
  if (!/^\s*[[{]/.test(text)) return undefined;
  try {
    const value = JSON.parse(text);
    return value && typeof value === 'object' ? value : undefined;
  } catch {
    return undefined;
  }
}

function* smaller(v, top = false) {
  // A JSON payload shrinks as the value it holds (a character cut would only break the JSON).
  const json = typeof v === 'string' ? parsedJson(v) : Buffer.isBuffer(v) && v.length < 65536 ? parsedJson(v.toString('utf8')) : undefined;
  if (json !== undefined) {
    for (const s of smaller(json)) yield typeof v === 'string' ? JSON.stringify(s) : Buffer.from(JSON.stringify(s));
  }
  if (typeof v === 'string') {
    if (v.length > 1) {
      yield v.slice(0, v.length >> 1);
      yield v.slice(v.length >> 1);
      const step = Math.max(1, v.length >> 3);
      for (let i = 0; i < v.length; i += step) yield v.slice(0, i) + v.slice(i + step);
    }
    return;
  }
  if (Buffer.isBuffer(v)) {
    if (v.length > 1) {
      yield v.subarray(0, v.length >> 1);
      yield v.subarray(v.length >> 1);
      const step = Math.max(1, v.length >> 3);
      for (let i = 0; i < v.length; i += step) yield Buffer.concat([v.subarray(0, i), v.subarray(i + step)]);
    }
    return;
  }
  if (Array.isArray(v)) {
    for (let i = 0; i < v.length; i++) yield [...v.slice(0, i), ...v.slice(i + 1)];
    for (let i = 0; i < v.length; i++) for (const s of smaller(v[i])) yield [...v.slice(0, i), s, ...v.slice(i + 1)];
    return;
  }
  if (v && typeof v === 'object') {
    const keys = Object.keys(v);
    const copy = (skip, key, value) => {
      const o = {};
      for (const k of keys) if (k !== skip) Object.defineProperty(o, k, { value: k === key ? value : v[k], enumerable: true, writable: true, configurable: true });
      return o;
    };
    // The top level holds the arguments of the call: shrink their values, keep them all.
    if (!top) for (const k of keys) yield copy(k);
    for (const k of keys) for (const s of smaller(v[k])) yield copy(undefined, k, s);
  }
}

/** Greedy shrink: keeps the first smaller variant that still fails with the same class. */
function shrink(input, sameClass) {
  let best = input;
  let steps = 0;
  let improved = true;
  while (improved && steps < MAX_SHRINK_STEPS) {
    improved = false;
    for (const candidate of smaller(best, true)) {
      if (++steps > MAX_SHRINK_STEPS) break;
      let fails;
      try {
        fails = sameClass(candidate);
      } catch {
        fails = false;
      }
      if (fails) {
        best = candidate;
        improved = true;
        break;
      }
    }
  }
  return best;
}

class EscapeLog {
  constructor(target) {
    this.target = target;
    /** class -> {count, detail, reproducer} */
    this.classes = new Map();
  }

  get total() {
    let n = 0;
    for (const c of this.classes.values()) n += c.count;
    return n;
  }

  /**
   * Records one escape. `input` is what reproduces it (shown after shrinking, on first sight),
   * `recheck(candidate)` returns {cls, detail} for a candidate input that fails (or null).
   */
  add(cls, detail, input, recheck) {
    let c = this.classes.get(cls);
    if (!c) {
      let small = input;
      if (recheck) {
        small = shrink(input, (candidate) => recheck(candidate)?.cls === cls);
        detail = recheck(small)?.detail ?? detail;
      }
      const text = detail === undefined ? '' : String(detail);
      c = { count: 0, detail: text.length > 300 ? `${text.slice(0, 300)}…` : text, reproducer: show(small) };
      this.classes.set(cls, c);
    } else if (!recheck && c.count < 1000) {
      // Not shrinkable here (async or remote): keep the shortest input seen instead.
      const shown = show(input);
      if (shown.length < c.reproducer.length) {
        const text = detail === undefined ? '' : String(detail);
        c.reproducer = shown;
        c.detail = text.length > 300 ? `${text.slice(0, 300)}…` : text;
      }
    }
    c.count++;
  }

  /** Lines describing each class, for the report. */
  lines() {
    const out = [];
    for (const [cls, c] of this.classes) {
      out.push(`  ESCAPE x${c.count} ${cls}`);
      if (c.detail) out.push(`    what: ${c.detail}`);
      out.push(`    reproducer: ${c.reproducer}`);
    }
    return out;
  }
}

module.exports = { EscapeLog, show, shrink };
