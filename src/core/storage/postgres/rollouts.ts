import type { Pool } from 'pg';
import type { Rollout } from '../../rollouts/model';
import type { RolloutPersistence } from '../../rollouts/ports';
import type { SyncJournal } from './sync-journal';
import { OtaError } from '../../types';

// Rollouts in rows (ota_rollouts, one per rollout) and the release journal in ota_rollout_journal,
// the same contract as the files (persistence.ts): a snapshot at most every 200 ms, journal rows
// for releases since, deleted in the snapshot's own transaction once it holds them. Only the
// driver (the lease holder) writes here. A release is committed before released() returns, as
// the file journal is fsync'd (sync-journal.ts): the next driver never sends those notices again.

type Journal = Array<{ rollout: string; devices: string[]; at: number; seq?: number }>;

export class PostgresRolloutPersistence implements RolloutPersistence {
  private tail: Promise<void> = Promise.resolve();
  private current: () => Rollout[] = () => [];
  private timer: ReturnType<typeof setTimeout> | undefined;
  private lastSeq = 0;
  private written = new Set<string>();
  private dirty = false;

  constructor(
    private readonly pool: () => Pool,
    private readonly loaded: { rollouts: Rollout[]; journal: Journal },
    private readonly journal: SyncJournal,
    private readonly notify: (client: { query: Pool['query'] }, ids: string[]) => Promise<void>,
    private readonly onError: (err: Error) => void,
    private readonly isDriver: () => boolean = () => true,
    private readonly minIntervalMs = 200,
  ) {
    for (const r of loaded.rollouts) this.written.add(r.id);
    // The engine replays these into its rollouts: the first snapshot holds them.
    for (const j of loaded.journal) this.lastSeq = Math.max(this.lastSeq, j.seq ?? 0);
  }

  load(): Rollout[] {
    return JSON.parse(JSON.stringify(this.loaded.rollouts)) as Rollout[];
  }

  replay(): Map<string, Array<{ devices: string[]; at: number }>> {
    const out = new Map<string, Array<{ devices: string[]; at: number }>>();
    for (const j of this.loaded.journal) out.set(j.rollout, [...(out.get(j.rollout) ?? []), { devices: j.devices, at: j.at }]);
    return out;
  }

  private queue(work: () => Promise<void>): Promise<void> {
    const run = this.tail.then(work);
    this.tail = run.catch((err: Error) => this.onError(err));
    return run;
  }

  /** Only the lease holder releases devices: another instance's notices would go twice. */
  private mustDrive(): void {
    if (!this.isDriver()) {
      throw new OtaError('not_driver', 'this Node-RED does not drive rollouts (another instance on the database holds the driver lease): send rollout commands to that instance');
    }
  }

  save(snapshot: () => Rollout[]): void {
    // An engine stopping after its instance lost the lease writes no more (the new driver does).
    if (!this.isDriver()) return;
    this.current = snapshot;
    this.dirty = true;
    if (this.timer) return;
    this.timer = setTimeout(() => {
      this.timer = undefined;
      void this.queue(() => this.writeSnapshot());
    }, this.minIntervalMs);
    this.timer.unref?.();
  }

  released(rollout: string, devices: string[], at: number): void {
    this.mustDrive();
    const rows = this.journal.query<{ seq: string }>('INSERT INTO ota_rollout_journal (rollout, devices, at) VALUES ($1, $2, $3) RETURNING seq', [rollout, JSON.stringify(devices), at]);
    this.lastSeq = Math.max(this.lastSeq, Number(rows[0].seq));
  }

  private async writeSnapshot(): Promise<void> {
    if (!this.dirty) return;
    this.dirty = false;
    const rollouts = this.current();
    const covered = this.lastSeq;
    const client = await this.pool().connect();
    try {
      await client.query('BEGIN');
      const changed = await client.query<{ id: string }>(
        `INSERT INTO ota_rollouts (id, doc, updated_at) SELECT r->>'id', r, now() FROM jsonb_array_elements($1::jsonb) r
         ON CONFLICT (id) DO UPDATE SET doc = EXCLUDED.doc, updated_at = now() WHERE ota_rollouts.doc IS DISTINCT FROM EXCLUDED.doc
         RETURNING id`,
        [JSON.stringify(rollouts)],
      );
      const ids = rollouts.map((r) => r.id);
      const gone = [...this.written].filter((id) => !ids.includes(id));
      if (gone.length) await client.query('DELETE FROM ota_rollouts WHERE id = ANY($1)', [gone]);
      if (covered) await client.query('DELETE FROM ota_rollout_journal WHERE seq <= $1', [covered]);
      await this.notify(client, [...changed.rows.map((r) => r.id), ...gone]);
      await client.query('COMMIT');
      this.written = new Set(ids);
    } catch (err) {
      await client.query('ROLLBACK').catch(() => undefined);
      this.dirty = true;
      throw err;
    } finally {
      client.release();
    }
  }

  async flush(): Promise<void> {
    if (this.timer) {
      clearTimeout(this.timer);
      this.timer = undefined;
    }
    await this.tail;
    await this.queue(() => this.writeSnapshot());
  }
}
