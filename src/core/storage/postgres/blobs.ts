import * as fs from 'fs';
import { promises as fsp } from 'fs';
import * as path from 'path';
import { createHash } from 'crypto';
import type { Pool } from 'pg';
import { writeFileAtomic } from '../../atomic-file';
import type { Blobs } from '../backend';

// Images live in the database (ota_blobs), and each instance keeps a copy of those it served in
// a cache directory of its own. A cached file is trusted only once its SHA-256 matches its name
// (checked on first use by this process): a truncated or tampered copy is fetched again.

const SHA256_HEX = /^[0-9a-f]{64}$/;

function sha256(data: Buffer): string {
  return createHash('sha256').update(data).digest('hex');
}

export class PostgresBlobs implements Blobs {
  /** Cached files this process has checked (their bytes match their name). */
  private readonly verified = new Set<string>();

  constructor(
    private readonly pool: () => Pool,
    readonly cacheDir: string,
  ) {
    fs.mkdirSync(cacheDir, { recursive: true, mode: 0o700 });
  }

  pathOf(hash: string): string {
    if (!SHA256_HEX.test(hash)) throw new Error(`not a SHA-256 digest: ${hash}`);
    return path.join(this.cacheDir, hash.slice(0, 2), hash);
  }

  async put(data: Buffer): Promise<string> {
    const hash = sha256(data);
    await this.pool().query('INSERT INTO ota_blobs (sha256, size, data) VALUES ($1, $2, $3) ON CONFLICT (sha256) DO NOTHING', [hash, data.length, data]);
    await this.cache(hash, data);
    return hash;
  }

  /** True when this instance holds a checked copy (the download route streams it). */
  has(hash: string): boolean {
    return this.verified.has(hash) && fs.existsSync(this.pathOf(hash));
  }

  async read(hash: string): Promise<Buffer> {
    const file = this.pathOf(hash);
    try {
      const data = await fsp.readFile(file);
      if (this.verified.has(hash) || sha256(data) === hash) {
        this.verified.add(hash);
        return data;
      }
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw err;
    }
    this.verified.delete(hash);
    const { rows } = await this.pool().query<{ data: Buffer }>('SELECT data FROM ota_blobs WHERE sha256 = $1', [hash]);
    if (!rows[0]) throw Object.assign(new Error(`image ${hash.slice(0, 12)}… is not in the database`), { code: 'ENOENT' });
    const data = rows[0].data;
    if (sha256(data) !== hash) throw new Error(`image ${hash.slice(0, 12)}… in the database does not match its SHA-256`);
    await this.cache(hash, data);
    return data;
  }

  private async cache(hash: string, data: Buffer): Promise<void> {
    await writeFileAtomic(this.pathOf(hash), data);
    this.verified.add(hash);
  }

  async remove(hash: string): Promise<void> {
    // Another instance may have stored a record with the same bytes since: keep the row then.
    await this.pool().query('DELETE FROM ota_blobs b WHERE sha256 = $1 AND NOT EXISTS (SELECT 1 FROM ota_firmware f WHERE f.sha256 = b.sha256)', [hash]);
    this.verified.delete(hash);
    await fsp.rm(this.pathOf(hash), { force: true });
  }
}
