import type { SimDevice } from './device';

// The request-one-chunk-at-a-time loop of the chunked dialects (ThingsBoard, TagoIO). Bounded:
// each request is re-sent at most `maxResends` times when unanswered, the whole attempt has a
// deadline, and the number of chunks is capped by the caller's `maxChunks`.

export interface ChunkLoopOptions {
  request(index: number): void;
  fail(reason: string): void;
  maxChunks: number;
  maxResends?: number;
}

export class ChunkLoop {
  /** The chunk index the device waits for. */
  next = 0;
  private timer?: NodeJS.Timeout;
  private deadline?: NodeJS.Timeout;
  private resends = 0;
  private active = false;
  private paused = false;

  constructor(
    private readonly device: SimDevice,
    private readonly opts: ChunkLoopOptions,
  ) {}

  get running(): boolean {
    return this.active;
  }

  start(): void {
    this.active = true;
    this.paused = false;
    this.next = 0;
    this.resends = 0;
    this.deadline = this.device.later(this.device.options.downloadTimeoutMs, () => this.giveUp('download timed out'));
    this.send();
  }

  /** Chunk `next` was accepted: ask for the following one (after a stall or a drop if injected). */
  advance(received: number, total: number): void {
    if (!this.active) return;
    this.next++;
    this.resends = 0;
    this.device.cancel(this.timer);
    if (this.next >= this.opts.maxChunks) {
      this.giveUp(`more than ${this.opts.maxChunks} chunks`);
      return;
    }
    if (this.device.dropDue(received, total)) {
      // Resumed by resend() from the dialect's onConnect after the reconnect.
      this.paused = true;
      this.device.dropConnection();
      return;
    }
    const stall = this.device.stallDue(received, total);
    if (stall > 0) {
      this.timer = this.device.later(stall, () => this.send());
      return;
    }
    this.send();
  }

  /** After a reconnect: ask again for the chunk we were waiting for. */
  resend(): void {
    if (!this.active) return;
    this.paused = false;
    this.resends = 0;
    this.send();
  }

  stop(): void {
    this.active = false;
    this.device.cancel(this.timer);
    this.device.cancel(this.deadline);
    this.timer = undefined;
    this.deadline = undefined;
  }

  private send(): void {
    if (!this.active || this.paused) return;
    this.device.cancel(this.timer);
    this.opts.request(this.next);
    this.timer = this.device.later(this.device.options.chunkTimeoutMs, () => {
      if (!this.active || this.paused) return;
      if (this.resends >= (this.opts.maxResends ?? 5)) {
        this.giveUp(`no answer to chunk ${this.next}`);
        return;
      }
      this.resends++;
      this.send();
    });
  }

  private giveUp(reason: string): void {
    if (!this.active) return;
    this.stop();
    this.opts.fail(reason);
  }
}
