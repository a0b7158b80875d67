import { EventEmitter } from 'events';
import { createHash } from 'crypto';
import type { MqttClient } from 'mqtt';
import type { DialectName } from '../core/types';
import { connectClient } from './connect';
import { Semaphore } from './semaphore';
import type { DeviceOptions, FaultOptions, HistoryEntry, ProgressInfo, SimState } from './types';

// One simulated device: an MQTT connection, a running version, an installed image, and a dialect
// driver that speaks its platform's protocol. The device owns everything that must be bounded
// (timers, attempts, the download slot) so that a driver cannot leak them.

/** Options with every default filled in. */
export type ResolvedOptions = Required<Omit<DeviceOptions, 'faults' | 'faultDevices' | 'failRate' | 'failDevices' | 'tokenPattern' | 'clientIdPattern' | 'deviceSecretPattern'>> & {
  faults: FaultOptions;
};

export interface DialectDriver {
  /** MQTT credentials; the client id is the device's. */
  credentials(): { username?: string; password?: string };
  /** The last will the device connects with, if any (Tasmota's LWT). */
  will?(): { topic: string; payload: string; qos: 0 | 1; retain: boolean };
  /** Runs after every (re)connect: subscribe, report, resume. */
  onConnect(): Promise<void>;
  onMessage(topic: string, payload: Buffer, retain: boolean): void;
  /** The device stops: cancel what is in flight. */
  onStop?(): void;
}

export type DriverFactory = (device: SimDevice) => DialectDriver;

export interface DeviceIdentity {
  id: string;
  token: string;
  clientId: string;
  /** Tencent device secret (base64), when the device signs its username. */
  deviceSecret?: string;
  dialect: DialectName;
  /** Position in the fleet (0-based) and number within its group (as {n}). */
  index: number;
  group: number;
  n: number;
}

export class SimDevice extends EventEmitter {
  readonly id: string;
  readonly token: string;
  readonly clientId: string;
  readonly deviceSecret?: string;
  readonly dialect: DialectName;
  readonly index: number;
  readonly group: number;
  readonly n: number;
  state: SimState = 'connecting';
  /** The running version (Biotz: the running firmware name). */
  version: string;
  title: string;
  /** The last image installed, and its SHA-256 (hex). */
  image?: Buffer;
  sha256?: string;
  installs = 0;
  attempts = 0;
  lastError?: string;
  received = 0;
  total = 0;
  readonly history: HistoryEntry[] = [];
  client?: MqttClient;
  connects = 0;

  private driver!: DialectDriver;
  private readonly timers = new Set<NodeJS.Timeout>();
  private stopped = false;
  private holdsSlot = false;
  private slotWaiter?: () => void;
  private readonly faultsLeft: { drop: boolean; corrupt: boolean; stall: boolean };
  private lastPercent = -1;

  constructor(
    identity: DeviceIdentity,
    readonly options: ResolvedOptions,
    private readonly slots: Semaphore,
    faulty: boolean,
    /** Fails every update (failRate, failDevices): every image it takes is corrupted. */
    private brokenNow = false,
  ) {
    super();
    this.id = identity.id;
    this.token = identity.token;
    this.clientId = identity.clientId;
    this.deviceSecret = identity.deviceSecret;
    this.dialect = identity.dialect;
    this.index = identity.index;
    this.group = identity.group;
    this.n = identity.n;
    this.version = options.version;
    this.title = options.title;
    const f = options.faults;
    this.faultsLeft = {
      drop: faulty && f.dropAt !== undefined,
      corrupt: faulty && f.corruptChunk !== undefined,
      stall: faulty && f.stallAt !== undefined && (f.stallMs ?? 0) > 0,
    };
  }

  get isStopped(): boolean {
    return this.stopped;
  }

