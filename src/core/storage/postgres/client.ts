import type * as PG from 'pg';

// `pg` is loaded on first use: a repository on files never loads it (nor needs it installed).
let loaded: typeof PG | undefined;

export function loadPg(): typeof PG {
  if (!loaded) {
    try {
      // eslint-disable-next-line @typescript-eslint/no-require-imports
      loaded = require('pg') as typeof PG;
    } catch (err) {
      throw new Error(`the PostgreSQL backend needs the "pg" package (npm install pg): ${(err as Error).message}`, { cause: err });
    }
  }
  return loaded;
}

/** The connection string without its password, for messages and logs. */
export function redact(connectionString: string): string {
  return connectionString.replace(/(\/\/[^:/@]*:)[^@]*@/, '$1***@').replace(/(password=)[^&\s]*/gi, '$1***');
}
