import { EventEmitter } from 'events';
import { hostname } from 'os';
import { randomBytes } from 'crypto';
import type { Client, Pool, PoolClient } from 'pg';
import type { DeviceRecord, FirmwareRecord } from '../../types';
import type { DeviceState } from '../../device-updates/device-states';
import type { Rollout } from '../../rollouts/model';
import type { RolloutPersistence } from '../../rollouts/ports';
import type { DeviceSink, DocumentSink, RemoteChange, SharedBackend, StateSink, StorageSnapshot } from '../backend';
import { loadPg, redact } from './client';
import { migrate } from './migrations';
import { PostgresBlobs } from './blobs';
import { WriteBehind } from './write-behind';
import { DEFAULT_LEASE_MS, Lease } from './lease';
import { PostgresRolloutPersistence } from './rollouts';
import { SyncJournal } from './sync-journal';
import { MERGED_STATE } from './state-merge';

// The repository on PostgreSQL. Rows, not documents:
//   ota_firmware       one row per firmware record      ota_blobs    image bytes by SHA-256
//   ota_devices        one row per device (token as HMAC, as in devices.json)
//   ota_device_states  one row per device state: a progress event is one upserted row, batched
//   ota_rollouts       one row per rollout              ota_rollout_journal  releases since
//   ota_settings       the URL-signing secret           ota_leases   the driver lease
// Every write announces the keys it changed on the channel `ota_changes` in its own transaction
// (`{"i": instance, "k": kind, "ids": [...]}`); the other instances read those rows and apply
// them. A lost LISTEN connection is re-opened and everything reloaded (notifications sent while
// it was away are lost, the rows are not).

const CHANNEL = 'ota_changes';
/** NOTIFY payloads are limited to 8000 bytes: ids go in several when a batch is large. */
const NOTIFY_BYTES = 7000;
/** Rows per statement in a batched write. */
const BATCH_ROWS = 1000;
const KINDS = { device: 'd', state: 's', firmware: 'f', rollout: 'r' } as const;
/** How a changed key of each kind is read again. */
const REREAD = {
  device: 'SELECT id AS key, doc FROM ota_devices WHERE id = ANY($1)',
  state: 'SELECT device AS key, doc FROM ota_device_states WHERE device = ANY($1)',
  firmware: 'SELECT id AS key, doc FROM ota_firmware WHERE id = ANY($1)',
  rollout: 'SELECT id AS key, doc FROM ota_rollouts WHERE id = ANY($1)',
} as const;
type Kind = keyof typeof KINDS;
type Query = { query: Pool['query'] };

interface Note {
  i: string;
  k: (typeof KINDS)[Kind];
  ids: string[];
}

/**
 * Whether `row` holds an assignment made after the one `local` knows. Reports are read against the
 * assignment: an instance that kept its own unwritten state over such a row went on reading a
 * device's reports against its previous firmware, and (ota-assign answering a version report that
 * differs from the target) sent the device its previous image again: seen end to end, two
 * instances sending a Tencent device 1.1.0 and 1.2.0 in turn.
 */
function newerAssignment(row: DeviceState | null | undefined, local: DeviceState | null | undefined): boolean {
  // An unassignment keeps the assignedAt of the assignment it ended: not undone by that one's row.
  return !!row?.firmware && (row.assignedAt ?? '') > (local?.assignedAt ?? '');
}

/** Byte order, as `COLLATE "C"` sorts (ids are ASCII): the one order every instance locks rows in. */
const byKey = (a: string, b: string): number => (a < b ? -1 : a > b ? 1 : 0);

/**
 * Locks the existing rows of `keys` in one order before a batch writes them. Several instances
 * write overlapping batches (a report reaches one, its download another, the driver's notice a
 * third): taken in whatever order each batch held them, two batches each waited on the other's row
 * and PostgreSQL killed one ("deadlock detected"; the end-to-end run saw it under load). New rows
 * are inserted in the same order (the upserts sort too).
 */
