import { EventEmitter } from 'events';
import type { DialectName } from '../core/types';
import { isDialectName } from '../core/types';
import { SimDevice, type DriverFactory, type ResolvedOptions } from './device';
import { Semaphore } from './semaphore';
import { tencentClientId } from '../core/dialects/tencent-identity';
import type { DeviceOptions, FleetOptions, GroupOptions, ProgressInfo, SimState } from './types';
import { biotz } from './dialects/biotz';
import { sming } from './dialects/sming';
import { tago } from './dialects/tago';
import { tasmota } from './dialects/tasmota';
import { tencent } from './dialects/tencent';
import { thingsboard } from './dialects/thingsboard';

// A fleet: groups of simulated devices (one dialect each), a shared download-slot semaphore for
// `concurrency`, and the waits and summaries tests and the terminal display need.

export const DRIVERS: Record<DialectName, DriverFactory> = { biotz, sming, tago, tasmota, tencent, thingsboard };

const DEFAULTS: Omit<ResolvedOptions, 'broker'> = {
  idPattern: '{dialect}-{n}',
  startIndex: 1,
  version: '1.0.0',
  title: 'sim-firmware',
  product: 'SIMPRODUCT',
  customer: '00000000-0000-4000-8000-000000000000',
  app: 'test',
  smingPrefix: '',
  smingDecoder: 'strict',
  smingVarint: true,
  tagoVersionReports: true,
  tasmotaFlashSize: 0,
  tasmotaAttemptDelayMs: 0,
  chunkSize: 4096,
  faults: {},
  chunkTimeoutMs: 10_000,
  downloadTimeoutMs: 120_000,
  maxAttempts: 5,
  retryDelayMs: 1000,
  reconnectMs: 500,
  protocolVersion: 4,
};

const MAX_DEVICES = 100_000;

export interface GroupSummary {
  group: number;
  dialect: DialectName;
  count: number;
  states: Partial<Record<SimState, number>>;
  /** Mean percent over the group's devices (updated = 100). */
  percent: number;
  updated: number;
  failed: number;
}

export function fillPattern(pattern: string, vars: Record<string, string | number>): string {
  return pattern.replace(/\{(\w+)\}/g, (whole, key: string) => (key in vars ? String(vars[key]) : whole));
}

/** The client id the platform's own device code uses: Tencent's SDK sends `{product}{device}` (tencent-identity.ts). */
function defaultClientId(dialect: DialectName, id: string, o: ResolvedOptions): string {
  return dialect === 'tencent' ? tencentClientId(o.product, id) : id;
}

function checkOptions(o: DeviceOptions & { dialect?: unknown; count?: unknown }): void {
  if (typeof o.broker !== 'string' || !/^(mqtts?|tcp|tls|wss?):\/\//.test(o.broker)) {
    throw new Error(`broker must be a URL such as mqtt://127.0.0.1:1883 (got ${String(o.broker)})`);
  }
  if (o.count !== undefined && (!Number.isSafeInteger(o.count) || (o.count as number) < 0 || (o.count as number) > MAX_DEVICES)) {
    throw new Error(`count must be an integer from 0 to ${MAX_DEVICES}`);
  }
  if (o.chunkSize !== undefined && (!Number.isSafeInteger(o.chunkSize) || o.chunkSize < 1)) {
    throw new Error('chunkSize must be a positive integer');
  }
  if (o.protocolVersion !== undefined && o.protocolVersion !== 4 && o.protocolVersion !== 5) {
    throw new Error(`protocolVersion must be 4 (MQTT 3.1.1) or 5, not ${String(o.protocolVersion)}`);
  }
  if (o.failRate !== undefined && !(o.failRate >= 0 && o.failRate <= 1)) throw new Error('failRate is a fraction from 0 to 1');
  const f = o.faults ?? {};
  for (const key of ['dropAt', 'stallAt'] as const) {
    const v = f[key];
    if (v !== undefined && !(v >= 0 && v < 1)) throw new Error(`faults.${key} is a fraction from 0 to below 1`);
  }
}

export class Fleet extends EventEmitter {
  readonly devices: SimDevice[] = [];
  readonly groups: Array<{ dialect: DialectName; devices: SimDevice[] }> = [];
  readonly slots: Semaphore;
  private stopping?: Promise<void>;

