/** A counting semaphore: at most `limit` holders; waiters are served in arrival order. */
export class Semaphore {
  private holders = 0;
  private readonly waiters: Array<() => void> = [];

  constructor(readonly limit: number) {}

  acquire(): Promise<void> {
    if (this.holders < this.limit) {
      this.holders++;
      return Promise.resolve();
    }
    return new Promise((resolve) => this.waiters.push(resolve));
  }

  release(): void {
    const next = this.waiters.shift();
    if (next) next();
    else if (this.holders > 0) this.holders--;
  }

  /** Forget a waiter that no longer wants the slot (device stopped while queued). */
  cancel(waiter: () => void): void {
    const i = this.waiters.indexOf(waiter);
    if (i >= 0) this.waiters.splice(i, 1);
  }

  get active(): number {
    return this.holders;
  }
}
