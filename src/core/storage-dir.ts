import * as fs from 'fs';
import * as path from 'path';
import { isAlive } from './file-lock';
import { isTempFile } from './atomic-file';

// The storage directory holds images, device tokens (as HMACs) and the URL-signing secret: only
// its owner reads it. Opening it also repairs what older versions or a killed process left:
// modes from before (0755 directories, 0644 files) and temp files of writes that never finished.

export const DIR_MODE = 0o700;
export const FILE_MODE = 0o600;

/** A temp file older than this is an orphan even if its writer's process id was reused. */
const ORPHAN_AGE_MS = 60 * 60 * 1000;

/** Creates `dir` if needed, tightens every mode under it and removes orphaned temp files. */
export function prepareStorageDir(dir: string): { removedTempFiles: string[] } {
  fs.mkdirSync(dir, { recursive: true, mode: DIR_MODE });
  const removedTempFiles: string[] = [];
  const walk = (current: string) => {
    fs.chmodSync(current, DIR_MODE);
    for (const entry of fs.readdirSync(current, { withFileTypes: true })) {
      const full = path.join(current, entry.name);
      // Never follow a link out of the directory, nor change what it points at.
      if (entry.isSymbolicLink()) continue;
      if (entry.isDirectory()) walk(full);
      else if (entry.isFile()) {
        if (isTempFile(entry.name) && isOrphan(full, entry.name)) {
          fs.rmSync(full, { force: true });
          removedTempFiles.push(full);
        } else fs.chmodSync(full, FILE_MODE);
      }
    }
  };
  walk(dir);
  return { removedTempFiles };
}

/** A temp file whose writer is gone (another process sharing the directory may be mid-write). */
function isOrphan(file: string, name: string): boolean {
  const pid = Number(/\.(\d+)\.[0-9a-f]+\.tmp$/.exec(name)?.[1]);
  if (pid === process.pid) return false;
  if (!isAlive(pid)) return true;
  return Date.now() - fs.statSync(file).mtimeMs > ORPHAN_AGE_MS;
}
