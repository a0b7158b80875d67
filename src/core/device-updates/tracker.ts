import { EventEmitter } from 'events';
import type { OtaRepository } from '../repository';
import type { DownloadEvent } from '../firmware/download';
import { DeviceRecord, FirmwareRecord, PresenceEvent, ProgressError, ProgressEvent } from '../types';
import { Dialect, dialectOf, leavesBySignal } from '../dialects';
import { matches } from '../topic-filter';
import { DeviceState, RolloutSummary, hasReceived, isActive } from './device-states';
import { NormalisedEvent, fromDownload, normalise } from './progress-events';

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

/** One device's notice: sent, or not built, with the reason. */
export interface NoticeOutcome {
  device: string;
  error?: ProgressError;
}

/**
 * The second argument of an assign or renotify 'command' event: a listener that builds notices
 * (ota-assign) hands it the promise of what became of each device's notice. A device whose
 * notice no listener could build is then `failed` with the reason, not left `notified` with only
 * a log line saying otherwise.
 */
export type ReportOutcomes = (outcomes: Promise<NoticeOutcome[]>) => void;

export type EventSource = 'uplink' | 'download' | 'presence' | 'timeout' | 'retry' | 'admin';

/** A device's current connection at the gateway, as far as presence events tell (reports 'none'/'download' only). */
interface Presence {
  session?: string;
  filters: string[];
  /** When this connection began (the connect event's time); unknown when first seen subscribing. */
  since?: string;
}

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
  /** Devices whose assignment ended (admin API, device deleted, a rollout's abort): no progress event says so. */
  unassigned: [devices: string[]];
  /** Any change to a device's state, whoever made it (tracker, ota-assign's msg, the admin API): rollouts observe this. */
  changed: [device: string];
}

export class RolloutTracker extends EventEmitter<RolloutTrackerEvents> {
  private timer: ReturnType<typeof setTimeout> | undefined;
  private armedFor = Infinity;
  private running = false;
  private readonly policies = new Map<string, RetryPolicy>();
  private lastSummary = '';
  private readonly onDownload = (ev: DownloadEvent) => this.download(ev);
  private readonly onPresence = (ev: PresenceEvent) => this.presence(ev);
  private readonly present = new Map<string, Presence>();

  constructor(readonly repo: OtaRepository) {
    super();
    this.setMaxListeners(0);
    repo.rollout.onChange = (s) => this.changed(s);
    // Several Node-REDs on one database: only the driver (the lease holder) times devices out and
    // retries; every instance still applies the progress it receives.
    repo.on('driving', (driving: boolean) => (driving ? this.rearm() : this.disarm()));
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
    this.repo.on('presence', this.onPresence);
    this.rearm();
  }

  stop(): void {
    this.running = false;
    this.repo.off('download', this.onDownload);
    this.repo.off('presence', this.onPresence);
    this.present.clear();
    this.disarm();
  }

  setPolicy(owner: string, policy: RetryPolicy): void {
    this.policies.set(owner, policy);
    this.rearm();
  }

  removePolicy(owner: string): void {
    if (this.policies.delete(owner)) this.rearm();
  }

  /**
   * Whether events of this device are tracked: registered devices only. Anyone on the broker can
   * publish a report for any id; a record per such id would survive restarts and fill the file.
   */
  tracks(device: string): boolean {
    return this.repo.devices.get(device) !== undefined;
  }

  /**
   * Applies one event; returns what changed (undefined when nothing a user would see did, or the
   * device is not registered: see tracks()).
   */
  record(event: ProgressEvent, source: EventSource = 'uplink'): { event: NormalisedEvent; record: DeviceState } | undefined {
    if (!this.tracks(event.device)) return undefined;
    const before = this.repo.rollout.get(event.device)?.state;
    const record = this.repo.rollout.apply(event);
    if (!record) return undefined;
    const out = normalise(record, event);
    this.emit('progress', out, record, source);
    if (record.state !== before) this.lifecycle(record, before);
    this.emitSummary();
    return { event: out, record };
  }