async function lockRows(client: PoolClient, table: string, key: string, keys: string[]): Promise<void> {
  if (keys.length === 0) return;
  await client.query(`SELECT 1 FROM ${table} WHERE ${key} = ANY($1) ORDER BY ${key} COLLATE "C" FOR UPDATE`, [keys]);
}

function chunks<T>(list: T[], size: number): T[][] {
  const out: T[][] = [];
  for (let i = 0; i < list.length; i += size) out.push(list.slice(i, i + size));
  return out;
}

export interface PostgresBackendOptions {
  connectionString: string;
  cacheDir: string;
  instance?: string;
  leaseMs?: number;
  /** Pool size (default 5: writes are batched, reads are from memory). */
  max?: number;
}

export class PostgresBackend extends EventEmitter implements SharedBackend {
  readonly kind = 'postgres' as const;
  readonly instance: string;
  readonly blobs: PostgresBlobs;
  readonly devices: DeviceSink;
  readonly states: StateSink;
  private poolInstance: Pool | undefined;
  private listener: Client | undefined;
  private snapshot: StorageSnapshot | undefined;
  private readonly stateWrites: WriteBehind<DeviceState>;
  /** Devices whose remote change came while this instance's own write of them was due. */
  private readonly recheck = new Set<string>();
  /** Counts this instance's state writes; per device, the count when its last write landed. */
  private stateWriteSeq = 0;
  private readonly stateWrittenAt = new Map<string, number>();
  private lease: Lease | undefined;
  private following: { onChange: (c: RemoteChange) => void; onResync: (s: StorageSnapshot) => void } | undefined;
  private closed = false;
  private journal: SyncJournal | undefined;
  /** Notifications received before applyHeld(); bounded: past this many, the load covers them. */
  private held: string[] | null = [];
  private reconnectTimer: ReturnType<typeof setTimeout> | undefined;
  secret: string | undefined;

  constructor(private readonly options: PostgresBackendOptions) {
    super();
    this.instance = options.instance ?? `${hostname()}:${process.pid}:${randomBytes(3).toString('hex')}`;
    this.blobs = new PostgresBlobs(() => this.pool, options.cacheDir);
    this.stateWrites = new WriteBehind<DeviceState>((batch) => this.writeStates(batch), (err) => this.fail(err));
    this.states = {
      put: (state) => this.stateWrites.set(state.device, state),
      remove: (device) => this.stateWrites.set(device, null),
      flush: () => this.stateWrites.flush(),
      shared: true,
    };
    this.devices = { write: (changes) => this.writeDevices(changes) };
  }

  /** The connection string without its password. */
  get where(): string {
    return redact(this.options.connectionString);
  }

  private get pool(): Pool {
    if (!this.poolInstance) {
      const { Pool } = loadPg();
      this.poolInstance = new Pool({ connectionString: this.options.connectionString, max: this.options.max ?? 5, connectionTimeoutMillis: 10000 });
      // An idle client that loses its connection emits here; without a listener it would crash Node-RED.
      this.poolInstance.on('error', (err) => this.fail(err));
    }
    return this.poolInstance;
  }

  private fail(err: Error): void {
    if (this.listenerCount('error') > 0) this.emit('error', err);
  }

  get isDriver(): boolean {
    return this.lease?.isHeld ?? false;
  }

  async open(): Promise<StorageSnapshot> {
    const client = await this.pool.connect().catch((err: Error) => {
      throw new Error(`cannot reach PostgreSQL at ${this.where}: ${err.message}`);
    });
    try {
      await migrate(client);
      await client.query("INSERT INTO ota_settings (key, value) VALUES ('secret', $1) ON CONFLICT (key) DO NOTHING", [randomBytes(32).toString('hex')]);
    } finally {
      client.release();
    }
    this.snapshot = await this.load();
    this.secret = this.snapshot.secret;
    // The release journal blocks this thread on its worker (once per release): have it ready.
    this.journal ??= new SyncJournal(this.options.connectionString);
    this.journal.warm();
    return this.snapshot;
  }

