import * as fs from 'fs';
import * as path from 'path';
import { EventEmitter } from 'events';
import { createHmac, randomBytes, timingSafeEqual } from 'crypto';
import { readJsonSync, writeFileAtomic } from './atomic-file';
import { withFileLock } from './file-lock';
import { parseDeviceSecret } from './dialects/tencent-identity';
import { seal, unseal } from './sealed-secret';
import type { DeviceSink } from './storage/backend';
import { DeviceAttributes, DeviceRecord, DialectName, OtaError, isDialectName, DIALECTS } from './types';

// The device list every node works from. Ids and attributes end up inside MQTT topics, so they
// are restricted to characters that cannot add a topic level or a wildcard.
// `.` and `..` are refused: they are path segments, so a download URL naming such a device
// (`/ota/dl/{firmware}/..`) or a route (`/ota/devices/..`) resolves somewhere else.
const TOPIC_SAFE = /^(?!\.\.?$)[A-Za-z0-9._:@-]{1,128}$/;
const TOPIC_SAFE_RULE = '1-128 characters of letters, digits and . _ : @ -, and not . or ..';
const TAG = /^[A-Za-z0-9._:@ -]{1,64}$/;

export interface DeviceInput {
  id: unknown;
  dialect: unknown;
  token?: unknown;
  /** Tencent device secret (base64, as the console shows it); kept sealed, never shown. */
  deviceSecret?: unknown;
  attributes?: unknown;
  tags?: unknown;
}

export function isTopicSafe(value: string): boolean {
  return TOPIC_SAFE.test(value);
}

/** One record changed, here or by another process sharing the directory ('change' event). */
export interface DeviceChange {
  id: string;
  before?: DeviceRecord;
  after?: DeviceRecord;
}

/**
 * The device list, kept in `devices.json`. Node-RED and the ota-gateway command line may share the
 * directory, so every write is a read-modify-write under a lock file, merged record by record:
 * neither process erases the other's devices. `watch()` picks up the other's writes; every
 * record that changes, either way, is announced with a 'change' event (the gateway closes the
 * connections of a device deleted or given a new token).
 */
export class DeviceRegistry extends EventEmitter {
  private readonly devices = new Map<string, DeviceRecord>();
  private readonly byTokenHash = new Map<string, string>();
  private readonly file: string;
  /** Records changed here and not yet on disk: the record, or null for a deletion. */
  private pending = new Map<string, DeviceRecord | null>();
  private writing: Promise<void> = Promise.resolve();
  private watching = false;

  /** Given a shared backend (storage/backend.ts), records are written there, not to devices.json. */
  private readonly sink?: DeviceSink;
  private readonly key: () => Buffer;

  constructor(
    dir: string,
    secret: Buffer | (() => Buffer),
    backend?: { records: DeviceRecord[]; sink: DeviceSink },
  ) {
    super();
    this.setMaxListeners(0);
    this.file = path.join(dir, 'devices.json');
    this.key = typeof secret === 'function' ? secret : () => secret;
    this.sink = backend?.sink;
    for (const record of backend ? backend.records : readJsonSync<DeviceRecord[]>(this.file, [])) this.index(record);
  }

  /** A record another instance changed (null: deleted); this instance's unwritten change wins. */
  adoptOne(id: string, record: DeviceRecord | null): void {
    if (!this.pending.has(id)) this.apply(id, record);
  }

  /** The whole list as another store holds it now (a backend's reload after a lost connection). */
  adoptAll(records: DeviceRecord[]): void {
    this.adopt(records);
  }

  private index(record: DeviceRecord): void {
    this.devices.set(record.id, record);
    if (record.tokenHash) this.byTokenHash.set(record.tokenHash, record.id);
  }

  /** Puts `record` (or a deletion) in memory and announces it when it differs. */
  private apply(id: string, record: DeviceRecord | null): void {
    const before = this.devices.get(id);
    if (JSON.stringify(before ?? null) === JSON.stringify(record)) return;
    if (before?.tokenHash && this.byTokenHash.get(before.tokenHash) === id) this.byTokenHash.delete(before.tokenHash);
    if (record) this.index(record);
    else this.devices.delete(id);
    const change: DeviceChange = { id, ...(before ? { before } : {}), ...(record ? { after: record } : {}) };
    this.emit('change', change);
  }

