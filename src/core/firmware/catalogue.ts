import * as path from 'path';
import { createHash } from 'crypto';
import * as semver from 'semver';
import { JsonDocument, readJsonSync } from '../atomic-file';
import { FirmwareRecord, OtaError } from '../types';
import { computeChecksums } from './checksums';
import { readEspAppDescription } from './esp-app-desc';
import type { Blobs, DocumentSink } from '../storage/backend';

export const DEFAULT_MAX_IMAGE_BYTES = 16 * 1024 * 1024;
const MAX_TITLE_LENGTH = 128;
const MAX_TAG_LENGTH = 128;
const MAX_VERSION_LENGTH = 64;

export interface FirmwareInput {
  image: Buffer;
  title?: string;
  version?: string;
  tag?: string;
  deviceType?: string;
  /** Where title and version came from when given ('msg' unless the caller says 'defaults'). */
  source?: 'msg' | 'defaults';
}

export interface StoreResult {
  record: FirmwareRecord;
  /** False when the same title, version and bytes were already stored (an idempotent repeat). */
  created: boolean;
}

/** The id of a title and version: stable, opaque, safe in topics, URLs and file names. */
export function firmwareId(title: string, version: string): string {
  return createHash('sha256').update(`${title}\u0000${version}`).digest('hex').slice(0, 16);
}

// Control characters (C0, DEL, C1) and the Unicode line and paragraph separators would corrupt
// topics, JSON notices and log lines.
// eslint-disable-next-line no-control-regex
const CONTROL = /[\u0000-\u001f\u007f-\u009f\u2028\u2029]/;

/**
 * The one check every name goes through, typed in (msg, query, form) or read from the image
 * (ESP-IDF project_name and version): `origin` says where it came from in the error.
 */
export function cleanText(value: unknown, field: string, max: number, origin?: string): string | undefined {
  if (value === undefined || value === null || value === '') return undefined;
  const label = origin ? `${field} (${origin})` : field;
  if (typeof value !== 'string') throw new OtaError('bad_field', `${label} must be a string`, field);
  const text = value.trim();
  if (CONTROL.test(text)) throw new OtaError('bad_field', `${label} contains control characters`, field);
  if (text.length > max) throw new OtaError('bad_field', `${label} is longer than ${max} characters`, field);
  return text || undefined;
}

/** Where a catalogue on a shared backend starts from, and how it writes (storage/backend.ts). */
export interface CatalogueBackend {
  records: FirmwareRecord[];
  sink(list: () => FirmwareRecord[]): DocumentSink;
}

/** The firmware catalogue: records in catalogue.json (or a backend's rows), bytes in the blob store. */
export class Catalogue {
  private readonly records = new Map<string, FirmwareRecord>();
  private readonly doc: DocumentSink;
  /** The tail of the write queue: stores and removals run one at a time (see serially). */
  private writes: Promise<unknown> = Promise.resolve();

  constructor(
    dir: string,
    readonly blobs: Blobs,
    readonly maxImageBytes = DEFAULT_MAX_IMAGE_BYTES,
    backend?: CatalogueBackend,
  ) {
    const file = path.join(dir, 'catalogue.json');
    for (const record of backend ? backend.records : readJsonSync<FirmwareRecord[]>(file, [])) this.records.set(record.id, record);
    this.doc = backend ? backend.sink(() => this.list()) : new JsonDocument(file, () => this.list());
  }

  /** A record another instance stored or removed (null), as the backend announced it. */
  adopt(id: string, record: FirmwareRecord | null): void {
    if (record) this.records.set(id, record);
    else this.records.delete(id);
  }

  list(): FirmwareRecord[] {
    return [...this.records.values()].sort((a, b) => a.createdAt.localeCompare(b.createdAt));
  }

  get(id: string): FirmwareRecord | undefined {
    return this.records.get(id);
  }

  find(title: string, version: string): FirmwareRecord | undefined {
    return this.records.get(firmwareId(title, version));
  }

  /** Resolves an id, or a {title, version} pair, to a record; throws a clear error otherwise. */
  resolve(ref: string | { id?: string; title?: string; version?: string }): FirmwareRecord {
    const record =
      typeof ref === 'string'
        ? this.records.get(ref)
        : ref.id
          ? this.records.get(ref.id)
          : ref.title && ref.version
            ? this.find(ref.title, ref.version)
            : undefined;
    if (!record) {
      const label = typeof ref === 'string' ? ref : ref.id ?? `${ref.title ?? '?'} ${ref.version ?? '?'}`;
      throw new OtaError('unknown_firmware', `unknown firmware: ${label}`, 'firmware');
    }
    return record;
  }

