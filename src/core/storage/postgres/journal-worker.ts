import { parentPort, workerData, MessagePort } from 'worker_threads';
import { loadPg } from './client';

// The worker behind SyncJournal (sync-journal.ts): holds its own connection and runs one insert
// per request, then wakes the main thread, which waits on the shared flag.

interface Data {
  connectionString: string;
  port: MessagePort;
  flag: SharedArrayBuffer;
}

const { connectionString, port, flag } = workerData as Data;
const signal = new Int32Array(flag);
const { Client } = loadPg();
let client: InstanceType<typeof Client> | undefined;

async function connected(): Promise<InstanceType<typeof Client>> {
  if (client) return client;
  const c = new Client({ connectionString, connectionTimeoutMillis: 2000, query_timeout: 2000 });
  c.on('error', () => {
    if (client === c) client = undefined;
  });
  await c.connect();
  client = c;
  return c;
}

port.on('message', (msg: { id: number; sql: string; params: unknown[] }) => {
  connected()
    .then((c) => c.query(msg.sql, msg.params))
    .then(
      (res) => port.postMessage({ id: msg.id, rows: res.rows }),
      (err: Error) => {
        client?.end().catch(() => undefined);
        client = undefined;
        port.postMessage({ id: msg.id, error: err.message });
      },
    )
    .finally(() => {
      Atomics.store(signal, 0, 1);
      Atomics.notify(signal, 0);
    });
});
parentPort?.on('message', (m) => {
  if (m === 'close') void (client?.end() ?? Promise.resolve()).finally(() => process.exit(0));
});
