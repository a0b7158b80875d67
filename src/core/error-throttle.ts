// One misbehaving device must not flood Node-RED's log and every Catch node: the device still
// gets an answer to each bad request, but the node reports at most one error per device per
// window, and says how many it held back.

export class ErrorThrottle {
  private readonly last = new Map<string, { at: number; held: number }>();

  constructor(
    readonly windowMs = 10_000,
    private readonly maxKeys = 10_000,
  ) {}

  /**
   * Whether to report an error for `key` now; when it is, `held` is how many were held back
   * since the last report.
   */
  admit(key: string, now: number): { report: boolean; held: number } {
    const entry = this.last.get(key);
    if (entry && now - entry.at < this.windowMs) {
      entry.held += 1;
      return { report: false, held: entry.held };
    }
    const held = entry?.held ?? 0;
    // Bounded: a flood of distinct device names must not grow memory either.
    if (!entry && this.last.size >= this.maxKeys) this.last.clear();
    this.last.set(key, { at: now, held: 0 });
    return { report: true, held };
  }
}