  /**
   * Assigns a firmware and, when an ota-assign node listens, has the notices sent. `settled`
   * resolves once every listener has said what became of the notices (failures recorded).
   */
  assign(firmware: FirmwareRecord, devices: DeviceRecord[]): { records: DeviceState[]; published: boolean; settled: Promise<void> } {
    const records = devices.map((d) => this.repo.rollout.assign(d.id, d.dialect, firmware));
    const published = this.repo.listenerCount('command') > 0;
    const toNotify = records.filter((r) => r.state !== 'updated').map((r) => r.device);
    for (const r of records) this.emit('progress', normalise(r), r, 'admin');
    let settled = Promise.resolve();
    if (published && toNotify.length) {
      for (const id of toNotify) {
        const r = this.repo.rollout.markNotified(id);
        if (r) this.emit('progress', normalise(r), r, 'admin');
      }
      // On a shared database the notices go once the assignments are in it: a report reaching
      // another instance is read against the assignment, and a driver killed now leaves it on
      // record. Awaited, never blocking: nothing else waits meanwhile.
      const durable = this.repo.rollout.durable();
      const command = { action: 'assign' as const, firmware, devices: toNotify };
      settled = durable ? durable.then(() => this.command(command)) : this.command(command);
    }
    this.emitSummary();
    return { records: records.map((r) => this.repo.rollout.get(r.device) ?? r), published, settled };
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
    for (const [id, list] of byFirmware) void this.command({ action: 'unassign', firmware: this.repo.firmware.get(id), devices: list });
    this.emitSummary();
    if (out.length) this.emit('unassigned', out.map((r) => r.device));
    return out;
  }

  summary(): RolloutSummary {
    return this.repo.rollout.summary();
  }

  /** Emits a command; resolves once the listeners' notice outcomes are recorded. */
  private command(cmd: RepositoryCommand): Promise<void> {
    const outcomes: Array<Promise<NoticeOutcome[]>> = [];
    const report: ReportOutcomes = (p) => void outcomes.push(p);
    if (cmd.action === 'assign' || cmd.action === 'renotify') this.repo.emit('command', cmd, report);
    else this.repo.emit('command', cmd);
    if (!outcomes.length) return Promise.resolve();
    return Promise.allSettled(outcomes).then((settled) => this.noticesSettled(cmd, settled));
  }

  /** A device whose notice failed with every listener that tried (and went out with none) is failed. */
  private noticesSettled(cmd: RepositoryCommand, settled: Array<PromiseSettledResult<NoticeOutcome[]>>): void {
    const sent = new Set<string>();
    const failed = new Map<string, ProgressError>();
    for (const s of settled) {
      if (s.status !== 'fulfilled' || !Array.isArray(s.value)) continue;
      for (const o of s.value) {
        if (!o.error) sent.add(o.device);
        else if (!failed.has(o.device)) failed.set(o.device, o.error);
      }
    }
    for (const [device, error] of failed) {
      if (sent.has(device)) continue;
      const r = this.repo.rollout.markFailed(device, error, cmd.firmware?.id);
      if (r) this.emit('progress', normalise(r), r, 'admin');
    }
    this.emitSummary();
  }

