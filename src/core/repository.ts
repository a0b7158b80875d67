import * as fs from 'fs';
import * as path from 'path';
import { randomBytes } from 'crypto';
import { EventEmitter } from 'events';
import { writeFileAtomicSync } from './atomic-file';
import { prepareStorageDir } from './storage-dir';
import { BlobStore } from './firmware/blob-store';
import { Catalogue, DEFAULT_MAX_IMAGE_BYTES } from './firmware/catalogue';
import { DEFAULT_URL_TTL_SECONDS, signedPath } from './firmware/url-signing';
import { DeviceRegistry } from './devices';
import { RolloutStore } from './device-updates/device-states';
import { FirmwareRecord, OtaError } from './types';

// The OTA repository: everything the nodes share, in one storage directory.
//   catalogue.json        firmware records         blobs/xx/<sha256>   image bytes
//   devices.json          device list              device-states.json  rollout state
//   secret.key            URL-signing secret, unless the config node supplies one
// Directories 0700, files 0600: images and device data are the owner's alone.

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
  readonly secret: Buffer;
  readonly blobs: BlobStore;
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

  constructor(options: RepositoryOptions) {
    super();
    this.dir = path.resolve(options.dir);
    // 0700/0600, and no temp file of a killed upload left behind (storage-dir.ts).
    this.removedTempFiles = prepareStorageDir(this.dir).removedTempFiles;
    this.now = options.now ?? (() => new Date());
    this.secret = options.secret ? Buffer.from(options.secret, 'utf8') : loadOrCreateSecret(this.dir);
    this.blobs = new BlobStore(path.join(this.dir, 'blobs'));
    this.firmware = new Catalogue(this.dir, this.blobs, options.maxImageBytes ?? DEFAULT_MAX_IMAGE_BYTES);
    this.devices = new DeviceRegistry(this.dir, this.secret);
    this.rollout = new RolloutStore(this.dir, this.now);
    // Records an older version made for ids nobody registered (reports from any client on the
    // broker): no assignment, no device, nothing to keep.
    for (const s of [...this.rollout.records()]) if (!s.firmware && !this.devices.get(s.device)) this.rollout.forget(s.device);
    this.urlTtlSeconds = options.urlTtlSeconds ?? DEFAULT_URL_TTL_SECONDS;
    this.downloadPath = options.downloadPath ?? DEFAULT_DOWNLOAD_PATH;
    this.publicUrl = (options.publicUrl ?? '').replace(/\/+$/, '');
    this.setMaxListeners(0);
  }

  /** A per-device download URL for a firmware, signed, expiring after urlTtlSeconds. */
  downloadUrl(firmware: FirmwareRecord, device: string): string {
    const expires = Math.floor(this.now().getTime() / 1000) + this.urlTtlSeconds;
    return this.publicUrl + signedPath(this.secret, this.downloadPath, { firmware: firmware.id, device, expires });
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
}
