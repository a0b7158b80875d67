import { EventEmitter } from 'events';
import type { OtaRepository } from '../repository';
import type { DownloadEvent } from '../firmware/download';
import type { DeviceRecord, DialectName, FirmwareRecord, ProgressEvent } from '../types';
import { DeviceState, RolloutSummary, isActive } from './rollout-store';
import { NormalisedEvent, fromDownload, normalise } from './events';

// One tracker per repository: the single place where progress is applied to the rollout store,
// timeouts fire and retries go out. Several progress-parser nodes, the download route and the
// admin API all go through it, so a download event counts once however many nodes listen, and
// there is one timer per repository, never one per node.

export interface RetryPolicy {
  /** No progress for this long marks an active device timed_out; 0 disables timeouts. */
  timeoutMs: number;
  /** Notices sent again after a failure or timeout; 0 disables retries. */
  retries: number;
  /** Wait before the first retry; each further retry waits backoffFactor times longer. */
  backoffMs: number;
  backoffFactor: number;
  maxBackoffMs: number;
}

export const DEFAULT_POLICY: RetryPolicy = {
  timeoutMs: 30 * 60_000,
  retries: 3,
  backoffMs: 60_000,
  backoffFactor: 2,
  maxBackoffMs: 60 * 60_000,
};

/**
 * What the tracker and the admin API ask the flow to publish. They never publish themselves:
 * ota-assign nodes listen on the repository (`repo.on('command')`) and send the notices through
 * the user's `mqtt out`. Attempts are already counted when a command is emitted.
 */
export interface RepositoryCommand {
  action: 'assign' | 'unassign' | 'renotify' | 'clear';
  firmware?: FirmwareRecord;
  devices: string[];
}

export type EventSource = 'uplink' | 'download' | 'timeout' | 'retry' | 'admin';

/** Dialects whose notice stays retained on the broker and would start the update again (DESIGN.md 3). */
export const RETAINED_NOTICE: ReadonlySet<DialectName> = new Set<DialectName>(['sming', 'biotz']);

const MAX_DELAY = 2 ** 31 - 1;

function nonNegative(value: unknown, fallback: number): number {
  if (value === undefined || value === null || value === '') return fallback;
  const n = Number(value);
  return Number.isFinite(n) && n >= 0 ? n : fallback;
}

/** A policy from a node's settings: timeout and backoff in seconds; blank or bad values get the defaults. */
export function policyFromSettings(settings: { timeout?: unknown; retries?: unknown; backoff?: unknown }): RetryPolicy {
  return {
    ...DEFAULT_POLICY,
    timeoutMs: Math.round(nonNegative(settings.timeout, DEFAULT_POLICY.timeoutMs / 1000) * 1000),
    retries: Math.floor(nonNegative(settings.retries, DEFAULT_POLICY.retries)),
    backoffMs: Math.round(nonNegative(settings.backoff, DEFAULT_POLICY.backoffMs / 1000) * 1000),
  };
}

export function backoffFor(policy: RetryPolicy, attempts: number): number {
  const factor = Math.max(1, policy.backoffFactor);
  return Math.min(policy.maxBackoffMs, policy.backoffMs * factor ** Math.max(0, attempts - 1));
}

function duration(ms: number): string {
  return ms % 60_000 === 0 ? `${ms / 60_000} min` : `${Math.round(ms / 1000)} s`;
}

export interface RolloutTrackerEvents {
  progress: [event: NormalisedEvent, record: DeviceState, source: EventSource];
  summary: [summary: RolloutSummary];
}

export class RolloutTracker extends EventEmitter<RolloutTrackerEvents> {
  private timer: ReturnType<typeof setTimeout> | undefined;
  private armedFor = Infinity;
  private running = false;
  private readonly policies = new Map<string, RetryPolicy>();
  private lastSummary = '';
  private readonly onDownload = (ev: DownloadEvent) => this.download(ev);

