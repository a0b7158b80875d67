import * as http from 'http';
import * as https from 'https';

// A device's HTTP(S) download: GET, and on a cut connection GET again with `Range: bytes=N-`
// (and `If-Range` with the ETag, so a changed image restarts from zero instead of being spliced).
// Bounded: at most `maxResumes` reconnects, an idle timeout per request, a deadline overall.

export class HttpDownloadError extends Error {
  constructor(
    message: string,
    readonly status?: number,
  ) {
    super(message);
    this.name = 'HttpDownloadError';
  }
}

export interface HttpHooks {
  /** Called with the bytes received so far; returning 'drop' cuts the connection, a number stalls that many ms. */
  onData?(received: number, total: number): 'drop' | number | void;
  /** May return a changed copy of a piece of the body (fault injection); `offset` is its place in the image. */
  transform?(piece: Buffer, offset: number): Buffer;
}

export interface HttpDownloadOptions {
  url: string;
  hooks?: HttpHooks;
  idleTimeoutMs: number;
  deadlineMs: number;
  maxResumes?: number;
  resumeDelayMs?: number;
  /** Cancels everything (device stopped). */
  signal?: AbortSignal;
}

export interface HttpDownloadResult {
  data: Buffer;
  etag?: string;
  /** The server's x-MD5 header (what ESP8266httpUpdate checks the image against), if it sent one. */
  md5?: string;
  /** GET requests made (1 + resumes). */
  requests: number;
}

/** Status of an attempt whose connection failed before any response: retried like a cut body. */
const LOST = 0;

interface Attempt {
  status: number;
  etag?: string;
  md5?: string;
  total?: number;
  ended: boolean;
}

function sleep(ms: number, signal?: AbortSignal): Promise<void> {
  return new Promise((resolve) => {
    const t = setTimeout(resolve, ms);
    signal?.addEventListener('abort', () => { clearTimeout(t); resolve(); }, { once: true });
  });
}

export async function httpDownload(opts: HttpDownloadOptions): Promise<HttpDownloadResult> {
  const started = Date.now();
  const maxResumes = opts.maxResumes ?? 5;
  const pieces: Buffer[] = [];
  let received = 0;
  let etag: string | undefined;
  let md5: string | undefined;
  let total: number | undefined;
  let requests = 0;
  for (;;) {
    if (opts.signal?.aborted) throw new HttpDownloadError('stopped');
    if (Date.now() - started > opts.deadlineMs) throw new HttpDownloadError('download timed out');
    requests++;
    const headers: Record<string, string> = {};
    if (received > 0) {
      headers.Range = `bytes=${received}-`;
      if (etag) headers['If-Range'] = etag;
    }
    const attempt = await getOnce(opts, headers, received, total ?? 0, (piece, isRestart) => {
      if (isRestart) {
        pieces.length = 0;
        received = 0;
      }
      pieces.push(piece);
      received += piece.length;
      return received;
    });
    if (attempt.etag) etag = attempt.etag;
    if (attempt.md5) md5 = attempt.md5;
    if (attempt.total !== undefined) total = attempt.total;
    if (attempt.status === 416 && total !== undefined && received === total) break;
    if (attempt.status !== 200 && attempt.status !== 206 && attempt.status !== LOST) {
      throw new HttpDownloadError(`HTTP ${attempt.status}`, attempt.status);
    }
    if (attempt.ended && (total === undefined || received >= total)) break;
    if (requests > maxResumes) throw new HttpDownloadError(`connection lost ${requests} times`);
    await sleep(opts.resumeDelayMs ?? 100, opts.signal);
  }
  return { data: Buffer.concat(pieces), etag, ...(md5 ? { md5 } : {}), requests };
}

/** One GET; resolves when the body ends or the connection is lost (ended=false), never rejects on a cut. */
function getOnce(
  opts: HttpDownloadOptions,
  headers: Record<string, string>,
  offset: number,
  knownTotal: number,
  append: (piece: Buffer, isRestart: boolean) => number,
): Promise<Attempt> {
  return new Promise((resolve, reject) => {
    const url = new URL(opts.url);
    const lib = url.protocol === 'https:' ? https : url.protocol === 'http:' ? http : undefined;
    if (!lib) {
      reject(new HttpDownloadError(`unsupported URL scheme ${url.protocol}`));
      return;
    }
    let settled = false;
    const finish = (a: Attempt) => {
      if (settled) return;
      settled = true;
      opts.signal?.removeEventListener('abort', onAbort);
      resolve(a);
    };
    const req = lib.get(url, { headers, agent: false }, (res) => {
      const status = res.statusCode ?? 0;
      const etag = typeof res.headers.etag === 'string' ? res.headers.etag : undefined;
      const attempt: Attempt = { status, etag, ended: false };
      if (typeof res.headers['x-md5'] === 'string') attempt.md5 = res.headers['x-md5'];
      if (status === 206) {
        const m = /\/(\d+)\s*$/.exec(String(res.headers['content-range'] ?? ''));
        if (m) attempt.total = Number(m[1]);
      } else if (status === 200) {
        const len = Number(res.headers['content-length']);
        if (Number.isFinite(len)) attempt.total = len;
      } else if (status === 416) {
        const m = /\/(\d+)\s*$/.exec(String(res.headers['content-range'] ?? ''));
        if (m) attempt.total = Number(m[1]);
      }
      if (status !== 200 && status !== 206) {
        res.resume();
        res.on('end', () => finish(attempt));
        res.on('error', () => finish(attempt));
        return;
      }
      // A 200 to a Range request means the server started over (image changed, or no Range support).
      let position = status === 200 ? 0 : offset;
      let first = status === 200;
      const total = attempt.total ?? knownTotal;
      res.on('data', (piece: Buffer) => {
        const body = opts.hooks?.transform ? opts.hooks.transform(piece, position) : piece;
        position += piece.length;
        const got = append(body, first);
        first = false;
        const verdict = opts.hooks?.onData?.(got, total);
        if (verdict === 'drop') {
          req.destroy();
        } else if (typeof verdict === 'number' && verdict > 0) {
          res.pause();
          setTimeout(() => res.resume(), verdict);
        }
      });
      res.on('end', () => { attempt.ended = true; finish(attempt); });
      res.on('aborted', () => finish(attempt));
      res.on('error', () => finish(attempt));
      res.on('close', () => finish(attempt));
    });
    req.setNoDelay(true);
    req.setTimeout(opts.idleTimeoutMs, () => req.destroy());
    req.on('error', (err) => {
      if (!settled) {
        // Before any response: a refused or cut connection counts as a lost attempt (status 0 -> retry).
        finish({ status: LOST, ended: false });
        void err;
      }
    });
    const onAbort = () => { req.destroy(); finish({ status: LOST, ended: false }); };
    opts.signal?.addEventListener('abort', onAbort, { once: true });
  });
}
