import * as fs from 'fs';
import * as path from 'path';
import { randomBytes } from 'crypto';
import { EventEmitter } from 'events';
import { writeFileAtomicSync } from './atomic-file';
import { prepareStorageDir } from './storage-dir';
import { BlobStore } from './firmware/blob-store';
import { Catalogue, DEFAULT_MAX_IMAGE_BYTES } from './firmware/catalogue';
import { DEFAULT_URL_TTL_SECONDS, compactSignedPath, signedPath } from './firmware/url-signing';
import { DeviceRegistry } from './devices';
import { RolloutStore } from './device-updates/device-states';
import { FileRolloutPersistence } from './rollouts/persistence';
import type { RolloutPersistence } from './rollouts/ports';
import type { Blobs, RemoteChange, StorageOptions, StorageSnapshot } from './storage/backend';
import type { PostgresBackend } from './storage/postgres/backend';
import { FirmwareRecord, OtaError } from './types';

// The OTA repository: everything the nodes share, in one storage directory.
//   catalogue.json        firmware records         blobs/xx/<sha256>   image bytes
//   devices.json          device list              device-states.json  rollout state
//   secret.key            URL-signing secret, unless the config node supplies one
// Directories 0700, files 0600: images and device data are the owner's alone.
// With `storage: {kind: 'postgres'}` the same model lives in a database shared by several
// Node-REDs (storage/postgres/backend.ts); the directory then holds only this instance's image
// cache. Reads stay in memory either way; `ready` resolves once the model is loaded.

export interface RepositoryOptions {
  dir: string;
  /** URL-signing secret; generated once and kept in `secret.key` when absent. */
  secret?: string;
  maxImageBytes?: number;
  urlTtlSeconds?: number;
  /** Where devices reach Node-RED's HTTP server, e.g. http://192.168.1.10:1880 */
  publicUrl?: string;
  /** The download route's path on that server. */
  downloadPath?: string;
  now?: () => Date;
  /** Where the model is kept: files in `dir` (the default) or PostgreSQL. */
  storage?: StorageOptions;
}

export const DEFAULT_DOWNLOAD_PATH = '/ota/dl';

function loadOrCreateSecret(dir: string): Buffer {
  const file = path.join(dir, 'secret.key');
  try {
    const text = fs.readFileSync(file, 'utf8').trim();
    if (text.length >= 32) return Buffer.from(text, 'utf8');
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw err;
  }
  const secret = randomBytes(32).toString('hex');
  writeFileAtomicSync(file, secret + '\n', 0o600);
  return Buffer.from(secret, 'utf8');
}

export class OtaRepository extends EventEmitter {
  readonly dir: string;
  private key: Buffer;
  readonly blobs: Blobs;
  readonly firmware: Catalogue;
  readonly devices: DeviceRegistry;
  readonly rollout: RolloutStore;
  readonly urlTtlSeconds: number;
  readonly downloadPath: string;
  publicUrl: string;
  readonly now: () => Date;
  /** Temp files of writes a killed process never finished, removed on opening. */
  readonly removedTempFiles: string[];
  /** Say why a firmware must stay (rollouts register one); undefined: no objection. */
  readonly firmwareGuards: Array<(id: string) => string | undefined> = [];
  /** The shared backend, when not on files. */
  readonly backend?: PostgresBackend;
  /** Resolves once the model is loaded (at once on files); rejects when the backend cannot open. */
  readonly ready: Promise<void>;

  constructor(options: RepositoryOptions) {
    super();
    this.dir = path.resolve(options.dir);
    // 0700/0600, and no temp file of a killed upload left behind (storage-dir.ts).
    this.removedTempFiles = prepareStorageDir(this.dir).removedTempFiles;
    this.now = options.now ?? (() => new Date());
    const maxImageBytes = options.maxImageBytes ?? DEFAULT_MAX_IMAGE_BYTES;
    if (options.storage?.kind === 'postgres') {
      // Loaded lazily: a repository on files never loads the PostgreSQL client.
      // eslint-disable-next-line @typescript-eslint/no-require-imports
      const { PostgresBackend } = require('./storage/postgres/backend') as typeof import('./storage/postgres/backend');
      const pg = options.storage;
      const backend = new PostgresBackend({ connectionString: pg.connectionString, cacheDir: pg.cacheDir ?? path.join(this.dir, 'image-cache'), instance: pg.instance, leaseMs: pg.leaseMs });
      backend.on('error', (err: Error) => this.emit('storageError', err));
      this.backend = backend;
      // Until loaded, a secret nobody knows: nothing signed or checked before then is valid.
      this.key = options.secret ? Buffer.from(options.secret, 'utf8') : randomBytes(32);
      this.blobs = backend.blobs;
      let catalogueSink: ReturnType<PostgresBackend['catalogue']> | undefined;
      this.firmware = new Catalogue(this.dir, this.blobs, maxImageBytes, {
        records: [],
        sink: (list) => (catalogueSink = backend.catalogue(list)),
      });
      this.devices = new DeviceRegistry(this.dir, () => this.key, { records: [], sink: backend.devices });
      this.rollout = new RolloutStore(this.dir, this.now, { records: [], sink: backend.states });
      const adoptFirmware = (id: string, record: FirmwareRecord | null) => {
        catalogueSink?.adopted(record, id);
        this.firmware.adopt(id, record);
      };
      const adoptAll = (snapshot: StorageSnapshot) => {
        const ids = new Set(snapshot.firmware.map((f) => f.id));
        for (const f of this.firmware.list()) if (!ids.has(f.id)) adoptFirmware(f.id, null);
        for (const f of snapshot.firmware) adoptFirmware(f.id, f);
        this.devices.adoptAll(snapshot.devices);
        this.rollout.adoptAll(snapshot.states);
      };
      this.ready = (async () => {
        // Listening before loading: a change committed while the snapshot loads is applied after it.
        await backend.follow((change) => this.applyRemote(change, adoptFirmware), (fresh) => adoptAll(fresh));
        const snapshot = await backend.open();
        if (!options.secret && snapshot.secret) this.key = Buffer.from(snapshot.secret, 'utf8');
        adoptAll(snapshot);
        backend.applyHeld();
        this.forgetStrays();
        if (pg.drive !== false) backend.lead((driving) => this.emit('driving', driving));
      })();
      // A failed open is reported by whoever awaits `ready`; unobserved, it must not crash Node-RED.
      this.ready.catch(() => undefined);
    } else {
      this.key = options.secret ? Buffer.from(options.secret, 'utf8') : loadOrCreateSecret(this.dir);
      this.blobs = new BlobStore(path.join(this.dir, 'blobs'));
      this.firmware = new Catalogue(this.dir, this.blobs, maxImageBytes);
      this.devices = new DeviceRegistry(this.dir, this.key);
      this.rollout = new RolloutStore(this.dir, this.now);
      this.forgetStrays();
      this.ready = Promise.resolve();
    }
    this.urlTtlSeconds = options.urlTtlSeconds ?? DEFAULT_URL_TTL_SECONDS;
    this.downloadPath = options.downloadPath ?? DEFAULT_DOWNLOAD_PATH;
    this.publicUrl = (options.publicUrl ?? '').replace(/\/+$/, '');
    this.setMaxListeners(0);
  }

