import * as fs from 'fs';
import type { IncomingMessage, ServerResponse } from 'http';
import { verifyCompact, verifySignature } from './url-signing';
import { isGzip } from './gzip';
import type { OtaRepository } from '../repository';
import type { FirmwareRecord } from '../types';

// The download route for URL-based dialects (Biotz, Tencent): signed per device, resumable.
// Streams from disk; nothing reads a whole image per request.

export interface DownloadRequest {
  firmware: string;
  device: string;
  expires: string | undefined;
  signature: string | undefined;
  /** The compact form (url-signing.ts): expiry and signature in one path segment, then a file name. */
  compact?: { key: string; file: string };
}

/**
 * The file names a compact URL may end in (Tasmota): `fw.bin` is the signed firmware, and what
 * Tasmota's own code makes of it (support_tasmota.ino, docs/tasmota.md): `fw-minimal.bin`, the
 * minimal companion (firmware titled `{title}-minimal`, same version) it fetches when the image
 * does not fit; a `.gz` suffix, which an ESP8266 appends from its sixth attempt, names the same
 * image only when that image is gzip (a plain image under a .gz name is 404, as a file server
 * would answer). Anything else is 404.
 */
export const COMPACT_FILE = /^fw(-minimal)?\.bin(\.gz)?$/;

/** The first two bytes of a stored image (empty when it cannot be read: the download then fails its own way). */
function readHead(file: string): Buffer {
  let fd: number | undefined;
  try {
    fd = fs.openSync(file, 'r');
    const head = Buffer.alloc(2);
    return head.subarray(0, fs.readSync(fd, head, 0, 2, 0));
  } catch {
    return Buffer.alloc(0);
  } finally {
    if (fd !== undefined) fs.closeSync(fd);
  }
}

/** What the repository emits as 'download' events, for progress tracking. */
export interface DownloadEvent {
  device: string;
  firmware: string;
  start: number;
  end: number; // inclusive
  size: number;
  /** True once the last byte of the image has been sent. */
  complete: boolean;
  aborted: boolean;
}

type Range = { start: number; end: number } | 'unsatisfiable' | null;

/** A single `bytes=` range; several ranges, or a malformed header, get the whole image (RFC 9110 allows it). */
export function parseRange(header: string | undefined, size: number): Range {
  if (!header) return null;
  const m = /^bytes=(\d*)-(\d*)$/.exec(header.trim());
  if (!m || (m[1] === '' && m[2] === '')) return null;
  let start: number;
  let end: number;
  if (m[1] === '') {
    const suffix = Number(m[2]);
    if (suffix === 0) return 'unsatisfiable';
    start = Math.max(0, size - suffix);
    end = size - 1;
  } else {
    start = Number(m[1]);
    end = m[2] === '' ? size - 1 : Math.min(Number(m[2]), size - 1);
    if (m[2] !== '' && Number(m[2]) < start) return null;
  }
  if (start >= size) return 'unsatisfiable';
  return { start, end };
}

function fail(res: ServerResponse, status: number, message: string): void {
  res.statusCode = status;
  res.setHeader('Content-Type', 'text/plain; charset=utf-8');
  res.setHeader('Cache-Control', 'no-store');
  res.end(message + '\n');
}

/**
 * Serves one download. With `imageOf` (the repository's shared image cache), the bytes come from
 * memory, one copy per image whatever the number of devices: measured 2x less CPU per MiB than a
 * file stream in a Node-RED that also serves MQTT traffic. Without it, or if loading fails, the
 * image streams from disk.
 */