  /**
   * Withdraws a retained notice that would otherwise start the update again (DESIGN.md 3: Sming
   * flashes an equal patch again). A device's own notice goes once it is up to date (Biotz), or,
   * for a device that reports (TagoIO), once it has taken the image: the seed's device reports
   * nothing after its last block and would download again at its next connection. A
   * shared one (Sming: one topic per app and version line) goes only once every device assigned
   * on that topic has taken it, never while one has not (it may be offline): the topic is all it
   * would get.
   */
  private lifecycle(record: DeviceState, before: DeviceState['state'] | undefined): void {
    const dialect = dialectOf(record.dialect);
    if (!record.firmware || !dialect?.retainedNotice) return;
    if (dialect.retainedNotice === 'device') {
      const done = dialect.reports === 'progress' ? hasReceived(record.state) && !(before && hasReceived(before)) : record.state === 'updated' && before !== 'updated';
      if (done && (dialect.reports !== 'progress' || record.retained !== undefined)) this.clear(record.firmware, [record.device]);
      return;
    }
    if (record.retained === undefined || !hasReceived(record.state)) return;
    // One pass over the dialect's records: per retained topic, its devices and whether one still
    // waits; and the firmware of devices still waiting whose notice has no known topic yet (not
    // sent yet): they may be bound for any topic of that firmware.
    const topics = new Map<string, { devices: string[]; firmware: string; waiting: boolean }>();
    const unplaced = new Set<string>();
    for (const r of this.repo.rollout.records()) {
      if (r.dialect !== record.dialect || !r.firmware) continue;
      if (r.retained === undefined) {
        if (!hasReceived(r.state)) unplaced.add(r.firmware);
        continue;
      }
      const t = topics.get(r.retained) ?? { devices: [], firmware: r.firmware, waiting: false };
      t.devices.push(r.device);
      if (!hasReceived(r.state)) t.waiting = true;
      topics.set(r.retained, t);
    }
    for (const t of topics.values()) {
      if (t.waiting || unplaced.has(t.firmware)) continue;
      this.clear(t.firmware, t.devices.sort());
    }
  }

  private clear(firmwareId: string, devices: string[]): void {
    const firmware = this.repo.firmware.get(firmwareId);
    void this.command({ action: 'clear', ...(firmware ? { firmware } : {}), devices });
  }

  /**
   * What the gateway saw a device do. Only for dialects that report nothing past some point:
   * - Sming (`none`): a subscription reaching its retained notice topic while notified, or a
   *   connection that held one when the notice went out, means the broker delivered the image:
   *   `downloaded`;
   * - Sming and Biotz (`download`): a new connection after `downloaded` means the device restarted
   *   into the new firmware: `updated`.
   * Both are recorded as inferred. Without the gateway no such event comes, and the device stays
   * notified (Sming) or downloaded (Biotz): nothing else is known.
   */
  presence(ev: PresenceEvent): void {
    if (!ev || typeof ev !== 'object' || typeof ev.device !== 'string' || ev.device === '') return;
    const record = this.repo.rollout.get(ev.device);
    const dialect = dialectOf(record?.dialect ?? ev.dialect);
    if (!dialect || dialect.reports === 'progress') return;
    const at = typeof ev.at === 'string' && !Number.isNaN(Date.parse(ev.at)) ? ev.at : this.repo.now().toISOString();
    const session = typeof ev.session === 'string' ? ev.session : undefined;
    if (ev.event === 'connect') {
      this.present.set(ev.device, { session, filters: [], since: at });
      if (record?.firmware && record.state === 'downloaded') this.infer(record, 'updated', at);
      return;
    }
    const current = this.present.get(ev.device);
    // A late event of an older connection (the device reconnected first) says nothing of this one.
    if (current && session !== undefined && current.session !== undefined && current.session !== session) return;
    if (ev.event === 'subscribe') {
      const filters = Array.isArray(ev.filters) ? ev.filters.filter((f): f is string => typeof f === 'string') : [];
      if (current) current.filters.push(...filters);
      else this.present.set(ev.device, { session, filters });
      // The broker delivers a retained message to every new subscription it matches.
      if (record && this.awaitsImage(dialect, record) && filters.some((f) => matches(f, record.retained as string))) {
        this.infer(record, 'downloaded', at);
      }
    } else if (ev.event === 'disconnect') {
      this.present.delete(ev.device);
      // Subscribed when the notice went out: delivered live, no new subscription needed.
      if (current && record && this.awaitsImage(dialect, record) && current.filters.some((f) => matches(f, record.retained as string))) {
        this.infer(record, 'downloaded', at);
      }
    }
  }

