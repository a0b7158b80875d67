'use strict';
// A small seeded PRNG (sfc32, seeded through a string hash), so that a run is reproducible with
// --seed: the same seed and counts give the same inputs in the same order, per target.

/** 32-bit FNV-1a of a string, then spread by murmur's finaliser: four seeds from one text. */
function seedWords(text) {
  const out = [];
  for (let k = 0; k < 4; k++) {
    let h = 0x811c9dc5 ^ k;
    for (let i = 0; i < text.length; i++) {
      h ^= text.charCodeAt(i);
      h = Math.imul(h, 0x01000193);
    }
    h ^= h >>> 16;
    h = Math.imul(h, 0x85ebca6b);
    h ^= h >>> 13;
    h = Math.imul(h, 0xc2b2ae35);
    h ^= h >>> 16;
    out.push(h >>> 0);
  }
  return out;
}

class Rng {
  /** @param {string|number} seed */
  constructor(seed) {
    [this.a, this.b, this.c, this.d] = seedWords(String(seed));
    for (let i = 0; i < 12; i++) this.u32();
  }

  /** sfc32: 32 random bits. */
  u32() {
    const t = (((this.a + this.b) | 0) + this.d) | 0;
    this.d = (this.d + 1) | 0;
    this.a = this.b ^ (this.b >>> 9);
    this.b = (this.c + (this.c << 3)) | 0;
    this.c = (this.c << 21) | (this.c >>> 11);
    this.c = (this.c + t) | 0;
    return t >>> 0;
  }

  /** A float in [0, 1). */
  next() {
    return this.u32() / 4294967296;
  }

  /** An integer in [0, n). */
  int(n) {
    return Math.floor(this.next() * n);
  }

  /** An integer in [lo, hi]. */
  range(lo, hi) {
    return lo + this.int(hi - lo + 1);
  }

  chance(p) {
    return this.next() < p;
  }

  pick(list) {
    return list[this.int(list.length)];
  }

  /** Picks from [[weight, value], ...]. */
  weighted(pairs) {
    let total = 0;
    for (const [w] of pairs) total += w;
    let r = this.next() * total;
    for (const [w, v] of pairs) {
      if ((r -= w) < 0) return v;
    }
    return pairs[pairs.length - 1][1];
  }

  bytes(n) {
    const b = Buffer.allocUnsafe(n);
    for (let i = 0; i < n; i++) b[i] = this.u32() & 0xff;
    return b;
  }

  /** A child generator: its stream does not depend on how much of this one was used later. */
  fork(label) {
    return new Rng(`${this.u32()}:${label}`);
  }
}

module.exports = { Rng };