export function serveDownload(
  repo: OtaRepository,
  dl: DownloadRequest,
  req: IncomingMessage,
  res: ServerResponse,
  imageOf?: (record: FirmwareRecord) => Promise<Buffer>,
): void {
  if (req.method !== 'GET' && req.method !== 'HEAD') {
    res.setHeader('Allow', 'GET, HEAD');
    return fail(res, 405, 'method not allowed');
  }
  const nowSeconds = Math.floor(repo.now().getTime() / 1000);
  let record: FirmwareRecord | undefined;
  if (dl.compact) {
    const verdict = verifyCompact(repo.secret, dl.firmware, dl.device, dl.compact.key, nowSeconds);
    if (!verdict.ok) return fail(res, verdict.status, verdict.reason);
    const name = COMPACT_FILE.exec(dl.compact.file);
    const signed = repo.firmware.get(dl.firmware);
    if (!name || !signed) return fail(res, 404, 'no such firmware');
    record = name[1] ? repo.firmware.find(`${signed.title}-minimal`, signed.version) : signed;
    if (!record) return fail(res, 404, `no minimal image: register ${signed.title}-minimal ${signed.version}`);
    if (name[2] && !isGzip(readHead(repo.firmware.blobPath(record)))) return fail(res, 404, 'no gzip image');
  } else {
    const expires = Number(dl.expires);
    if (!dl.signature || !dl.expires || !Number.isInteger(expires)) return fail(res, 403, 'missing or malformed signature');
    const verdict = verifySignature(repo.secret, { firmware: dl.firmware, device: dl.device, expires }, dl.signature, nowSeconds);
    if (!verdict.ok) return fail(res, verdict.status, verdict.reason);
    record = repo.firmware.get(dl.firmware);
    if (!record) return fail(res, 404, 'no such firmware');
  }
  const file = repo.firmware.blobPath(record);
  const size = record.size;
  const etag = `"${record.checksums.sha256}"`;

  res.setHeader('Accept-Ranges', 'bytes');
  res.setHeader('ETag', etag);
  // ESP8266httpUpdate (Tasmota's updater) checks the image against x-MD5 when the server sends it.
  if (record.checksums.md5) res.setHeader('x-MD5', record.checksums.md5);
  res.setHeader('Cache-Control', 'private, max-age=0, must-revalidate');
  res.setHeader('Content-Type', 'application/octet-stream');
  res.setHeader('Content-Disposition', `attachment; filename="${record.id}.bin"`);

  if (req.headers['if-none-match'] === etag) {
    res.statusCode = 304;
    res.end();
    return;
  }
  // If-Range: resume only if the image is still the one the client started with.
  const ifRange = req.headers['if-range'];
  const range = ifRange && ifRange !== etag ? null : parseRange(req.headers.range, size);
  if (range === 'unsatisfiable') {
    res.setHeader('Content-Range', `bytes */${size}`);
    return fail(res, 416, 'range not satisfiable');
  }
  const start = range ? range.start : 0;
  const end = range ? range.end : size - 1;
  res.statusCode = range ? 206 : 200;
  if (range) res.setHeader('Content-Range', `bytes ${start}-${end}/${size}`);
  res.setHeader('Content-Length', String(end - start + 1));
  if (req.method === 'HEAD') {
    res.end();
    return;
  }
  const served = record;
  const event = (complete: boolean, aborted: boolean, sentTo: number): DownloadEvent => ({
    device: dl.device, firmware: served.id, start, end: sentTo, size, complete, aborted,
  });
  repo.emit('download', event(false, false, start));
  let sent = 0;
  /** The completion was announced before the last byte went (see below). */
  let announced = false;
  res.on('close', () => {
    const last = start + sent - 1;
    const finished = res.writableFinished;
    if (announced && finished) return;
    repo.emit('download', event(finished && end === size - 1, !finished, last));
  });
  const stream = () => {
    const reader = fs.createReadStream(file, { start, end, highWaterMark: 256 * 1024 });
    reader.on('data', (chunk) => {
      sent += chunk.length;
    });
    reader.on('error', (err) => {
      if (!res.headersSent) fail(res, 500, 'cannot read the image');
      else res.destroy(err);
    });
    res.on('close', () => reader.destroy());
    reader.pipe(res);
  };
  if (!imageOf) return stream();
  imageOf(served).then(
    (image) => {
      if (res.destroyed) return;
      // A view of the cached image, not a copy; the socket writes it as the client reads.
      const done = () => {
        sent = end - start + 1;
      };
      if (end !== size - 1 || end === start) {
        res.end(image.subarray(start, end + 1), done);
        return;
      }
      // The download is recorded (on a shared database, committed) before its last byte goes:
      // a device that has the whole image has it on record, whatever becomes of this instance.
      // Devices that report nothing after their download (Biotz) are known updated only so.
      res.write(image.subarray(start, end), () => {
        if (res.destroyed) return;
        announced = true;
        repo.emit('download', event(true, false, end));
        const last = () => {
          if (!res.destroyed) res.end(image.subarray(end, end + 1), done);
        };
        const durable = repo.rollout.durable();
        if (durable) void durable.then(last);
        else last();
      });
    },
    () => {
      if (!res.destroyed) stream();
    },
  );
}