  /** Takes the list on disk as it is now, with this process's unwritten changes on top. */
  private adopt(onDisk: DeviceRecord[]): void {
    const disk = new Map(onDisk.map((r) => [r.id, r]));
    for (const id of new Set([...this.devices.keys(), ...disk.keys()])) {
      this.apply(id, this.pending.has(id) ? (this.pending.get(id) as DeviceRecord | null) : (disk.get(id) ?? null));
    }
  }

  /** Re-reads devices.json (another process may have written it). */
  reload(): void {
    if (this.sink) return; // a shared backend announces changes itself
    this.adopt(readJsonSync<DeviceRecord[]>(this.file, []));
  }

  /**
   * Follows devices.json for other processes' writes, polling every `intervalMs` (a stat, so
   * it also works on filesystems without change notifications). Errors go to 'reloadError'.
   */
  watch(intervalMs = 250): void {
    if (this.watching || this.sink) return;
    this.watching = true;
    fs.watchFile(this.file, { interval: intervalMs, persistent: false }, () => {
      try {
        this.reload();
      } catch (err) {
        this.emit('reloadError', err);
      }
    });
  }

  unwatch(): void {
    if (!this.watching) return;
    this.watching = false;
    fs.unwatchFile(this.file);
  }

  /** Queues one record's change for disk; resolves once a write holding it has landed. */
  private persist(id: string, record: DeviceRecord | null): Promise<void> {
    this.pending.set(id, record);
    const run = this.writing.then(() => this.writeMerged());
    this.writing = run.catch(() => undefined);
    return run;
  }

  private async writeMerged(): Promise<void> {
    if (this.pending.size === 0) return;
    const ops = this.pending;
    this.pending = new Map();
    try {
      if (this.sink) {
        await this.sink.write(ops);
        return;
      }
      await withFileLock(`${this.file}.lock`, async () => {
        const merged = new Map(readJsonSync<DeviceRecord[]>(this.file, []).map((r) => [r.id, r]));
        for (const [id, record] of ops) {
          if (record) merged.set(id, record);
          else merged.delete(id);
        }
        const list = [...merged.values()].sort((a, b) => a.id.localeCompare(b.id));
        await writeFileAtomic(this.file, JSON.stringify(list, null, 1), 0o600);
        this.adopt(list);
      });
    } catch (err) {
      // Not on disk: keep the changes for the next write (a newer change to a record wins).
      for (const [id, record] of ops) if (!this.pending.has(id)) this.pending.set(id, record);
      throw err;
    }
  }

  /** Tokens are kept only as an HMAC under the repository secret, like a password hash. */
  hashToken(token: string): string {
    return createHmac('sha256', this.key()).update(token).digest('hex');
  }

  /** How many devices are registered. */
  get size(): number {
    return this.devices.size;
  }

  list(): DeviceRecord[] {
    return [...this.devices.values()].sort((a, b) => a.id.localeCompare(b.id));
  }

  get(id: string): DeviceRecord | undefined {
    return this.devices.get(id);
  }

  require(id: string): DeviceRecord {
    const device = this.devices.get(id);
    if (!device) throw new OtaError('unknown_device', `unknown device: ${id}`, 'device');
    return device;
  }

  withTag(tag: string): DeviceRecord[] {
    return this.list().filter((d) => d.tags.includes(tag));
  }

  /** The device a token belongs to (ThingsBoard and TagoIO devices log in with a token). */
  byToken(token: string): DeviceRecord | undefined {
    const id = this.byTokenHash.get(this.hashToken(token));
    return id ? this.devices.get(id) : undefined;
  }

  /** True when `token` is this device's token (constant time). */
  checkToken(id: string, token: string): boolean {
    const device = this.devices.get(id);
    if (!device?.tokenHash) return false;
    const a = Buffer.from(device.tokenHash, 'hex');
    const b = Buffer.from(this.hashToken(token), 'hex');
    return a.length === b.length && timingSafeEqual(a, b);
  }