  /** Connects; resolves on the first CONNACK, rejects if the first connection fails in time. */
  start(driverFactory: DriverFactory, connectTimeoutMs = 10_000): Promise<void> {
    this.driver = driverFactory(this);
    const creds = this.driver.credentials();
    const client = connectClient(this.options.broker, {
      clientId: this.clientId,
      username: creds.username,
      password: creds.password,
      reconnectMs: this.options.reconnectMs,
      connectTimeoutMs,
      protocolVersion: this.options.protocolVersion,
      ...(this.driver.will ? { will: this.driver.will() } : {}),
    });
    this.client = client;
    client.on('message', (topic, payload, packet) => {
      if (this.stopped) return;
      try {
        this.driver.onMessage(topic, payload, packet.retain);
      } catch (err) {
        this.emit('log', `${this.id}: message on ${topic} not handled: ${(err as Error).message}`);
      }
    });
    client.on('connect', () => {
      this.connects++;
      if (this.state === 'connecting') this.setState('idle');
      this.emit('connect', this);
      this.driver.onConnect().catch((err: Error) => this.emit('log', `${this.id}: on connect: ${err.message}`));
    });
    client.on('error', (err) => this.emit('log', `${this.id}: ${err.message}`));
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => {
        client.removeListener('connect', ok);
        reject(new Error(`${this.id}: no connection to ${this.options.broker} within ${connectTimeoutMs} ms`));
      }, connectTimeoutMs);
      const ok = () => {
        clearTimeout(timer);
        resolve();
      };
      client.once('connect', ok);
    });
  }

  async stop(): Promise<void> {
    if (this.stopped) return;
    this.stopped = true;
    for (const t of this.timers) clearTimeout(t);
    this.timers.clear();
    this.driver?.onStop?.();
    this.releaseSlot();
    if (this.slotWaiter) this.slots.cancel(this.slotWaiter);
    const client = this.client;
    if (client) await new Promise<void>((resolve) => client.end(true, {}, () => resolve()));
    this.emit('stopped');
  }

  // --- reporting -------------------------------------------------------------------------------

  setState(state: SimState, extra: { version?: string; error?: string } = {}): void {
    this.state = state;
    if (state === 'failed') this.lastError = extra.error;
    const entry: HistoryEntry = { state, at: Date.now(), ...extra };
    if (state === 'downloading') entry.percent = this.percent();
    this.history.push(entry);
    this.emit('state', state, this);
    this.emitProgress();
  }

  /** Download progress; emits 'progress' when the integer percent changes. */
  progress(received: number, total: number): void {
    this.received = received;
    this.total = total;
    const p = this.percent();
    if (p !== this.lastPercent) {
      this.lastPercent = p;
      this.emitProgress();
    }
  }

  percent(): number {
    if (this.state === 'updated') return 100;
    return this.total > 0 ? Math.min(100, Math.floor((this.received * 100) / this.total)) : 0;
  }

  info(): ProgressInfo {
    return {
      device: this.id, dialect: this.dialect, group: this.group, state: this.state,
      percent: this.percent(), received: this.received, total: this.total,
    };
  }

  private emitProgress(): void {
    this.emit('progress', this.info());
  }

  /** Records an installed image: what the tests compare with the server's SHA-256. */
  install(image: Buffer, version: string): void {
    this.image = image;
    this.sha256 = createHash('sha256').update(image).digest('hex');
    this.version = version;
    this.installs++;
  }

  // --- MQTT ------------------------------------------------------------------------------------

  publish(topic: string, payload: string | Buffer, qos: 0 | 1 = 0, retain = false): void {
    if (this.stopped || !this.client) return;
    this.client.publish(topic, payload, { qos, retain }, (err) => {
      if (err && !this.stopped) this.emit('log', `${this.id}: publish ${topic}: ${err.message}`);
    });
  }

  publishJson(topic: string, value: unknown, qos: 0 | 1 = 0): void {
    this.publish(topic, JSON.stringify(value), qos);
  }

  async subscribe(filters: string | string[], qos: 0 | 1 | 2 = 0): Promise<void> {
    if (this.stopped || !this.client) return;
    await this.client.subscribeAsync(filters, { qos });
  }

  async unsubscribe(filters: string | string[]): Promise<void> {
    if (this.stopped || !this.client) return;
    await this.client.unsubscribeAsync(filters);
  }

  /** The device reboots (into a new firmware): its connection ends and a new one starts (mqtt.js reconnects). */
  restart(): void {
    this.emit('log', `${this.id}: restarting`);
    this.client?.stream?.destroy();
  }

  /** Cuts the TCP connection abruptly (a device losing its network); mqtt.js reconnects. */
  dropConnection(): void {
    this.emit('log', `${this.id}: dropping the connection (fault injection)`);
    this.client?.stream?.destroy();
  }

  // --- time and slots --------------------------------------------------------------------------

  later(ms: number, fn: () => void): NodeJS.Timeout {
    const t = setTimeout(() => {
      this.timers.delete(t);
      if (!this.stopped) fn();
    }, ms);
    this.timers.add(t);
    return t;
  }

  cancel(t: NodeJS.Timeout | undefined): void {
    if (!t) return;
    clearTimeout(t);
    this.timers.delete(t);
  }

  /** Waits for a download slot (fleet concurrency). */
  async acquireSlot(): Promise<void> {
    if (this.holdsSlot || this.stopped) return;
    await new Promise<void>((resolve) => {
      this.slotWaiter = resolve;
      void this.slots.acquire().then(() => {
        this.slotWaiter = undefined;
        if (this.stopped) this.slots.release();
        else this.holdsSlot = true;
        resolve();
      });
    });
  }

  releaseSlot(): void {
    if (!this.holdsSlot) return;
    this.holdsSlot = false;
    this.slots.release();
  }

  // --- fault injection (each fires once) -------------------------------------------------------

  dropDue(received: number, total: number): boolean {
    const at = this.options.faults.dropAt;
    if (!this.faultsLeft.drop || at === undefined || total <= 0 || received >= total) return false;
    if (received < at * total) return false;
    this.faultsLeft.drop = false;
    return true;
  }

  /** Milliseconds to stall now, or 0. */
  stallDue(received: number, total: number): number {
    const at = this.options.faults.stallAt;
    if (!this.faultsLeft.stall || at === undefined || total <= 0) return 0;
    if (received < at * total) return 0;
    this.faultsLeft.stall = false;
    this.emit('log', `${this.id}: stalling ${this.options.faults.stallMs} ms (fault injection)`);
    return this.options.faults.stallMs ?? 0;
  }

  /** Fails every update (failRate, failDevices) until repair(). */
  get broken(): boolean {
    return this.brokenNow;
  }

  /**
   * What an operator's fix does for a device that failed every update (a bad image replaced, a
   * flash partition repaired): its next update succeeds, and it takes notices again as a fresh
   * device would (its attempts start over).
   */
  repair(): void {
    this.brokenNow = false;
    this.attempts = 0;
  }

  corruptDue(chunkIndex: number): boolean {
    if (this.broken && chunkIndex === (this.options.faults.corruptChunk ?? 0)) {
      this.emit('log', `${this.id}: corrupting chunk ${chunkIndex} (a device that fails every update)`);
      return true;
    }
    if (!this.faultsLeft.corrupt || this.options.faults.corruptChunk !== chunkIndex) return false;
    this.faultsLeft.corrupt = false;
    this.emit('log', `${this.id}: corrupting chunk ${chunkIndex} (fault injection)`);
    return true;
  }

  /** Consumes a pending fault regardless of progress (dialects whose download is one message). */
  takeFault(kind: 'drop' | 'corrupt' | 'stall'): boolean {
    if (kind === 'corrupt' && this.broken) return true;
    if (!this.faultsLeft[kind]) return false;
    this.faultsLeft[kind] = false;
    this.emit('log', `${this.id}: ${kind} (fault injection)`);
    return true;
  }

  /** A copy of `piece` with one byte flipped. */
  static flipByte(piece: Buffer, at = 0): Buffer {
    const copy = Buffer.from(piece);
    if (copy.length > 0) copy[Math.min(at, copy.length - 1)] ^= 0xff;
    return copy;
  }
}