  constructor(readonly options: FleetOptions) {
    super();
    const limit = options.concurrency ?? Infinity;
    if (!(limit >= 1)) throw new Error('concurrency must be at least 1');
    this.slots = new Semaphore(limit);
    const groups: GroupOptions[] = options.groups ?? [{ dialect: options.dialect as DialectName, count: options.count ?? 1 }];
    for (const [g, group] of groups.entries()) {
      if (!isDialectName(group.dialect)) throw new Error(`unknown dialect ${String(group.dialect)} (one of biotz, sming, tago, tasmota, tencent, thingsboard)`);
      const merged = { ...options, ...group } as DeviceOptions & GroupOptions;
      checkOptions(merged);
      const resolved: ResolvedOptions = { ...DEFAULTS, ...stripUndefined(merged), faults: merged.faults ?? {} } as ResolvedOptions;
      const count = group.count ?? 1;
      const members: SimDevice[] = [];
      for (let k = 0; k < count; k++) {
        const n = resolved.startIndex + k;
        const i = this.devices.length;
        const vars = { n, i, dialect: group.dialect };
        const id = fillPattern(resolved.idPattern, vars);
        const token = merged.tokenPattern ? fillPattern(merged.tokenPattern, { ...vars, id }) : id;
        const clientId = merged.clientIdPattern ? fillPattern(merged.clientIdPattern, { ...vars, id }) : defaultClientId(group.dialect, id, resolved);
        const deviceSecret = merged.deviceSecretPattern ? fillPattern(merged.deviceSecretPattern, { ...vars, id }) : undefined;
        const faulty = !merged.faultDevices || merged.faultDevices.includes(n);
        // failRate picks every (1/rate)th device: floor(count × rate) of them, spread over the group.
        const rate = merged.failRate ?? 0;
        const broken = (merged.failDevices?.includes(n) ?? false) || Math.floor((k + 1) * rate) > Math.floor(k * rate);
        const device = new SimDevice({ id, token, clientId, deviceSecret, dialect: group.dialect, index: i, group: g, n }, resolved, this.slots, faulty, broken);
        device.on('state', (state: SimState) => this.emit('state', device, state));
        device.on('progress', (info: ProgressInfo) => this.emit('progress', info));
        device.on('log', (line: string) => this.emit('log', line));
        device.on('connect', () => this.emit('connect', device));
        members.push(device);
        this.devices.push(device);
      }
      this.groups.push({ dialect: group.dialect, devices: members });
    }
    const ids = new Set(this.devices.map((d) => `${d.dialect}/${d.id}`));
    if (ids.size !== this.devices.length) throw new Error('device ids repeat: put {n} in idPattern');
  }

  /** Connects every device (at most 50 connecting at once); rejects and stops all if one cannot connect. */
  async start(connectTimeoutMs = 10_000): Promise<void> {
    let next = 0;
    const worker = async () => {
      while (next < this.devices.length) {
        const d = this.devices[next++];
        await d.start(DRIVERS[d.dialect], connectTimeoutMs);
      }
    };
    try {
      await Promise.all(Array.from({ length: Math.min(50, this.devices.length) }, worker));
    } catch (err) {
      await this.stop();
      throw err;
    }
  }

  /** Resolves when every device satisfies `done`; rejects after `timeoutMs` naming the ones that did not. */
  waitAll(done: (d: SimDevice) => boolean, timeoutMs: number, what = 'done'): Promise<void> {
    return new Promise((resolve, reject) => {
      const check = () => {
        if (this.devices.every(done)) {
          cleanup();
          resolve();
        }
      };
      const timer = setTimeout(() => {
        cleanup();
        const late = this.devices.filter((d) => !done(d));
        const list = late.slice(0, 10).map((d) => `${d.id} ${d.state}${d.lastError ? ` (${d.lastError})` : ''}`).join(', ');
        reject(new Error(`${late.length} of ${this.devices.length} devices not ${what} after ${timeoutMs} ms: ${list}`));
      }, timeoutMs);
      const cleanup = () => {
        clearTimeout(timer);
        this.removeListener('state', check);
        this.removeListener('connect', check);
      };
      // Re-checked on every state change and every (re)connect.
      this.on('state', check);
      this.on('connect', check);
      check();
    });
  }

  /** Every device `updated` (to `version`, if given). */
  waitAllUpdated(timeoutMs: number, version?: string): Promise<void> {
    return this.waitAll((d) => d.state === 'updated' && (version === undefined || d.version === version), timeoutMs, 'updated');
  }

  summary(): GroupSummary[] {
    return this.groups.map((g, group) => {
      const states: Partial<Record<SimState, number>> = {};
      let sum = 0;
      for (const d of g.devices) {
        states[d.state] = (states[d.state] ?? 0) + 1;
        sum += d.percent();
      }
      return {
        group, dialect: g.dialect, count: g.devices.length, states,
        percent: g.devices.length ? sum / g.devices.length : 100,
        updated: states.updated ?? 0, failed: states.failed ?? 0,
      };
    });
  }

  stop(): Promise<void> {
    this.stopping ??= Promise.all(this.devices.map((d) => d.stop())).then(() => undefined);
    return this.stopping;
  }
}

function stripUndefined<T extends object>(o: T): Partial<T> {
  return Object.fromEntries(Object.entries(o).filter(([, v]) => v !== undefined)) as Partial<T>;
}

/** Creates and connects a fleet. `await fleet.waitAllUpdated(ms)`, `fleet.devices[i].sha256`, `await fleet.stop()`. */
export async function startFleet(options: FleetOptions, connectTimeoutMs?: number): Promise<Fleet> {
  const fleet = new Fleet(options);
  await fleet.start(connectTimeoutMs);
  return fleet;
}
