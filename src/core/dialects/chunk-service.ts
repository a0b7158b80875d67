import type { OtaRepository } from '../repository';
import { DialectName, FirmwareRecord, MqttOut, OtaError, ProgressEvent } from '../types';
import { Delivery, ProgressMemory, Session, chunkCount, chunkOf, percentAfter } from '../chunking';
import type { ChunkRequest, Dialect, DialectOptions } from './dialect';
import { dialectFor } from './index';
import { tagoChunkSize } from './tago';

// Serves chunk requests (ThingsBoard, Tago) from the image cache. Pure of Node-RED: the node hands
// it topic and payload and publishes what comes back. A cached image is served synchronously.

export interface ChunkResult {
  /** False when the message was not a chunk request of the dialects served (it is ignored). */
  handled: boolean;
  replies: MqttOut[];
  progress?: ProgressEvent;
  error?: OtaError;
  /** The device a bad request came from, when known. */
  device?: string;
}

export interface ChunkServiceConfig {
  dialects: DialectName[];
  options: DialectOptions;
}

const IGNORED: ChunkResult = { handled: false, replies: [] };

/**
 * Progress from chunk requests, per device: an event when the percent moves on, at most one per
 * this interval, and always the first and the last chunk. Every percent step of a fast download
 * would be a Node-RED message per few chunks (measured: a tenth of a one-device round trip on
 * loopback); four a second is more than any dashboard shows.
 */
export const PROGRESS_INTERVAL_MS = 250;

/** States in which a device has no download under way for its assignment (as this instance knows it). */
const DONE: ReadonlySet<string> = new Set(['idle', 'updated', 'failed', 'timed_out']);
const REREAD_EVERY_MS = 1000;

export class ChunkService {
  private readonly rereadAt = new Map<string, number>();
  private readonly dialects: Dialect[];

  constructor(
    private readonly repo: Pick<OtaRepository, 'devices' | 'firmware' | 'rollout' | 'refreshState'>,
    private readonly delivery: Delivery,
    private readonly config: ChunkServiceConfig,
  ) {
    this.dialects = config.dialects.map((d) => dialectFor(d)).filter((d) => typeof d.chunkReply === 'function');
    if (!this.dialects.length) throw new OtaError('bad_dialect', 'chunk-server serves thingsboard and tago only', 'dialect');
  }

  /** Topic filters to subscribe to for the chunk requests of the dialects served. */
  filters(): string[] {
    return this.dialects.flatMap((d) => (d.name === 'thingsboard' ? [d.uplinkFilters(this.config.options)[2]] : d.uplinkFilters(this.config.options)));
  }

  handle(topic: string, payload: unknown, device?: string): ChunkResult | Promise<ChunkResult> {
    const options = device ? { ...this.config.options, device } : this.config.options;
    for (const dialect of this.dialects) {
      const uplink = dialect.parseUplink(topic, payload, options);
      if (uplink.kind === 'ignored') continue;
      if (uplink.kind === 'invalid') return this.fail(dialect, uplink.device, new OtaError('bad_request', uplink.error), options);
      if (uplink.kind !== 'chunk-request') return IGNORED; // telemetry, version reports: progress-parser's job
      return this.serve(dialect, uplink, options);
    }
    return IGNORED;
  }

  private fail(dialect: Dialect, device: string | undefined, error: OtaError, options: DialectOptions): ChunkResult {
    const who = device ? `${dialect.name} device ${device}: ` : `${dialect.name}: `;
    const err = new OtaError(error.code, who + error.message, error.field);
    return { handled: true, replies: dialect.errorReply?.(device, error.message, options) ?? [], error: err, ...(device ? { device } : {}) };
  }

  private serve(dialect: Dialect, req: ChunkRequest, options: DialectOptions): ChunkResult | Promise<ChunkResult> {
    if (!this.repo.devices.get(req.device)) {
      return this.fail(dialect, req.device, new OtaError('unknown_device', `unknown device ${req.device}: register it in the OTA repository`), options);
    }
    // The request names no firmware: the device's assignment says which. One this instance knows
    // as done (or none) may be stale (several Node-REDs: another assigned it a moment ago,
    // and its notification is still on the way): read it again before answering. Found end to end:
    // chunks of the previous image in a TagoIO device's new one (TagoIO carries no checksum).
    const s = this.repo.rollout.get(req.device);
    const fresh = s?.firmware && !DONE.has(s.state) ? undefined : this.reread(req.device);
    if (!fresh) return this.answer(dialect, req, options);
    const answer = () => this.answer(dialect, req, options);
    return fresh.then(answer, answer);
  }