  constructor(readonly repo: OtaRepository) {
    super();
    this.setMaxListeners(0);
    repo.rollout.onChange = (s) => this.changed(s);
  }

  /** The policy in force: that of the first progress-parser still deployed. None, no timer work. */
  get policy(): RetryPolicy | undefined {
    for (const p of this.policies.values()) return p;
    return undefined;
  }

  get isRunning(): boolean {
    return this.running;
  }

  /** Starts listening and timing (idempotent); timeouts that fell due while stopped fire now. */
  start(): void {
    if (this.running) return;
    this.running = true;
    this.repo.on('download', this.onDownload);
    this.rearm();
  }

  stop(): void {
    this.running = false;
    this.repo.off('download', this.onDownload);
    this.disarm();
  }

  setPolicy(owner: string, policy: RetryPolicy): void {
    this.policies.set(owner, policy);
    this.rearm();
  }

  removePolicy(owner: string): void {
    if (this.policies.delete(owner)) this.rearm();
  }

  /** Applies one event; returns what changed (undefined when nothing a user would see did). */
  record(event: ProgressEvent, source: EventSource = 'uplink'): { event: NormalisedEvent; record: DeviceState } | undefined {
    const before = this.repo.rollout.get(event.device)?.state;
    const record = this.repo.rollout.apply(event);
    if (!record) return undefined;
    const out = normalise(record, event);
    this.emit('progress', out, record, source);
    if (record.state === 'updated' && before !== 'updated') this.lifecycle(record);
    this.emitSummary();
    return { event: out, record };
  }

  /** Assigns a firmware and, when an ota-assign node listens, has the notices sent. */
  assign(firmware: FirmwareRecord, devices: DeviceRecord[]): { records: DeviceState[]; published: boolean } {
    const records = devices.map((d) => this.repo.rollout.assign(d.id, d.dialect, firmware));
    const published = this.repo.listenerCount('command') > 0;
    const toNotify = records.filter((r) => r.state !== 'updated').map((r) => r.device);
    for (const r of records) this.emit('progress', normalise(r), r, 'admin');
    if (published && toNotify.length) {
      for (const id of toNotify) {
        const r = this.repo.rollout.markNotified(id);
        if (r) this.emit('progress', normalise(r), r, 'admin');
      }
      this.command({ action: 'assign', firmware, devices: toNotify });
    }
    this.emitSummary();
    return { records: records.map((r) => this.repo.rollout.get(r.device) ?? r), published };
  }

  /** Unassigns devices; the flow withdraws their notices (ThingsBoard deleted attributes, empty retained publish). */
  unassign(devices: string[]): DeviceState[] {
    const byFirmware = new Map<string, string[]>();
    const out: DeviceState[] = [];
    for (const id of devices) {
      const firmware = this.repo.rollout.get(id)?.firmware;
      const r = this.repo.rollout.unassign(id);
      if (!r) continue;
      out.push(r);
      if (firmware) byFirmware.set(firmware, [...(byFirmware.get(firmware) ?? []), id]);
    }
    for (const [id, list] of byFirmware) this.command({ action: 'unassign', firmware: this.repo.firmware.get(id), devices: list });
    this.emitSummary();
    return out;
  }

  summary(): RolloutSummary {
    return this.repo.rollout.summary();
  }

  private command(cmd: RepositoryCommand): void {
    this.repo.emit('command', cmd);
  }

  /** Up to date: withdraw a retained notice that would otherwise start the update again. */
  private lifecycle(record: DeviceState): void {
    if (!record.firmware || !RETAINED_NOTICE.has(record.dialect)) return;
    const firmware = this.repo.firmware.get(record.firmware);
    this.command({ action: 'clear', ...(firmware ? { firmware } : {}), devices: [record.device] });
  }

  private emitSummary(): void {
    const s = this.repo.rollout.summary();
    const key = JSON.stringify(s);
    if (key === this.lastSummary) return;
    this.lastSummary = key;
    this.emit('summary', s);
  }

