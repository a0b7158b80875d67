// Changes of many records, coalesced per key and written in one batch a few milliseconds later:
// a burst of progress events from a thousand devices is one statement, not a thousand, and a
// record changed twice before the write is written once (its newest form). A failed write keeps
// its records for the next one (a newer change of a record wins) and tries again.

export class WriteBehind<V> {
  private pending = new Map<string, V | null>();
  /** The batch being written: a remote change read meanwhile may be older than it. */
  private writing = new Map<string, V | null>();
  private timer: ReturnType<typeof setTimeout> | undefined;
  private tail: Promise<void> = Promise.resolve();
  private failures = 0;

  constructor(
    private readonly write: (batch: Map<string, V | null>) => Promise<void>,
    private readonly onError: (err: Error) => void,
    private readonly delayMs = 20,
  ) {}

  /** Keys changed here and not yet written (a remote change of one of them must not win). */
  has(key: string): boolean {
    return this.pending.has(key) || this.writing.has(key);
  }

  /** The newest value of a key changed here and not yet written (undefined: none). */
  latest(key: string): V | null | undefined {
    return this.pending.has(key) ? this.pending.get(key) : this.writing.get(key);
  }

  /** Keys changed here since the write under way began. */
  hasPending(key: string): boolean {
    return this.pending.has(key);
  }

  set(key: string, value: V | null): void {
    this.pending.set(key, value);
    this.schedule(this.delayMs);
  }

  private schedule(ms: number): void {
    if (this.timer) return;
    this.timer = setTimeout(() => {
      this.timer = undefined;
      this.run().catch((err: Error) => {
        this.failures += 1;
        this.onError(err);
        // Back off while the database is away (up to 5 s), then try again.
        this.schedule(Math.min(5000, 100 * 2 ** Math.min(this.failures, 6)));
      });
    }, ms);
    this.timer.unref?.();
  }

  private run(): Promise<void> {
    const next = this.tail.then(async () => {
      if (this.pending.size === 0) return;
      const batch = this.pending;
      this.pending = new Map();
      this.writing = batch;
      try {
        await this.write(batch);
        this.failures = 0;
      } catch (err) {
        for (const [k, v] of batch) if (!this.pending.has(k)) this.pending.set(k, v);
        throw err;
      } finally {
        this.writing = new Map();
      }
    });
    this.tail = next.catch(() => undefined);
    return next;
  }

  /** Writes everything pending now; rejects if the database refuses it. */
  async flush(): Promise<void> {
    if (this.timer) clearTimeout(this.timer);
    this.timer = undefined;
    while (this.pending.size > 0) await this.run();
    await this.tail;
  }
}