  /** Everything, as it is now. */
  async load(): Promise<StorageSnapshot> {
    const client = this.pool;
    // Each table as one JSON text parsed once: 100,000 rows parsed one by one take seconds longer.
    const all = async <T>(table: string): Promise<T[]> => {
      const { rows } = await client.query<{ docs: string }>(`SELECT coalesce(json_agg(doc), '[]')::text AS docs FROM ${table}`);
      return JSON.parse(rows[0].docs) as T[];
    };
    const [secret, firmware, devices, states, rollouts, journal] = await Promise.all([
      client.query<{ value: string }>("SELECT value FROM ota_settings WHERE key = 'secret'"),
      all<FirmwareRecord>('ota_firmware'),
      all<DeviceRecord>('ota_devices'),
      all<DeviceState>('ota_device_states'),
      all<Rollout>('ota_rollouts'),
      client.query<{ seq: string; rollout: string; devices: string[]; at: string }>('SELECT seq, rollout, devices, at FROM ota_rollout_journal ORDER BY seq'),
    ]);
    return {
      ...(secret.rows[0] ? { secret: secret.rows[0].value } : {}),
      firmware,
      devices,
      states,
      rollouts,
      journal: journal.rows.map((r) => ({ seq: Number(r.seq), rollout: r.rollout, devices: r.devices, at: Number(r.at) })),
    };
  }

  /** Writes a whole repository into this (empty) database in one transaction (the migration CLI). */
  async importSnapshot(snapshot: StorageSnapshot, images: Map<string, Buffer>): Promise<void> {
    await this.transaction(async (client) => {
      if (snapshot.secret) await client.query("UPDATE ota_settings SET value = $1 WHERE key = 'secret'", [snapshot.secret]);
      for (const [sha, data] of images) {
        await client.query('INSERT INTO ota_blobs (sha256, size, data) VALUES ($1, $2, $3) ON CONFLICT (sha256) DO NOTHING', [sha, data.length, data]);
      }
      for (const f of snapshot.firmware) await client.query('INSERT INTO ota_firmware (id, sha256, doc) VALUES ($1, $2, $3)', [f.id, f.checksums.sha256, JSON.stringify(f)]);
      for (const rows of chunks(snapshot.devices, BATCH_ROWS)) {
        await client.query(
          `INSERT INTO ota_devices (id, dialect, token_hash, doc) SELECT r->>'id', r->>'dialect', r->>'tokenHash', r FROM jsonb_array_elements($1::jsonb) r`,
          [JSON.stringify(rows)],
        );
      }
      for (const rows of chunks(snapshot.states, BATCH_ROWS)) {
        await client.query(
          `INSERT INTO ota_device_states (device, firmware, state, doc) SELECT r->>'device', r->>'firmware', r->>'state', r FROM jsonb_array_elements($1::jsonb) r`,
          [JSON.stringify(rows)],
        );
      }
      for (const r of snapshot.rollouts) await client.query('INSERT INTO ota_rollouts (id, doc) VALUES ($1, $2)', [r.id, JSON.stringify(r)]);
      for (const j of snapshot.journal) await client.query('INSERT INTO ota_rollout_journal (rollout, devices, at) VALUES ($1, $2, $3)', [j.rollout, JSON.stringify(j.devices), j.at]);
    });
  }

  /** Announces changed keys, inside the caller's transaction (delivered on commit). */
  private async notify(client: Query, kind: Kind, ids: string[]): Promise<void> {
    let batch: string[] = [];
    let bytes = 0;
    const send = async () => {
      if (!batch.length) return;
      const note: Note = { i: this.instance, k: KINDS[kind], ids: batch };
      await client.query('SELECT pg_notify($1, $2)', [CHANNEL, JSON.stringify(note)]);
      batch = [];
      bytes = 0;
    };
    for (const id of ids) {
      if (bytes + id.length + 4 > NOTIFY_BYTES) await send();
      batch.push(id);
      bytes += id.length + 4;
    }
    await send();
  }

