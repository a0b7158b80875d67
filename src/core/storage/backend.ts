import type { DeviceRecord, FirmwareRecord } from '../types';
import type { DeviceState } from '../device-updates/device-states';
import type { Rollout } from '../rollouts/model';
import type { RolloutPersistence } from '../rollouts/ports';

// Where the repository keeps what it knows. The in-memory model (catalogue, device list, device
// states, rollouts) stays the one every read goes to, synchronously: the gateway, the chunk
// server and the download route answer from memory. A backend is where that model is loaded
// from and written to:
//   files     (the default) today's JSON documents in the storage directory; the classes keep
//             their own file code, so nothing on disk changes
//   postgres  rows, written behind in small batches, shared by every Node-RED on the database,
//             with changes announced (LISTEN/NOTIFY) and one driver elected (a lease)
// A backend never decides anything: the classes do, and hand it what changed.

export type StorageOptions =
  | { kind: 'files' }
  | {
      kind: 'postgres';
      /** postgres://user:password@host:port/database (a credential of the config node). */
      connectionString: string;
      /** Where this instance keeps its copy of images (default: `{dir}/image-cache`). */
      cacheDir?: string;
      /** Names this instance in the lease and in notifications (default: host + pid + random). */
      instance?: string;
      /** Lease length: a dead driver is replaced within about this long (default 6000 ms). */
      leaseMs?: number;
      /** False: never compete for the driver role (the gateway command line reads devices only). */
      drive?: boolean;
    };

/** Everything a backend holds, as loaded at start (and as the migration CLI copies it). */
export interface StorageSnapshot {
  secret?: string;
  firmware: FirmwareRecord[];
  devices: DeviceRecord[];
  states: DeviceState[];
  rollouts: Rollout[];
  journal: Array<{ rollout: string; devices: string[]; at: number; seq?: number }>;
}

/** A document the catalogue saves whole (small: tens of records), written record by record. */
export interface DocumentSink {
  /** The state changed; resolves once a write holding it has landed. */
  save(): Promise<void>;
  flush(): Promise<void>;
}

/** Image bytes by SHA-256. `pathOf` is a local file (the download route streams it when present). */
export interface Blobs {
  pathOf(sha256: string): string;
  put(data: Buffer): Promise<string>;
  has(sha256: string): boolean;
  read(sha256: string): Promise<Buffer>;
  remove(sha256: string): Promise<void>;
}

/** Device list changes: one entry per device, null for a deletion. */
export interface DeviceSink {
  write(changes: Map<string, DeviceRecord | null>): Promise<void>;
}

/** Device state changes, written behind: `put` is called on every event, cheaply. */
export interface StateSink {
  put(state: DeviceState): void;
  remove(device: string): void;
  flush(): Promise<void>;
  /** Shared with other instances: what they must see before a device acts is flushed first (durable()). */
  readonly shared?: boolean;
}

/** What another instance changed, as the backend announces it. */
export type RemoteChange =
  | { kind: 'device'; id: string; record: DeviceRecord | null }
  | { kind: 'state'; id: string; record: DeviceState | null }
  | { kind: 'firmware'; id: string; record: FirmwareRecord | null }
  | { kind: 'rollout'; id: string; record: Rollout | null };

export interface SharedBackend {
  readonly kind: 'postgres';
  /** Applies migrations and loads everything; call once, before anything is written. */
  open(): Promise<StorageSnapshot>;
  /** The shared URL-signing secret (created on first open), after open. */
  readonly secret: string | undefined;
  readonly blobs: Blobs;
  readonly devices: DeviceSink;
  readonly states: StateSink;
  catalogue(list: () => FirmwareRecord[]): DocumentSink;
  rollouts(): RolloutPersistence;
  /** Follows other instances' changes; `resync` is called after a lost connection (reload all). */
  follow(onChange: (change: RemoteChange) => void, onResync: (snapshot: StorageSnapshot) => void): Promise<void>;
  /** Competes for the one driver role; `onDriving(true|false)` on every change. */
  lead(onDriving: (driving: boolean) => void): void;
  readonly isDriver: boolean;
  on(event: 'error', listener: (err: Error) => void): this;
  close(): Promise<void>;
}
