import * as path from 'path';
import { MessageChannel, Worker, receiveMessageOnPort } from 'worker_threads';

// "Durable before it returns": the rollout engine writes a release to its journal, then sends
// the notices, in one synchronous step (the file journal fsyncs). A database write is
// asynchronous, so a worker thread runs it while this thread waits on a shared flag (about a
// millisecond on a local network, once per batch of notices). Written before the notices go: a
// kill -9 in between never makes the next driver send them again.

const TIMEOUT_MS = 2_000;

export class SyncJournal {
  private worker: Worker | undefined;
  private readonly channel = new MessageChannel();
  private readonly flag = new SharedArrayBuffer(4);
  private readonly signal = new Int32Array(this.flag);
  private id = 0;

  constructor(private readonly connectionString: string) {}

  private start(): void {
    if (this.worker) return;
    this.worker = new Worker(path.join(__dirname, 'journal-worker.js'), {
      workerData: { connectionString: this.connectionString, port: this.channel.port2, flag: this.flag },
      transferList: [this.channel.port2],
    });
    this.worker.unref();
    this.channel.port1.unref();
  }

  /**
   * Starts the worker and its connection now, without waiting: the first real write would
   * otherwise wait for both (over a second on a loaded machine, this thread blocked meanwhile).
   * Its answer is skipped like a late one.
   */
  warm(): void {
    this.start();
    this.channel.port1.postMessage({ id: ++this.id, sql: 'SELECT 1', params: [] });
  }

  /** Runs one statement and waits for it; throws when it failed or took over 2 s. */
  query<R = Record<string, unknown>>(sql: string, params: unknown[]): R[] {
    this.start();
    const id = ++this.id;
    this.channel.port1.postMessage({ id, sql, params });
    const until = Date.now() + TIMEOUT_MS;
    for (;;) {
      // Cleared before looking: an answer posted after the look sets it again, so the wait returns.
      Atomics.store(this.signal, 0, 0);
      // A late answer to an earlier, timed-out request may come first: skip it.
      let reply = receiveMessageOnPort(this.channel.port1)?.message as { id: number; rows?: R[]; error?: string } | undefined;
      while (reply && reply.id !== id) reply = receiveMessageOnPort(this.channel.port1)?.message as typeof reply;
      if (reply) {
        if (reply.error) throw new Error(`release journal: ${reply.error}`);
        return reply.rows ?? [];
      }
      const left = until - Date.now();
      if (left <= 0 || Atomics.wait(this.signal, 0, 0, left) === 'timed-out') {
        throw new Error('the release journal write to PostgreSQL took over 2 s');
      }
    }
  }

  async close(): Promise<void> {
    const w = this.worker;
    this.worker = undefined;
    this.channel.port1.close();
    if (!w) return;
    w.postMessage('close');
    await new Promise<void>((resolve) => {
      const t = setTimeout(() => {
        void w.terminate().then(() => resolve());
      }, 2000);
      w.once('exit', () => {
        clearTimeout(t);
        resolve();
      });
    });
  }
}