  private async transaction(work: (client: PoolClient) => Promise<void>): Promise<void> {
    const client = await this.pool.connect();
    try {
      await client.query('BEGIN');
      await work(client);
      await client.query('COMMIT');
    } catch (err) {
      await client.query('ROLLBACK').catch(() => undefined);
      throw err;
    } finally {
      client.release();
    }
  }

  private async writeStates(batch: Map<string, DeviceState | null>): Promise<void> {
    const put: DeviceState[] = [];
    const gone: string[] = [];
    for (const [id, s] of batch) {
      if (s) put.push(s);
      else gone.push(id);
    }
    put.sort((a, b) => byKey(a.device, b.device));
    const merged: Array<{ device: string; doc: DeviceState }> = [];
    await this.transaction(async (client) => {
      await lockRows(client, 'ota_device_states', 'device', [...batch.keys()]);
      for (const rows of chunks(put, BATCH_ROWS)) {
        const text = JSON.stringify(rows);
        // Only the rows the merge changed come back (most batches: none), not every row written.
        const { rows: kept } = await client.query<{ device: string; doc: DeviceState }>(
          `WITH input AS (SELECT r FROM jsonb_array_elements($1::jsonb) r),
           up AS (
             INSERT INTO ota_device_states (device, firmware, state, doc, updated_at)
             SELECT r->>'device', r->>'firmware', r->>'state', r, now() FROM input ORDER BY r->>'device' COLLATE "C"
             ON CONFLICT (device) DO UPDATE SET firmware = (${MERGED_STATE})->>'firmware', state = (${MERGED_STATE})->>'state',
               doc = ${MERGED_STATE}, updated_at = now()
             RETURNING device, doc)
           SELECT up.device, up.doc FROM up JOIN input ON input.r->>'device' = up.device WHERE up.doc <> input.r`,
          [text],
        );
        for (const r of kept) merged.push(r);
      }
      if (gone.length) await client.query('DELETE FROM ota_device_states WHERE device = ANY($1)', [gone]);
      await this.notify(client, 'state', [...batch.keys()]);
    });
    const seq = ++this.stateWriteSeq;
    for (const id of batch.keys()) this.stateWrittenAt.set(id, seq);
    // The database kept more than this instance wrote (state-merge.ts): take that here too,
    // unless a newer change of the device is waiting to be written (it is merged in turn).
    for (const r of merged) {
      if (!this.stateWrites.hasPending(r.device) || newerAssignment(r.doc, this.stateWrites.latest(r.device))) {
        this.following?.onChange({ kind: 'state', id: r.device, record: r.doc } as RemoteChange);
      }
    }
    // Changes other instances announced while this write was pending or under way: read again
    // now that it is in (the rows hold both).
    const again = [...this.recheck].filter((id) => !this.stateWrites.hasPending(id));
    for (const id of again) this.recheck.delete(id);
    if (again.length && this.following) {
      const { rows } = await this.pool.query<{ device: string; doc: DeviceState }>('SELECT device, doc FROM ota_device_states WHERE device = ANY($1)', [again]);
      const found = new Map(rows.map((r) => [r.device, r.doc]));
      for (const id of again) {
        if (this.stateWrites.hasPending(id)) this.recheck.add(id);
        else this.following.onChange({ kind: 'state', id, record: found.get(id) ?? null } as RemoteChange);
      }
    }
  }

