'use strict';

function median(xs) {
  const v = xs.filter((x) => Number.isFinite(x)).sort((a, b) => a - b);
  if (!v.length) return NaN;
  const m = v.length >> 1;
  return v.length % 2 ? v[m] : (v[m - 1] + v[m]) / 2;
}

/** The p-th percentile (0..100) of a sample, nearest rank. */
function percentile(xs, p) {
  if (!xs.length) return NaN;
  const v = Float64Array.from(xs).sort();
  return v[Math.min(v.length - 1, Math.max(0, Math.ceil((p / 100) * v.length) - 1))];
}

/** Rounds to `digits` significant figures (for printing). */
function sig(x, digits = 3) {
  if (!Number.isFinite(x) || x === 0) return x;
  return Number(x.toPrecision(digits));
}

module.exports = { median, percentile, sig };