  /** The URL-signing secret (also keys the token HMACs). */
  get secret(): Buffer {
    return this.key;
  }

  /** True where timeouts, retries and rollouts are driven: always on files, the lease holder on PostgreSQL. */
  get isDriver(): boolean {
    return this.backend ? this.backend.isDriver : true;
  }

  /**
   * A device's state as the database holds it now (shared backend; on files memory is the truth):
   * what another instance assigned a moment ago may not have reached this one yet. Undefined
   * when there is nothing to read (files).
   */
  refreshState(device: string): Promise<void> | undefined {
    return this.backend?.refreshStates([device]);
  }

  /** Where the rollouts and their release journal are kept. */
  rolloutPersistence(): RolloutPersistence {
    return this.backend ? this.backend.rollouts() : new FileRolloutPersistence(this.dir);
  }

  /**
   * Records an older version made for ids nobody registered (reports from any client on the
   * broker): no assignment, no device, nothing to keep.
   */
  private forgetStrays(): void {
    for (const s of [...this.rollout.records()]) if (!s.firmware && !this.devices.get(s.device)) this.rollout.forget(s.device);
  }

  /** Another instance changed a row: the model follows (the gateway drops a revoked device). */
  private applyRemote(change: RemoteChange, adoptFirmware: (id: string, record: FirmwareRecord | null) => void): void {
    if (change.kind === 'device') this.devices.adoptOne(change.id, change.record);
    else if (change.kind === 'state') this.rollout.adopt(change.id, change.record);
    else if (change.kind === 'firmware') adoptFirmware(change.id, change.record);
    else this.emit('remoteRollout', change.id, change.record);
  }

  /** A per-device download URL for a firmware, signed, expiring after urlTtlSeconds. */
  downloadUrl(firmware: FirmwareRecord, device: string): string {
    const expires = Math.floor(this.now().getTime() / 1000) + this.urlTtlSeconds;
    return this.publicUrl + signedPath(this.secret, this.downloadPath, { firmware: firmware.id, device, expires });
  }

  /** The same URL in the compact form (url-signing.ts), ending in `file` (download.ts COMPACT_FILE). */
  compactDownloadUrl(firmware: FirmwareRecord, device: string, file: string): string {
    const expires = Math.floor(this.now().getTime() / 1000) + this.urlTtlSeconds;
    return this.publicUrl + compactSignedPath(this.secret, this.downloadPath, { firmware: firmware.id, device, expires }, file);
  }

  /** Deletes a firmware unless some device is still assigned it. */
  async deleteFirmware(id: string): Promise<FirmwareRecord> {
    const record = this.firmware.resolve(id);
    if (this.rollout.isAssigned(record.id)) {
      throw new OtaError('firmware_assigned', `${record.title} ${record.version} is assigned to devices; unassign it first`, 'firmware');
    }
    for (const guard of this.firmwareGuards) {
      const why = guard(record.id);
      if (why) throw new OtaError('firmware_assigned', `${record.title} ${record.version}: ${why}`, 'firmware');
    }
    return this.firmware.remove(record.id);
  }

  /** Waits for every pending write (close, tests). */
  async flush(): Promise<void> {
    await Promise.all([this.firmware.flush(), this.devices.flush(), this.rollout.flush()]);
  }

  /** Writes what is pending and lets go of the backend (connections, the driver lease). */
  async close(): Promise<void> {
    await this.ready.catch(() => undefined);
    try {
      await this.flush();
    } finally {
      await this.backend?.close();
    }
  }
}
