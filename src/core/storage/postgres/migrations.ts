import type { PoolClient } from 'pg';

// The schema, as numbered steps applied in order at start (each once, recorded in
// ota_schema_version) under an advisory lock: several Node-REDs starting together on an empty
// database do not race to create it. A database newer than this code is refused, not guessed at.

export const MIGRATIONS: ReadonlyArray<{ version: number; name: string; sql: string }> = [
  {
    version: 1,
    name: 'repository tables',
    sql: `
      CREATE TABLE ota_settings (key text PRIMARY KEY, value text NOT NULL);
      CREATE TABLE ota_blobs (sha256 text PRIMARY KEY, size integer NOT NULL, data bytea NOT NULL);
      CREATE TABLE ota_firmware (
        id text PRIMARY KEY, sha256 text NOT NULL, doc jsonb NOT NULL,
        updated_at timestamptz NOT NULL DEFAULT now());
      CREATE TABLE ota_devices (
        id text PRIMARY KEY, dialect text NOT NULL, token_hash text, doc jsonb NOT NULL,
        updated_at timestamptz NOT NULL DEFAULT now());
      CREATE INDEX ota_devices_token ON ota_devices (token_hash) WHERE token_hash IS NOT NULL;
      CREATE TABLE ota_device_states (
        device text PRIMARY KEY, firmware text, state text NOT NULL, doc jsonb NOT NULL,
        updated_at timestamptz NOT NULL DEFAULT now());
      CREATE INDEX ota_device_states_firmware ON ota_device_states (firmware) WHERE firmware IS NOT NULL;
      CREATE TABLE ota_rollouts (id text PRIMARY KEY, doc jsonb NOT NULL, updated_at timestamptz NOT NULL DEFAULT now());
      CREATE TABLE ota_rollout_journal (seq bigserial PRIMARY KEY, rollout text NOT NULL, devices jsonb NOT NULL, at bigint NOT NULL);
      CREATE TABLE ota_leases (name text PRIMARY KEY, holder text NOT NULL, expires_at timestamptz NOT NULL);
    `,
  },
];

export const SCHEMA_VERSION = MIGRATIONS[MIGRATIONS.length - 1].version;
/** pg_advisory_xact_lock key: 'mqto' as an integer. */
const LOCK_KEY = 0x6d71746f;

/** Brings the schema up to SCHEMA_VERSION; returns the versions applied now. */
export async function migrate(client: PoolClient): Promise<number[]> {
  const applied: number[] = [];
  await client.query('BEGIN');
  try {
    await client.query('SELECT pg_advisory_xact_lock($1)', [LOCK_KEY]);
    await client.query('CREATE TABLE IF NOT EXISTS ota_schema_version (version integer PRIMARY KEY, name text NOT NULL, applied_at timestamptz NOT NULL DEFAULT now())');
    const { rows } = await client.query<{ v: number | null }>('SELECT max(version) AS v FROM ota_schema_version');
    const current = rows[0]?.v ?? 0;
    if (current > SCHEMA_VERSION) {
      throw new Error(`the database schema is version ${current}, newer than this node-red-contrib-mqtt-ota knows (${SCHEMA_VERSION}): update the package on this instance`);
    }
    for (const m of MIGRATIONS) {
      if (m.version <= current) continue;
      await client.query(m.sql);
      await client.query('INSERT INTO ota_schema_version (version, name) VALUES ($1, $2)', [m.version, m.name]);
      applied.push(m.version);
    }
    await client.query('COMMIT');
  } catch (err) {
    await client.query('ROLLBACK').catch(() => undefined);
    throw err;
  }
  return applied;
}