  /** The key a Tencent device signs its username with, if it has one. */
  deviceSecret(id: string): Buffer | undefined {
    const device = this.devices.get(id);
    return device?.sealedSecret ? unseal(this.key(), device.id, device.sealedSecret) : undefined;
  }

  /**
   * Registers or updates a device. Returns the record and, when the caller asked for a generated
   * token (`token: true`), that token: the only time it is ever shown.
   */
  async register(input: DeviceInput): Promise<{ device: DeviceRecord; token?: string; created: boolean }> {
    const id = typeof input.id === 'string' ? input.id.trim() : '';
    if (!isTopicSafe(id)) {
      throw new OtaError('bad_field', `id must be ${TOPIC_SAFE_RULE}`, 'id');
    }
    if (!isDialectName(input.dialect)) {
      throw new OtaError('bad_field', `dialect must be one of ${DIALECTS.join(', ')}`, 'dialect');
    }
    const dialect: DialectName = input.dialect;
    const attributes = parseAttributes(input.attributes);
    const tags = parseTags(input.tags);
    let token: string | undefined;
    if (input.token === true) token = randomBytes(15).toString('base64url');
    else if (typeof input.token === 'string' && input.token !== '') {
      if (input.token.length > 256) throw new OtaError('bad_field', 'token is longer than 256 characters', 'token');
      token = input.token;
    } else if (input.token !== undefined && input.token !== null && input.token !== '') {
      throw new OtaError('bad_field', 'token must be a string (or true to generate one)', 'token');
    }
    const tokenHash = token ? this.hashToken(token) : undefined;
    let sealedSecret: string | undefined;
    if (input.deviceSecret !== undefined && input.deviceSecret !== null && input.deviceSecret !== '') {
      if (dialect !== 'tencent') throw new OtaError('bad_field', 'deviceSecret is for Tencent devices (their signed username)', 'deviceSecret');
      sealedSecret = seal(this.key(), id, parseDeviceSecret(input.deviceSecret));
    }
    const owner = tokenHash ? this.byTokenHash.get(tokenHash) : undefined;
    if (owner && owner !== id) throw new OtaError('token_in_use', 'that token already belongs to another device', 'token');

    const previous = this.devices.get(id);
    const device: DeviceRecord = {
      id,
      dialect,
      ...(tokenHash ? { tokenHash } : previous?.tokenHash ? { tokenHash: previous.tokenHash } : {}),
      ...(sealedSecret ? { sealedSecret } : previous?.sealedSecret && dialect === 'tencent' ? { sealedSecret: previous.sealedSecret } : {}),
      attributes,
      tags,
      createdAt: previous?.createdAt ?? new Date().toISOString(),
    };
    this.apply(id, device);
    await this.persist(id, device);
    return { device, ...(input.token === true ? { token } : {}), created: !previous };
  }

  async remove(id: string): Promise<DeviceRecord> {
    const device = this.require(id);
    this.apply(id, null);
    await this.persist(id, null);
    return device;
  }

  /** Resolves once every change made so far is on disk. */
  async flush(): Promise<void> {
    while (this.pending.size > 0) await this.writing.then(() => this.writeMerged());
    await this.writing;
  }
}

function parseAttributes(value: unknown): DeviceAttributes {
  if (value === undefined || value === null) return {};
  if (typeof value !== 'object' || Array.isArray(value)) throw new OtaError('bad_field', 'attributes must be an object', 'attributes');
  const out: DeviceAttributes = {};
  for (const [key, v] of Object.entries(value as Record<string, unknown>)) {
    if (v === undefined || v === null || v === '') continue;
    if (typeof v !== 'string' || !isTopicSafe(v)) {
      throw new OtaError('bad_field', `attributes.${key} must be ${TOPIC_SAFE_RULE}`, `attributes.${key}`);
    }
    out[key] = v;
  }
  return out;
}

function parseTags(value: unknown): string[] {
  if (value === undefined || value === null || value === '') return [];
  const list = typeof value === 'string' ? value.split(',').map((t) => t.trim()).filter(Boolean) : value;
  if (!Array.isArray(list) || !list.every((t) => typeof t === 'string' && TAG.test(t))) {
    throw new OtaError('bad_field', 'tags must be a list of short names', 'tags');
  }
  return [...new Set(list as string[])];
}
