import * as fs from 'fs';
import * as path from 'path';
import { createHash } from 'crypto';
import { readJsonSync, writeFileAtomic } from '../atomic-file';
import { prepareStorageDir } from '../storage-dir';
import { BlobStore } from '../firmware/blob-store';
import { FileRolloutPersistence } from '../rollouts/persistence';
import type { DeviceRecord, FirmwareRecord } from '../types';
import type { DeviceState } from '../device-updates/device-states';
import type { StorageSnapshot } from './backend';
import { PostgresBackend } from './postgres/backend';

// Moves a repository between its backends, whole: a file repository (a storage directory) into
// an empty PostgreSQL database, or a database into an empty directory. Node-RED must be stopped
// while it runs (or the repository config nodes undeployed): the copy is of the store, not of a
// running instance. Tokens are HMACs under the repository secret, so the secret moves too: a
// device logs in the same before and after.

/** What a copy moved, for the command line to report. */
export interface MigrationReport {
  firmware: number;
  images: number;
  devices: number;
  states: number;
  rollouts: number;
  journal: number;
}

const DOCUMENTS = ['catalogue.json', 'devices.json', 'device-states.json', 'rollouts.json'];

function sha256(data: Buffer): string {
  return createHash('sha256').update(data).digest('hex');
}

function report(s: StorageSnapshot, images: number): MigrationReport {
  return { firmware: s.firmware.length, images, devices: s.devices.length, states: s.states.length, rollouts: s.rollouts.length, journal: s.journal.length };
}

/** Reads a storage directory as a snapshot; `secret` overrides secret.key (a config node credential). */
export function readFileRepository(dir: string, secret?: string): StorageSnapshot {
  if (!DOCUMENTS.some((d) => fs.existsSync(path.join(dir, d)))) throw new Error(`${dir} holds no OTA repository (no catalogue.json, devices.json, ...)`);
  let key = secret;
  if (!key) {
    try {
      key = fs.readFileSync(path.join(dir, 'secret.key'), 'utf8').trim();
    } catch {
      throw new Error(`no secret.key in ${dir}: give the secret the config node was given (OTA_SECRET)`);
    }
  }
  const persistence = new FileRolloutPersistence(dir);
  const journal: StorageSnapshot['journal'] = [];
  for (const [rollout, entries] of persistence.replay()) for (const e of entries) journal.push({ rollout, devices: e.devices, at: e.at });
  return {
    secret: key,
    firmware: readJsonSync<FirmwareRecord[]>(path.join(dir, 'catalogue.json'), []),
    devices: readJsonSync<DeviceRecord[]>(path.join(dir, 'devices.json'), []),
    states: readJsonSync<DeviceState[]>(path.join(dir, 'device-states.json'), []),
    rollouts: persistence.load(),
    journal,
  };
}

/** Copies a storage directory into an empty PostgreSQL database (schema created as at start). */
export async function filesToPostgres(dir: string, connectionString: string, secret?: string): Promise<MigrationReport> {
  const snapshot = readFileRepository(dir, secret);
  const blobs = new BlobStore(path.join(dir, 'blobs'));
  const images = new Map<string, Buffer>();
  for (const f of snapshot.firmware) {
    const sha = f.checksums.sha256;
    if (images.has(sha)) continue;
    const data = await blobs.read(sha);
    if (sha256(data) !== sha) throw new Error(`the image of ${f.title} ${f.version} does not match its SHA-256: not copied`);
    images.set(sha, data);
  }
  const backend = new PostgresBackend({ connectionString, cacheDir: path.join(dir, '.migrate-cache') });
  try {
    const existing = await backend.open();
    if (existing.firmware.length || existing.devices.length || existing.states.length || existing.rollouts.length) {
      throw new Error(`the database at ${backend.where} already holds a repository: copy only into an empty one`);
    }
    await backend.importSnapshot(snapshot, images);
  } finally {
    await backend.close();
    fs.rmSync(path.join(dir, '.migrate-cache'), { recursive: true, force: true });
  }
  return report(snapshot, images.size);
}

/** Copies a PostgreSQL repository into an empty (or new) storage directory. */
export async function postgresToFiles(connectionString: string, dir: string): Promise<MigrationReport> {
  if (DOCUMENTS.some((d) => fs.existsSync(path.join(dir, d)))) throw new Error(`${dir} already holds a repository: copy only into an empty directory`);
  prepareStorageDir(dir);
  const cache = path.join(dir, 'blobs');
  // The backend's image cache is laid out as the file blob store is (blobs/xx/<sha256>).
  const backend = new PostgresBackend({ connectionString, cacheDir: cache });
  let snapshot: StorageSnapshot;
  const images = new Set<string>();
  try {
    snapshot = await backend.open();
    for (const f of snapshot.firmware) {
      await backend.blobs.read(f.checksums.sha256);
      images.add(f.checksums.sha256);
    }
  } finally {
    await backend.close();
  }
  const json = (v: unknown) => JSON.stringify(v, null, 1);
  await writeFileAtomic(path.join(dir, 'catalogue.json'), json(snapshot.firmware));
  await writeFileAtomic(path.join(dir, 'devices.json'), json([...snapshot.devices].sort((a, b) => a.id.localeCompare(b.id))));
  await writeFileAtomic(path.join(dir, 'device-states.json'), json([...snapshot.states].sort((a, b) => a.device.localeCompare(b.device))));
  // Releases no snapshot held yet go to the journal, numbered past the snapshot, as the engine left them.
  await writeFileAtomic(path.join(dir, 'rollouts.json'), json({ seq: 0, rollouts: snapshot.rollouts }), 0o644);
  if (snapshot.journal.length) {
    const lines = snapshot.journal.map((j, i) => JSON.stringify({ s: i + 1, r: j.rollout, d: j.devices, t: j.at })).join('\n') + '\n';
    await writeFileAtomic(path.join(dir, 'rollouts.journal'), lines, 0o644);
  }
  if (snapshot.secret) await writeFileAtomic(path.join(dir, 'secret.key'), snapshot.secret + '\n');
  return report(snapshot, images.size);
}
