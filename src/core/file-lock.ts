import { promises as fsp } from 'fs';
import * as os from 'os';
import { randomBytes } from 'crypto';

// A lock between processes sharing a storage directory (Node-RED and the ota-gateway command
// line both write devices.json): a lock file created with O_EXCL, which only one process can
// create. A holder that died leaves its file behind, so a lock is stale when its process is
// gone (same host) or when it is older than `staleMs` (holds last milliseconds: a read and an
// atomic write of one JSON file).

export interface FileLockOptions {
  /** A lock file older than this is taken over (default 10 s). */
  staleMs?: number;
  /** Give up after this long (default 15 s). */
  timeoutMs?: number;
}

const RETRY_MS = 5;

export async function withFileLock<T>(lockFile: string, fn: () => Promise<T>, options: FileLockOptions = {}): Promise<T> {
  await acquire(lockFile, options.staleMs ?? 10_000, options.timeoutMs ?? 15_000);
  try {
    return await fn();
  } finally {
    await fsp.rm(lockFile, { force: true });
  }
}

async function acquire(lockFile: string, staleMs: number, timeoutMs: number): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  const owner = `${process.pid} ${os.hostname()}`;
  for (;;) {
    try {
      const handle = await fsp.open(lockFile, 'wx', 0o600);
      try {
        await handle.writeFile(owner);
      } finally {
        await handle.close();
      }
      return;
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'EEXIST') throw err;
    }
    const stale = await staleOwner(lockFile, staleMs);
    if (stale !== null) {
      await takeOver(lockFile, stale);
      continue;
    }
    if (Date.now() > deadline) throw new Error(`${lockFile} is held by another process for over ${timeoutMs} ms`);
    await new Promise((resolve) => setTimeout(resolve, RETRY_MS + Math.random() * RETRY_MS));
  }
}

/**
 * Moves a stale lock aside. Two waiters may both judge it stale, and the slower one would then
 * move the faster one's fresh lock: it sees the owner differs and links it back (link fails
 * rather than overwrite, so no third lock is lost either).
 */
async function takeOver(lockFile: string, staleText: string): Promise<void> {
  const aside = `${lockFile}.${process.pid}.${randomBytes(4).toString('hex')}.stale`;
  try {
    await fsp.rename(lockFile, aside);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return;
    throw err;
  }
  try {
    if ((await fsp.readFile(aside, 'utf8')) !== staleText) await fsp.link(aside, lockFile).catch(() => undefined);
  } finally {
    await fsp.rm(aside, { force: true });
  }
}

/** The stale lock's content, or null when the lock is live (or gone). */
async function staleOwner(lockFile: string, staleMs: number): Promise<string | null> {
  let text: string;
  let mtimeMs: number;
  try {
    [text, { mtimeMs }] = await Promise.all([fsp.readFile(lockFile, 'utf8'), fsp.stat(lockFile)]);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return null;
    throw err;
  }
  const [pid, host] = text.split(' ');
  const dead = host === os.hostname() && Number(pid) > 0 && !isAlive(Number(pid));
  return dead || Date.now() - mtimeMs > staleMs ? text : null;
}

/** True when a process with this id exists on this host. */
export function isAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === 'EPERM';
  }
}
