// Cuts a device's byte stream into whole MQTT packets before the parser sees them, from the fixed
// header's remaining length alone. mqtt-packet's parser buffers whatever a packet claims (a
// CONNECT claiming 256 MB kept growing until the bytes came), so the size is checked here, on
// the first five bytes, and a packet over the limit closes the connection with nothing buffered.

export class PacketTooLarge extends Error {
  constructor(readonly size: number, readonly limit: number) {
    super(`packet of ${size} bytes exceeds the limit of ${limit}`);
  }
}

const EMPTY = Buffer.alloc(0);

export class PacketFramer {
  private pending: Buffer = EMPTY;
  /** A connection starts with a CONNECT: anything else is refused on its first byte. */
  private first = true;

  constructor(private limit: number) {}

  /** The largest packet (fixed header included) accepted from now on. */
  setLimit(limit: number): void {
    this.limit = limit;
  }

  /** Bytes received and not yet handed out as packets. */
  get buffered(): number {
    return this.pending.length;
  }

  push(data: Buffer): void {
    this.pending = this.pending.length ? Buffer.concat([this.pending, data]) : data;
  }

  /**
   * The next whole packet, or null until its last byte arrives. Throws PacketTooLarge as soon as
   * the header says the packet is too large, and Error for a remaining length over four bytes.
   */
  next(): Buffer | null {
    const buf = this.pending;
    if (this.first && buf.length > 0 && buf[0] !== 0x10) throw new Error(`expected CONNECT, got packet type ${buf[0] >> 4}`);
    if (buf.length < 2) return null;
    let remaining = 0;
    let multiplier = 1;
    let pos = 1;
    for (;;) {
      if (pos > 4) throw new Error('remaining length longer than four bytes');
      if (pos >= buf.length) return null;
      const byte = buf[pos++];
      remaining += (byte & 0x7f) * multiplier;
      multiplier *= 128;
      if ((byte & 0x80) === 0) break;
    }
    const size = pos + remaining;
    if (size > this.limit) throw new PacketTooLarge(size, this.limit);
    if (buf.length < size) return null;
    this.first = false;
    // Most reads hold exactly one packet: hand the read itself on, with no views to allocate.
    if (buf.length === size) {
      this.pending = EMPTY;
      return buf;
    }
    this.pending = buf.subarray(size);
    return buf.subarray(0, size);
  }
}

export interface ReaderHooks {
  /** One whole packet's bytes. */
  packet(bytes: Buffer): void;
  error(err: Error): void;
  turnStart(): void;
  /** Streams whose write queue is full (reading waits until each has drained); usually none. */
  turnEnd(): readonly NodeJS.EventEmitter[];
}

/**
 * Reads a socket packet by packet, at most `perTurn` packets per turn of the event loop, and
 * stops reading while the turn's writes have nowhere to go. So one device flooding packets the
 * gateway answers itself (refused publishes never meet the broker's backpressure) cannot hold
 * the event loop, and a device that does not read its acknowledgements stops being read.
 */
export class PacedReader {
  private readonly framer: PacketFramer;
  private waiting = 0;
  private scheduled = false;
  private stopped = false;

  constructor(
    private readonly socket: import('net').Socket,
    limit: number,
    private readonly perTurn: number,
    private readonly hooks: ReaderHooks,
  ) {
    this.framer = new PacketFramer(limit);
    socket.on('data', (data: Buffer) => {
      this.framer.push(data);
      this.pump();
    });
  }

  setLimit(limit: number): void {
    this.framer.setLimit(limit);
  }

  stop(): void {
    this.stopped = true;
  }

  private pump(): void {
    if (this.stopped || this.waiting > 0 || this.scheduled) return;
    this.hooks.turnStart();
    let more = true;
    for (let n = 0; n < this.perTurn; n++) {
      let frame: Buffer | null;
      try {
        frame = this.framer.next();
      } catch (err) {
        this.stopped = true;
        this.hooks.turnEnd();
        this.hooks.error(err as Error);
        return;
      }
      if (!frame) {
        more = false;
        break;
      }
      this.hooks.packet(frame);
      if (this.stopped) break;
    }
    const full = this.hooks.turnEnd();
    if (this.stopped) return;
    if (full.length) {
      this.socket.pause();
      this.waiting = full.length;
      for (const stream of full) {
        stream.once('drain', () => {
          if (--this.waiting === 0) this.resume();
        });
      }
      return;
    }
    if (more) {
      // Other connections, timers and I/O go first; this one carries on in the next turn.
      this.socket.pause();
      this.scheduled = true;
      setImmediate(() => {
        this.scheduled = false;
        this.resume();
      });
      return;
    }
    this.socket.resume();
  }

  private resume(): void {
    if (this.stopped) return;
    this.pump();
  }
}