  /** At most one re-read a second per device: a device asking again and again reads nothing more. */
  private reread(device: string): Promise<void> | undefined {
    const now = Date.now();
    if (now - (this.rereadAt.get(device) ?? -Infinity) < REREAD_EVERY_MS) return undefined;
    this.rereadAt.set(device, now); // registered devices only (checked above): bounded by the fleet
    return this.repo.refreshState(device);
  }

  private answer(dialect: Dialect, req: ChunkRequest, options: DialectOptions): ChunkResult | Promise<ChunkResult> {
    const tb = dialect.name === 'thingsboard';
    let session: Session | undefined;
    let record: FirmwareRecord | undefined;
    let size: number;
    if (tb) {
      session = this.delivery.requests.get(req.device, req.requestId);
      if (!session) {
        if (req.size === undefined && req.index > 0) {
          // An empty payload means "the size used before"; with no state for this requestId (a
          // restart, say) the whole image would make every later chunk empty: a silent corruption.
          return this.fail(dialect, req.device, new OtaError('unknown_request', `unknown requestId ${req.requestId}: send the chunk size with chunk ${req.index}`), options);
        }
        const assigned = this.assigned(req.device);
        if (assigned instanceof OtaError) return this.fail(dialect, req.device, assigned, options);
        // The requestId pins this firmware for the device until it starts a new requestId.
        session = this.delivery.requests.start(req.device, req.requestId, assigned.id);
      }
      record = this.repo.firmware.get(session.firmwareId);
      if (!record) {
        this.delivery.requests.end(req.device);
        return this.fail(dialect, req.device, new OtaError('unknown_firmware', `the firmware of requestId ${req.requestId} was deleted`), options);
      }
      if (req.size !== undefined) session.lastSize = req.size;
      size = req.size ?? session.lastSize ?? record.size;
    } else {
      const assigned = this.assigned(req.device);
      if (assigned instanceof OtaError) return this.fail(dialect, req.device, assigned, options);
      record = assigned;
      // The size the manifest announced, kept with the assignment; the node's own for a device
      // notified some other way.
      size = this.repo.rollout.get(req.device)?.chunkSize ?? tagoChunkSize(options);
    }
    const image = this.delivery.cache.peek(record);
    if (image) return this.reply(dialect, req, image, size, session, options);
    const rec = record;
    return this.delivery.cache.get(rec).then(
      (img) => this.reply(dialect, req, img, size, session, options),
      (err: Error) => this.fail(dialect, req.device, err instanceof OtaError ? err : new OtaError('missing_image', err.message), options),
    );
  }

  private assigned(device: string): FirmwareRecord | OtaError {
    const state = this.repo.rollout.get(device);
    if (!state?.firmware) return new OtaError('not_assigned', 'no firmware is assigned to it');
    const record = this.repo.firmware.get(state.firmware);
    if (!record) return new OtaError('unknown_firmware', `its assigned firmware ${state.target ? `${state.target.title} ${state.target.version}` : state.firmware} was deleted`);
    return record;
  }

  private reply(dialect: Dialect, req: ChunkRequest, image: Buffer, size: number, session: Session | undefined, options: DialectOptions): ChunkResult {
    const bytes = chunkOf(image, req.index, size);
    const out = dialect.chunkReply!(req, bytes, options);
    const result: ChunkResult = { handled: true, replies: [out] };
    if (bytes.length > 0) {
      const last = req.index >= chunkCount(image.length, size) - 1;
      const percent = last ? 100 : percentAfter(image.length, req.index, size);
      const key = session ?? this.tagoSession(req.device);
      if (req.index === 0 && !session) {
        delete key.done;
        delete key.lastAt;
      }
      const now = Date.now();
      const due = key.lastAt === undefined || now - key.lastAt >= PROGRESS_INTERVAL_MS;
      if ((key.lastPercent !== percent && due) || (last && !key.done)) {
        key.lastPercent = percent;
        key.lastAt = now;
        if (last) key.done = true;
        result.progress = { device: req.device, dialect: dialect.name, state: last ? 'downloaded' : 'downloading', percent, at: new Date(now).toISOString() };
      }
    }
    return result;
  }

  // Tago has no requestId; its per-device progress memory lives beside the ThingsBoard sessions.
  private readonly tagoProgress = new Map<string, ProgressMemory>();
  private tagoSession(device: string): ProgressMemory {
    let s = this.tagoProgress.get(device);
    if (!s) {
      if (this.tagoProgress.size >= 10000) this.tagoProgress.clear();
      s = {};
      this.tagoProgress.set(device, s);
    }
    return s;
  }
}