  /**
   * A download heard of after the device's restart: with several Node-REDs the instance that
   * served the image writes `downloaded`, and its row may reach this one (a gateway's) after the
   * device already came back on a new connection. That connection began after the download
   * ended: the device restarted into the new firmware, as a connect event would have said.
   */
  private restartedSince(s: DeviceState): void {
    if (s.state !== 'downloaded' || !s.firmware || !this.running) return;
    const since = this.present.get(s.device)?.since;
    if (since === undefined || since <= s.stateSince) return;
    const dialect = dialectOf(s.dialect);
    if (dialect && dialect.reports !== 'progress') this.infer(s, 'updated', since);
  }

  /** A device of a dialect whose notice is the image itself (nothing else to fetch) and has not had it yet. */
  private awaitsImage(dialect: Dialect, record: DeviceState): boolean {
    return dialect.reports === 'none' && !!record.firmware && record.retained !== undefined && (record.state === 'notified' || record.state === 'timed_out');
  }

  private infer(record: DeviceState, state: 'downloaded' | 'updated', at: string): void {
    const target = state === 'updated' && record.target ? { title: record.target.title, version: record.target.version } : {};
    this.record({ device: record.device, dialect: record.dialect, state, ...target, inferred: true, at }, 'presence');
  }

  private emitSummary(): void {
    const s = this.repo.rollout.summary();
    const key = JSON.stringify(s);
    if (key === this.lastSummary) return;
    this.lastSummary = key;
    this.emit('summary', s);
  }

  /** Download events held per device until this instance's copy of its state has the notice. */
  private readonly heldDownloads = new Map<string, DownloadEvent[]>();

  private download(ev: DownloadEvent): void {
    // On a shared database the driver's notice may not have reached this instance's copy of the
    // state yet (the device was quicker than NOTIFY): hold the device's events, in order, and
    // look again shortly, a few times.
    const held = this.heldDownloads.get(ev.device);
    if (held) {
      if (held.length < 64) held.push(ev);
      return;
    }
    if (this.repo.backend && this.repo.rollout.get(ev.device)?.firmware !== ev.firmware) {
      const queue = [ev];
      this.heldDownloads.set(ev.device, queue);
      let tries = 0;
      const retry = () => {
        if (this.repo.rollout.get(ev.device)?.firmware !== ev.firmware && ++tries < 8) {
          setTimeout(retry, 250).unref?.();
          return;
        }
        this.heldDownloads.delete(ev.device);
        for (const e of queue) this.applyDownload(e);
      };
      setTimeout(retry, 250).unref?.();
      return;
    }
    this.applyDownload(ev);
  }

  private applyDownload(ev: DownloadEvent): void {
    const record = this.repo.rollout.get(ev.device);
    const dialect = this.repo.devices.get(ev.device)?.dialect ?? record?.dialect;
    if (!dialect) return;
    const event = fromDownload(ev, record, dialect, this.repo.now().toISOString());
    if (event) this.record(event, 'download');
  }

  /** When something must happen for this record next: a timeout or a retry. */
  private deadline(s: DeviceState, p: RetryPolicy): number | undefined {
    const reports = s.firmware ? dialectOf(s.dialect)?.reports : undefined;
    if (!reports) return undefined;
    // A state the device cannot leave by anything we see (Sming after its notice, Biotz after its
    // download) never times out: waiting proves nothing, and a retry would only publish again what
    // the device took already (Sming: the whole image, flashed again).
    if (isActive(s.state)) return p.timeoutMs > 0 && leavesBySignal(reports, s.state) ? Date.parse(s.progressAt ?? s.stateSince) + p.timeoutMs : undefined;
    if ((s.state === 'failed' || s.state === 'timed_out') && reports !== 'none' && p.retries > 0 && s.attempts < 1 + p.retries) {
      return Date.parse(s.stateSince) + backoffFor(p, s.attempts);
    }
    return undefined;
  }

  private changed(s: DeviceState): void {
    this.emit('changed', s.device);
    this.restartedSince(s);
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
    if (!this.repo.isDriver) return;
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
    if (!this.running || !p || !this.repo.isDriver) return;
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
      void this.command({ action: 'renotify', firmware, devices });
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
