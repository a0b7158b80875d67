import { promises as fsp } from 'fs';
import * as fs from 'fs';
import * as path from 'path';
import { randomBytes } from 'crypto';

// Writes never leave a half-written file behind: write a temp file beside the target, flush it,
// then rename over the target (rename is atomic on one filesystem).

// Files are the owner's alone (0600, directories 0700): see storage-dir.ts. A temp file names its
// writer's process id, so that a process opening the directory removes only orphans.

function tempPathFor(file: string): string {
  return path.join(path.dirname(file), `.${path.basename(file)}.${process.pid}.${randomBytes(4).toString('hex')}.tmp`);
}

/** True for a name `tempPathFor` makes. */
export function isTempFile(name: string): boolean {
  return /^\..+\.\d+\.[0-9a-f]{8}\.tmp$/.test(name);
}

export async function writeFileAtomic(file: string, data: Buffer | string, mode = 0o600): Promise<void> {
  await fsp.mkdir(path.dirname(file), { recursive: true, mode: 0o700 });
  const temp = tempPathFor(file);
  const handle = await fsp.open(temp, 'w', mode);
  try {
    await handle.writeFile(data);
    await handle.sync();
  } finally {
    await handle.close();
  }
  try {
    await fsp.rename(temp, file);
  } catch (err) {
    await fsp.rm(temp, { force: true });
    throw err;
  }
}

export function writeFileAtomicSync(file: string, data: Buffer | string, mode = 0o600): void {
  fs.mkdirSync(path.dirname(file), { recursive: true, mode: 0o700 });
  const temp = tempPathFor(file);
  const fd = fs.openSync(temp, 'w', mode);
  try {
    fs.writeFileSync(fd, data);
    fs.fsyncSync(fd);
  } finally {
    fs.closeSync(fd);
  }
  try {
    fs.renameSync(temp, file);
  } catch (err) {
    fs.rmSync(temp, { force: true });
    throw err;
  }
}

/** Reads a JSON file, or returns `fallback` when it does not exist yet. */
export function readJsonSync<T>(file: string, fallback: T): T {
  let text: string;
  try {
    text = fs.readFileSync(file, 'utf8');
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return fallback;
    throw err;
  }
  return JSON.parse(text) as T;
}

/**
 * Serialises writes of one JSON document: callers say "the state changed" as often as they like,
 * and at most one write is in flight, always of the newest state. With `minIntervalMs`, writes
 * are also spaced out: a fleet of 10,000 devices reporting progress rewrites a 4 MB file at most
 * that often, not once per event. `flush()` writes at once (close, shutdown, tests).
 */
export class JsonDocument<T> {
  private writing: Promise<void> | null = null;
  private dirty = false;
  private urgent = false;
  private lastWrite = 0;
  private wake: (() => void) | null = null;

  constructor(
    readonly file: string,
    private readonly snapshot: () => T,
    private readonly mode = 0o600,
    private readonly minIntervalMs = 0,
  ) {}

  /** Schedules a write of the current state; resolves once a write that includes it has landed. */
  save(): Promise<void> {
    this.dirty = true;
    if (!this.writing) this.writing = this.drain();
    return this.writing;
  }

  /** Writes any pending state now, and resolves when no write is pending. */
  async flush(): Promise<void> {
    this.urgent = true;
    this.wake?.();
    try {
      while (this.writing) await this.writing;
    } finally {
      this.urgent = false;
    }
  }

  private async drain(): Promise<void> {
    try {
      while (this.dirty) {
        const wait = this.lastWrite + this.minIntervalMs - Date.now();
        if (wait > 0 && !this.urgent) {
          await new Promise<void>((resolve) => {
            const timer = setTimeout(resolve, wait);
            this.wake = () => {
              clearTimeout(timer);
              resolve();
            };
          });
          this.wake = null;
        }
        this.dirty = false;
        await writeFileAtomic(this.file, JSON.stringify(this.snapshot(), null, 1), this.mode);
        this.lastWrite = Date.now();
      }
    } finally {
      this.writing = null;
    }
  }
}
