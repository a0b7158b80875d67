import type { Pool } from 'pg';

// One instance drives timeouts, retries and rollouts: the holder of a row in ota_leases. The
// holder renews it every third of its length; anyone may take it once it has expired (database
// time, so the instances' clocks do not matter). A holder that cannot renew stops driving at
// half the length (checked every quarter), before anyone else can take over: never two drivers.

export const DEFAULT_LEASE_MS = 6000;

export class Lease {
  private held = false;
  private lastRenewed = 0;
  private timer: ReturnType<typeof setInterval> | undefined;
  private busy = false;

  constructor(
    private readonly pool: () => Pool,
    readonly name: string,
    readonly holder: string,
    readonly ms: number,
    private readonly onChange: (held: boolean) => void,
    private readonly onError: (err: Error) => void,
  ) {}

  get isHeld(): boolean {
    return this.held;
  }

  start(): void {
    if (this.timer) return;
    const step = Math.max(100, Math.floor(this.ms / 4));
    this.timer = setInterval(() => void this.tick(), step);
    this.timer.unref?.();
    void this.tick();
  }

  private set(held: boolean): void {
    if (held === this.held) return;
    this.held = held;
    this.onChange(held);
  }

  /** Renews or takes the lease; gives it up locally when renewals stopped landing. */
  async tick(): Promise<void> {
    if (this.held && Date.now() - this.lastRenewed > this.ms / 2) this.set(false);
    if (this.busy) return;
    this.busy = true;
    const started = Date.now();
    try {
      const { rows } = await this.pool().query(
        `INSERT INTO ota_leases (name, holder, expires_at) VALUES ($1, $2, now() + $3 * interval '1 millisecond')
         ON CONFLICT (name) DO UPDATE SET holder = EXCLUDED.holder, expires_at = EXCLUDED.expires_at
         WHERE ota_leases.holder = EXCLUDED.holder OR ota_leases.expires_at < now()
         RETURNING holder`,
        [this.name, this.holder, this.ms],
      );
      if (!this.timer) return; // stopped meanwhile
      if (rows.length === 1) {
        this.lastRenewed = started;
        this.set(true);
      } else this.set(false);
    } catch (err) {
      this.onError(err as Error);
    } finally {
      this.busy = false;
    }
  }

  /** Stops renewing and hands the lease back at once (a clean shutdown needs no expiry wait). */
  async stop(): Promise<void> {
    if (this.timer) clearInterval(this.timer);
    this.timer = undefined;
    const wasHeld = this.held;
    this.set(false);
    if (wasHeld) await this.pool().query('DELETE FROM ota_leases WHERE name = $1 AND holder = $2', [this.name, this.holder]).catch(() => undefined);
  }
}