  async store(input: FirmwareInput): Promise<StoreResult> {
    const image = input.image;
    if (!Buffer.isBuffer(image)) throw new OtaError('bad_image', 'the image must be a Buffer (msg.payload)', 'payload');
    if (image.length === 0) throw new OtaError('empty_image', 'the image is empty', 'payload');
    if (image.length > this.maxImageBytes) {
      throw new OtaError('image_too_large', `the image is ${image.length} bytes, over the limit of ${this.maxImageBytes}`, 'payload');
    }
    let title = cleanText(input.title, 'title', MAX_TITLE_LENGTH);
    let version = cleanText(input.version, 'version', MAX_VERSION_LENGTH);
    let source: FirmwareRecord['source'] = input.source ?? 'msg';
    if (!title || !version) {
      const desc = readEspAppDescription(image);
      if (desc) {
        title = title ?? cleanText(desc.projectName, 'title', MAX_TITLE_LENGTH, "the image's ESP-IDF project_name");
        version = version ?? cleanText(desc.version, 'version', MAX_VERSION_LENGTH, "the image's ESP-IDF version");
        source = 'esp-app-desc';
      }
    }
    if (!title) throw new OtaError('missing_title', 'the firmware needs a title (msg.firmware.title)', 'title');
    if (!version) throw new OtaError('missing_version', 'the firmware needs a version (msg.firmware.version)', 'version');
    const clean = semver.valid(semver.clean(version) ?? version);
    if (!clean) {
      throw new OtaError('bad_version', `"${version}" is not a semantic version (major.minor.patch, e.g. 1.4.2)`, 'version');
    }
    const tag = cleanText(input.tag, 'tag', MAX_TAG_LENGTH) ?? `${title} ${clean}`;
    const deviceType = cleanText(input.deviceType, 'deviceType', MAX_TITLE_LENGTH);
    const id = firmwareId(title, clean);
    const checksums = computeChecksums(image);
    const stored = await this.serially(async () => {
      const existing = this.records.get(id);
      if (existing) {
        if (existing.checksums.sha256 === checksums.sha256) return { record: existing, created: false };
        throw new OtaError(
          'version_conflict',
          `${title} ${clean} is already stored with different bytes (sha256 ${existing.checksums.sha256.slice(0, 12)}…); give the new image a new version`,
          'version',
        );
      }
      await this.blobs.put(image);
      const record: FirmwareRecord = {
        id,
        title,
        version: clean,
        tag,
        ...(deviceType ? { deviceType } : {}),
        size: image.length,
        checksums,
        source,
        createdAt: new Date().toISOString(),
      };
      this.records.set(id, record);
      return { record, created: true };
    });
    if (!stored.created) return stored;
    // Outside the queue, so that a burst of stores shares one write of catalogue.json.
    try {
      await this.doc.save();
    } catch (err) {
      // Not on disk: not stored. The blob goes too unless another record has the same bytes.
      await this.serially(async () => {
        if (this.records.get(id) === stored.record) this.records.delete(id);
        await this.removeBlobUnlessShared(checksums.sha256);
      });
      throw err;
    }
    return stored;
  }

  /**
   * Runs catalogue writes one at a time. A store checks for the version, writes the blob and
   * then the record, with awaits in between: two uploads of one version with different bytes
   * would both pass the check, both get "created", and the first one's blob would be left with
   * no record. Queued, the second sees the first's record and gets a version conflict.
   */
  private serially<T>(work: () => Promise<T>): Promise<T> {
    const run = this.writes.then(work, work);
    this.writes = run.catch(() => undefined);
    return run;
  }

  private async removeBlobUnlessShared(sha256: string): Promise<void> {
    const shared = [...this.records.values()].some((r) => r.checksums.sha256 === sha256);
    if (!shared) await this.blobs.remove(sha256);
  }

  /** Removes a record; the blob goes too unless another record has the same bytes. */
  remove(id: string): Promise<FirmwareRecord> {
    return this.serially(async () => {
      const record = this.resolve(id);
      this.records.delete(record.id);
      await this.doc.save();
      await this.removeBlobUnlessShared(record.checksums.sha256);
      return record;
    });
  }

  read(record: FirmwareRecord): Promise<Buffer> {
    return this.blobs.read(record.checksums.sha256);
  }

  blobPath(record: FirmwareRecord): string {
    return this.blobs.pathOf(record.checksums.sha256);
  }

  /** Waits for queued stores and removals, then for the catalogue file. */
  async flush(): Promise<void> {
    await this.writes;
    await this.doc.flush();
  }
}
