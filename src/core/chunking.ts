import { createHash } from 'crypto';
import { FirmwareRecord, OtaError } from './types';

// Chunk maths, the in-memory image cache and the ThingsBoard request state. Images are immutable
// and content-addressed, so a chunk is a pure function of (image, index, size) and one cached copy
// serves every device. Everything here is bounded: a device cannot grow memory without limit.

export const DEFAULT_CACHE_BYTES = 64 * 1024 * 1024;
export const DEFAULT_MAX_SESSIONS = 10000;

/** Bytes [size*index, size*index+size) of the image, as a view (no copy); empty past the end. */
export function chunkOf(image: Buffer, index: number, size: number): Buffer {
  const start = size * index;
  if (!Number.isSafeInteger(start) || start >= image.length) return image.subarray(0, 0);
  return image.subarray(start, Math.min(image.length, start + size));
}

export function chunkCount(total: number, size: number): number {
  return size > 0 ? Math.ceil(total / size) : 0;
}

/** Percent of the image a device holds once it has chunk `index` of `size` bytes. */
export function percentAfter(total: number, index: number, size: number): number {
  if (total <= 0) return 100;
  const end = Math.min(total, size * (index + 1));
  return Math.floor((end / total) * 100);
}

type Loader = (record: FirmwareRecord) => Promise<Buffer>;

/** Least-recently-used images, bounded in bytes; one copy per image (keyed by SHA-256). */
export class ImageCache {
  private readonly images = new Map<string, Buffer>();
  private readonly loading = new Map<string, Promise<Buffer>>();
  private bytes = 0;
  /** The most recently used key: touching it again changes nothing (the common case, per chunk). */
  private newest: string | undefined;

  constructor(
    private readonly load: Loader,
    public maxBytes = DEFAULT_CACHE_BYTES,
  ) {}

  get size(): number {
    return this.bytes;
  }

  get count(): number {
    return this.images.size;
  }

  /** The image if cached (and marks it recently used); undefined otherwise. */
  peek(record: FirmwareRecord): Buffer | undefined {
    const key = record.checksums.sha256;
    const image = this.images.get(key);
    if (image && key !== this.newest) {
      this.images.delete(key);
      this.images.set(key, image);
      this.newest = key;
    }
    return image;
  }

  /** The image, loaded once however many callers ask at the same time. */
  get(record: FirmwareRecord): Promise<Buffer> {
    const hit = this.peek(record);
    if (hit) return Promise.resolve(hit);
    const key = record.checksums.sha256;
    let pending = this.loading.get(key);
    if (!pending) {
      pending = this.load(record).then(
        (image) => {
          this.loading.delete(key);
          // Checked once per load, never per chunk: a damaged blob must not reach devices.
          if (image.length !== record.size || createHash('sha256').update(image).digest('hex') !== key) {
            throw new OtaError('corrupt_image', `the stored image of ${record.title} ${record.version} does not match its SHA-256`, 'firmware');
          }
          this.insert(key, image);
          return image;
        },
        (err: Error) => {
          this.loading.delete(key);
          throw new OtaError('missing_image', `cannot read the image of ${record.title} ${record.version}: ${err.message}`, 'firmware');
        },
      );
      this.loading.set(key, pending);
    }
    return pending;
  }

  private insert(key: string, image: Buffer): void {
    this.images.set(key, image);
    this.newest = key;
    this.bytes += image.length;
    // Evict least recently used; an image larger than the bound stays alone rather than being
    // read from disk for every chunk.
    for (const [k, v] of this.images) {
      if (this.bytes <= this.maxBytes || k === key) break;
      this.images.delete(k);
      this.bytes -= v.length;
    }
  }

  /** Drops an image (deleted firmware). */
  drop(sha256: string): void {
    const image = this.images.get(sha256);
    if (sha256 === this.newest) this.newest = undefined;
    if (image) {
      this.images.delete(sha256);
      this.bytes -= image.length;
    }
  }

  clear(): void {
    this.images.clear();
    this.bytes = 0;
    this.newest = undefined;
  }
}

/** What was last reported of a download: the percent, when, and whether the last chunk went out. */
export interface ProgressMemory {
  lastPercent?: number;
  lastAt?: number;
  done?: boolean;
}

/** A ThingsBoard download in progress: which firmware its requestId pinned, and the last chunk size. */
export interface Session extends ProgressMemory {
  requestId: string;
  firmwareId: string;
  lastSize?: number;
}

/**
 * One session per device (the latest requestId), least recently used evicted past the bound. A
 * new requestId replaces the device's session, so cycling requestIds costs nothing.
 */
export class RequestState {
  private readonly sessions = new Map<string, Session>();
  /** The device touched last: a device fetching chunks in a row costs no reordering. */
  private newest: string | undefined;

  constructor(public maxSessions = DEFAULT_MAX_SESSIONS) {}

  get count(): number {
    return this.sessions.size;
  }

  get(device: string, requestId: string): Session | undefined {
    const s = this.sessions.get(device);
    if (!s || s.requestId !== requestId) return undefined;
    if (device !== this.newest) {
      this.sessions.delete(device);
      this.sessions.set(device, s);
      this.newest = device;
    }
    return s;
  }

  start(device: string, requestId: string, firmwareId: string): Session {
    const s: Session = { requestId, firmwareId };
    this.sessions.delete(device);
    this.sessions.set(device, s);
    this.newest = device;
    while (this.sessions.size > this.maxSessions) {
      const oldest = this.sessions.keys().next().value as string;
      this.sessions.delete(oldest);
    }
    return s;
  }

  end(device: string): void {
    this.sessions.delete(device);
    if (device === this.newest) this.newest = undefined;
  }
}

/** What the nodes of one repository share for delivery: one cache, one request state. */
export interface Delivery {
  cache: ImageCache;
  requests: RequestState;
  /** Set once a chunk-server has configured the cache bound (later ones may only raise it). */
  cacheBoundSet?: boolean;
}

const deliveries = new WeakMap<object, Delivery>();

/** The delivery state of a repository, created on first use; `loader` reads a blob. */
export function deliveryFor(owner: object, loader: Loader): Delivery {
  let d = deliveries.get(owner);
  if (!d) {
    d = { cache: new ImageCache(loader), requests: new RequestState() };
    deliveries.set(owner, d);
  }
  return d;
}