  private async writeDevices(changes: Map<string, DeviceRecord | null>): Promise<void> {
    const put = [...changes.values()].filter((d): d is DeviceRecord => d !== null).sort((a, b) => byKey(a.id, b.id));
    const gone = [...changes].filter(([, d]) => d === null).map(([id]) => id);
    await this.transaction(async (client) => {
      await lockRows(client, 'ota_devices', 'id', [...changes.keys()]);
      for (const rows of chunks(put, BATCH_ROWS)) {
        await client.query(
          `INSERT INTO ota_devices (id, dialect, token_hash, doc, updated_at)
           SELECT r->>'id', r->>'dialect', r->>'tokenHash', r, now() FROM jsonb_array_elements($1::jsonb) r ORDER BY r->>'id' COLLATE "C"
           ON CONFLICT (id) DO UPDATE SET dialect = EXCLUDED.dialect, token_hash = EXCLUDED.token_hash, doc = EXCLUDED.doc, updated_at = now()`,
          [JSON.stringify(rows)],
        );
      }
      if (gone.length) await client.query('DELETE FROM ota_devices WHERE id = ANY($1)', [gone]);
      await this.notify(client, 'device', [...changes.keys()]);
    });
  }

  /** The catalogue saves its whole (small) list; only records that differ from the last write go out. */
  catalogue(list: () => FirmwareRecord[]): DocumentSink & { adopted(record: FirmwareRecord | null, id: string): void } {
    const written = new Map<string, string>();
    for (const r of this.snapshot?.firmware ?? []) written.set(r.id, JSON.stringify(r));
    let tail: Promise<void> = Promise.resolve();
    const save = () => {
      const run = tail.then(async () => {
        const now = new Map(list().map((r) => [r.id, JSON.stringify(r)]));
        const put = [...now].filter(([id, json]) => written.get(id) !== json);
        const gone = [...written.keys()].filter((id) => !now.has(id));
        if (!put.length && !gone.length) return;
        await this.transaction(async (client) => {
          for (const [id, json] of put) {
            const record = JSON.parse(json) as FirmwareRecord;
            await client.query(
              'INSERT INTO ota_firmware (id, sha256, doc) VALUES ($1, $2, $3) ON CONFLICT (id) DO UPDATE SET sha256 = EXCLUDED.sha256, doc = EXCLUDED.doc, updated_at = now()',
              [id, record.checksums.sha256, json],
            );
          }
          if (gone.length) await client.query('DELETE FROM ota_firmware WHERE id = ANY($1)', [gone]);
          await this.notify(client, 'firmware', [...put.map(([id]) => id), ...gone]);
        });
        for (const [id, json] of put) written.set(id, json);
        for (const id of gone) written.delete(id);
      });
      tail = run.catch(() => undefined);
      return run;
    };
    return {
      save,
      flush: () => tail,
      // A record another instance wrote (or deleted) is what the database holds already.
      adopted: (record, id) => {
        if (record) written.set(id, JSON.stringify(record));
        else written.delete(id);
      },
    };
  }

  /** A rollout persistence over the rows as last loaded (open, or reload() when taking the lease). */
  rollouts(): RolloutPersistence {
    const loaded = { rollouts: this.snapshot?.rollouts ?? [], journal: this.snapshot?.journal ?? [] };
    this.journal ??= new SyncJournal(this.options.connectionString);
    return new PostgresRolloutPersistence(() => this.pool, loaded, this.journal, (client, ids) => this.notify(client, 'rollout', ids), (err) => this.fail(err), () => this.isDriver);
  }

  /** Reloads the rollouts and their journal (a new driver starts from what the last one wrote). */
  async reloadRollouts(): Promise<void> {
    const fresh = await this.load();
    if (this.snapshot) {
      this.snapshot.rollouts = fresh.rollouts;
      this.snapshot.journal = fresh.journal;
    }
  }

  /** Resolves once listening (a failed first attempt is retried in the background). */
  follow(onChange: (change: RemoteChange) => void, onResync: (snapshot: StorageSnapshot) => void): Promise<void> {
    this.following = { onChange, onResync };
    return this.listen(false);
  }

