import { createHash } from 'crypto';
import type { DialectDriver, SimDevice } from '../device';
import { ChunkLoop } from '../chunk-loop';

// A TagoIO device as in seed 002's Python simulator: username "Token", password the device
// token; publishes and listens on tago/data/post, ignores its own firmware_request; on a
// firmware_manifest asks for chunks 0..total_chunks-1 one at a time and reassembles the base64
// metadata.data of each firmware_block. Differences from the seed's script, all deliberate:
// it checks total_size (and metadata.sha256 when the server gives one), resumes after a lost
// connection instead of hanging, ignores a manifest for the version it runs or downloads, and
// reports with two variables of ours (harmless to real TagoIO, which stores any variable):
// firmware_version (at connect and after an update) and firmware_status "failed". With
// tagoVersionReports off it is the seed's script again: it subscribes and waits (on_connect), says
// nothing of its own, and starts on any manifest (on_message), one for the version it runs included:
// a manifest left retained would make it download again at its next connection.

const TOPIC = 'tago/data/post';

interface Manifest {
  totalChunks: number;
  totalSize: number;
  version: string;
  sha256?: string;
}

interface TagoData {
  variable?: unknown;
  value?: unknown;
  metadata?: Record<string, unknown>;
}

export function tago(device: SimDevice): DialectDriver {
  let target: Manifest | undefined;
  let pieces: Buffer[] = [];
  let received = 0;

  const reports = device.options.tagoVersionReports;
  const reportVersion = () => {
    if (reports) device.publishJson(TOPIC, { variable: 'firmware_version', value: device.version });
  };

  const loop = new ChunkLoop(device, {
    request: (i) => device.publishJson(TOPIC, { variable: 'firmware_request', value: i, unit: 'index' }),
    fail: (reason) => fail(reason),
    maxChunks: 1_000_000,
  });

  const fail = (reason: string) => {
    const version = target?.version;
    loop.stop();
    target = undefined;
    if (reports) device.publishJson(TOPIC, { variable: 'firmware_status', value: 'failed', metadata: { version, error: reason } });
    device.setState('failed', { error: reason });
    device.releaseSlot();
    // Nothing in the protocol asks for a manifest: reporting the running version again lets a
    // server that tracks versions send the manifest anew.
    if (device.attempts < device.options.maxAttempts) device.later(device.options.retryDelayMs, reportVersion);
  };

  const begin = async (m: Manifest) => {
    device.attempts++;
    device.setState('notified', { version: m.version });
    await device.acquireSlot();
    if (device.isStopped) return;
    target = m;
    pieces = new Array<Buffer>(m.totalChunks);
    received = 0;
    device.progress(0, m.totalSize);
    device.setState('downloading', { version: m.version });
    if (m.totalChunks === 0) finish();
    else loop.start();
  };

  const finish = () => {
    const m = target;
    if (!m) return;
    loop.stop();
    for (let i = 0; i < m.totalChunks; i++) {
      if (!pieces[i]) {
        fail(`missing chunk ${i}`);
        return;
      }
    }
    const image = Buffer.concat(pieces);
    device.setState('downloaded');
    if (image.length !== m.totalSize) {
      fail(`size mismatch: got ${image.length} bytes, total_size is ${m.totalSize}`);
      return;
    }
    if (m.sha256 && createHash('sha256').update(image).digest('hex') !== m.sha256.toLowerCase()) {
      fail('sha256 mismatch');
      return;
    }
    device.setState('verified');
    device.setState('updating');
    device.install(image, m.version);
    target = undefined;
    device.setState('updated', { version: m.version });
    device.releaseSlot();
    reportVersion();
  };

  const onManifest = (meta: Record<string, unknown>) => {
    const totalChunks = Number(meta.total_chunks);
    const totalSize = Number(meta.total_size);
    const version = String(meta.version ?? 'unknown');
    if (!Number.isSafeInteger(totalChunks) || totalChunks < 0 || !Number.isSafeInteger(totalSize) || totalSize < 0) {
      device.emit('log', `${device.id}: manifest without valid total_chunks/total_size`);
      return;
    }
    if (reports && version === device.version && !target) return;
    if (target && target.version === version) return;
    if (device.state === 'notified') return;
    if (device.attempts >= device.options.maxAttempts) return;
    if (target) {
      loop.stop();
      device.releaseSlot();
      target = undefined;
    }
    const sha256 = typeof meta.sha256 === 'string' ? meta.sha256 : undefined;
    void begin({ totalChunks, totalSize, version, sha256 });
  };

  const onBlock = (index: number, meta: Record<string, unknown>) => {
    const m = target;
    if (!m || !loop.running || index !== loop.next) return;
    const b64 = typeof meta.data === 'string' ? meta.data : '';
    let piece = Buffer.from(b64, 'base64');
    // A corrupted block arrives one byte short: TagoIO carries no checksum, the size check catches it.
    if (device.corruptDue(index)) piece = piece.subarray(0, Math.max(0, piece.length - 1));
    if (b64) {
      pieces[index] = piece;
      received += piece.length;
    }
    device.progress(received, m.totalSize);
    if (index + 1 < m.totalChunks) loop.advance(received, m.totalSize);
    else finish();
  };

  const onData = (d: TagoData) => {
    const meta = d.metadata && typeof d.metadata === 'object' ? d.metadata : {};
    switch (d.variable) {
      case 'firmware_manifest':
        onManifest(meta);
        break;
      case 'firmware_block':
        onBlock(Number(d.value), meta);
        break;
      default:
        // Our own firmware_request/firmware_version/firmware_status, or anything else: ignored.
        break;
    }
  };

  return {
    credentials: () => ({ username: 'Token', password: device.token }),
    async onConnect() {
      // Only a download that was under way when this connection came up is resumed here; one
      // started while we subscribe has sent its own first request.
      const resume = target !== undefined;
      await device.subscribe(TOPIC);
      reportVersion();
      if (resume) loop.resend();
    },
    onMessage(topic, payload) {
      if (topic !== TOPIC) return;
      const body = JSON.parse(payload.toString('utf8')) as TagoData | TagoData[];
      for (const d of Array.isArray(body) ? body : [body]) if (d && typeof d === 'object') onData(d);
    },
    onStop: () => loop.stop(),
  };
}