  private download(ev: DownloadEvent): void {
    const record = this.repo.rollout.get(ev.device);
    const dialect = this.repo.devices.get(ev.device)?.dialect ?? record?.dialect;
    if (!dialect) return;
    const event = fromDownload(ev, record, dialect, this.repo.now().toISOString());
    if (event) this.record(event, 'download');
  }

  /** When something must happen for this record next: a timeout or a retry. */
  private deadline(s: DeviceState, p: RetryPolicy): number | undefined {
    if (!s.firmware) return undefined;
    if (isActive(s.state)) return p.timeoutMs > 0 ? Date.parse(s.progressAt ?? s.stateSince) + p.timeoutMs : undefined;
    if ((s.state === 'failed' || s.state === 'timed_out') && p.retries > 0 && s.attempts < 1 + p.retries) {
      return Date.parse(s.stateSince) + backoffFor(p, s.attempts);
    }
    return undefined;
  }

  private changed(s: DeviceState): void {
    const p = this.policy;
    if (!this.running || !p) return;
    const at = this.deadline(s, p);
    if (at !== undefined && at < this.armedFor) this.arm(at);
  }

  private disarm(): void {
    if (this.timer) clearTimeout(this.timer);
    this.timer = undefined;
    this.armedFor = Infinity;
  }

  private arm(at: number): void {
    this.disarm();
    this.armedFor = at;
    const delay = Math.min(MAX_DELAY, Math.max(0, at - this.repo.now().getTime()));
    this.timer = setTimeout(() => {
      this.timer = undefined;
      this.armedFor = Infinity;
      this.tick();
    }, delay);
    // The timer alone must not keep a process (or a test run) alive.
    this.timer.unref?.();
  }

  /** Re-arms from scratch (policy changed, started): the earliest deadline of any record. */
  private rearm(): void {
    this.disarm();
    if (this.running && this.policy) this.arm(this.repo.now().getTime());
  }

  /** Fires the timeouts and retries that are due, then sleeps until the next one. */
  tick(): void {
    const p = this.policy;
    if (!this.running || !p) return;
    const now = this.repo.now().getTime();
    let next = Infinity;
    const listening = this.repo.listenerCount('command') > 0;
    const due = new Map<string, string[]>();
    for (const s of this.repo.rollout.list()) {
      let at = this.deadline(s, p);
      if (at !== undefined && at <= now && isActive(s.state)) {
        const r = this.repo.rollout.markTimedOut(s.device, { code: 'timeout', message: `no progress for ${duration(p.timeoutMs)}` });
        if (r) this.emit('progress', normalise(r), r, 'timeout');
        at = r ? this.deadline(r, p) : undefined;
      }
      if (at === undefined) continue;
      if (at > now) {
        next = Math.min(next, at);
      } else if (!listening) {
        // Nobody to send the notice: look again later rather than count an attempt never made.
        next = Math.min(next, now + Math.max(p.backoffMs, 1000));
      } else if (s.firmware) {
        due.set(s.firmware, [...(due.get(s.firmware) ?? []), s.device]);
      }
    }
    for (const [id, devices] of due) {
      const firmware = this.repo.firmware.get(id);
      if (!firmware) continue;
      for (const device of devices) {
        const r = this.repo.rollout.markNotified(device);
        if (r) this.emit('progress', normalise(r), r, 'retry');
      }
      this.command({ action: 'renotify', firmware, devices });
    }
    this.emitSummary();
    if (next < this.armedFor) this.arm(next);
  }
}

const trackers = new WeakMap<OtaRepository, RolloutTracker>();

/** The repository's one tracker. */
export function trackerFor(repo: OtaRepository): RolloutTracker {
  let t = trackers.get(repo);
  if (!t) {
    t = new RolloutTracker(repo);
    trackers.set(repo, t);
  }
  return t;
}