  private async listen(resync: boolean): Promise<void> {
    if (this.closed || !this.following) return;
    const { Client } = loadPg();
    const client = new Client({ connectionString: this.options.connectionString });
    const retry = (err: Error) => {
      this.fail(err);
      if (this.listener === client) this.listener = undefined;
      client.end().catch(() => undefined);
      if (this.closed || this.reconnectTimer) return;
      this.reconnectTimer = setTimeout(() => {
        this.reconnectTimer = undefined;
        void this.listen(true);
      }, 1000);
      this.reconnectTimer.unref?.();
    };
    client.on('error', retry);
    client.on('notification', (msg) => {
      if (msg.channel === CHANNEL && msg.payload) void this.received(msg.payload);
    });
    try {
      await client.connect();
      await client.query(`LISTEN ${CHANNEL}`);
      if (this.closed) {
        await client.end();
        return;
      }
      this.listener = client;
      if (resync) this.following.onResync(await this.load());
    } catch (err) {
      retry(err as Error);
    }
  }

  /**
   * Applies the changes announced since follow() (held back until the caller has taken the
   * snapshot: LISTEN starts before the load, so nothing committed in between is missed).
   */
  applyHeld(): void {
    const held = this.held ?? [];
    this.held = null;
    for (const payload of held) void this.received(payload);
  }

  private async received(payload: string): Promise<void> {
    if (this.held) {
      if (this.held.length < 100_000) this.held.push(payload);
      return;
    }
    let note: Note;
    try {
      note = JSON.parse(payload) as Note;
    } catch {
      return;
    }
    if (note.i === this.instance || !Array.isArray(note.ids) || !this.following) return;
    const ids = note.ids.filter((id) => typeof id === 'string');
    try {
      const kind = (Object.keys(KINDS) as Kind[]).find((k) => KINDS[k] === note.k);
      if (!kind) return;
      await this.reread(kind, ids);
    } catch (err) {
      this.fail(err as Error);
    }
  }

  private async reread(kind: Kind, ids: string[]): Promise<void> {
    const before = this.stateWriteSeq;
    const { rows } = await this.pool.query<{ key: string; doc: never }>(REREAD[kind], [ids]);
    const found = new Map(rows.map((r) => [r.key, r.doc]));
    for (const id of ids) {
      if (!this.following) return;
      // This instance wrote the device while the read was under way: the row read may be older
      // than that write, whose result (merged with whatever was there) it holds already. A
      // change made after the write comes with a notification of its own.
      if (kind === 'state' && (this.stateWrittenAt.get(id) ?? 0) > before) continue;
      // A state this instance changed and has not written yet is newer than the row, unless the
      // row holds a newer assignment (the instance would go on reading reports against its old one).
      if (kind === 'state' && this.stateWrites.has(id) && !newerAssignment(found.get(id), this.stateWrites.latest(id))) {
        this.recheck.add(id);
        continue;
      }
      this.following.onChange({ kind, id, record: found.get(id) ?? null } as RemoteChange);
    }
  }

  /**
   * Reads these devices' states again now, without waiting for a notification: a device's first
   * chunk request can reach this instance before the NOTIFY of the assignment another instance
   * made a moment ago (chunk-service.ts), and must not be answered from its previous one.
   */
  async refreshStates(ids: string[]): Promise<void> {
    if (this.held || !this.following || this.closed) return;
    await this.reread('state', ids);
  }

  lead(onDriving: (driving: boolean) => void): void {
    if (this.lease) return;
    this.lease = new Lease(() => this.pool, 'driver', this.instance, this.options.leaseMs ?? DEFAULT_LEASE_MS, onDriving, (err) => this.fail(err));
    this.lease.start();
  }

  /** Writes what is pending, hands the lease back, closes the connections. */
  async close(): Promise<void> {
    if (this.closed) return;
    try {
      await this.stateWrites.flush();
    } finally {
      this.closed = true;
      if (this.reconnectTimer) clearTimeout(this.reconnectTimer);
      await this.lease?.stop();
      await this.journal?.close();
      await this.listener?.end().catch(() => undefined);
      await this.poolInstance?.end().catch(() => undefined);
    }
  }
}
