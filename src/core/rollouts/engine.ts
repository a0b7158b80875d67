import { EventEmitter } from 'events';
import { randomUUID } from 'crypto';
import { OtaError } from '../types';
import {
  Counts, DeviceEntry, DevicePhase, GroupRecord, PauseReason, Plan, Rollout, RolloutEvent, Targets,
  emptyCounts, errorsOf, finishedOf, inFlightOf,
} from './model';
import { splitGroups } from './plan';
import { Clock, RolloutEffects, RolloutPersistence, TargetDevice, systemClock } from './ports';
import { refuseSplitSharedNotices } from './shared-notices';

// The rollout engine: decides which devices get their notice when, from device events, the plan
// and the clock. Thresholds are evaluated on the device event that changes a group's counts, in
// the same call: a crossing pauses the rollout before anything else is released. One timer for
// every rollout (jitter, rate window, soak ends, group start times), never one per device.

export interface CreateInput {
  name?: string;
  firmware: { id: string; version: string };
  targets: Targets;
  plan: Plan;
  /** The targets, in the order groups take them. */
  devices: TargetDevice[];
  /** Devices a gateway holds Sming's shared notice back from until released (shared-notices.ts). */
  gated?: (device: string) => boolean;
}

export type Action = 'start' | 'pause' | 'resume' | 'abort' | 'retry' | 'next';
export const ACTIONS: readonly Action[] = ['start', 'pause', 'resume', 'abort', 'retry', 'next'];

const MINUTE = 60_000;
/** Rollouts kept (finished and aborted ones included, until deleted): the file stays bounded. */
export const MAX_ROLLOUTS = 1000;
/**
 * Finished and aborted assignments kept: assigning is routine, each one a rollout, so the oldest
 * over this many are forgotten (the device states keep each device's own record).
 */
export const MAX_ENDED_ASSIGNMENTS = 100;
const MAX_DELAY = 2 ** 31 - 1;

/** What the engine keeps per rollout besides the record: counts, order and queues, all rebuilt on load. */
interface Live {
  r: Rollout;
  counts: Counts[];
  total: Counts;
  byGroup: DeviceEntry[][];
  /** Per group: entries before this index are not waiting (reset when entries go back to waiting). */
  cursor: number[];
  /** When each notice of the last minute was queued (rate). */
  window: number[];
  /** Entries queued with a notice due later (jitter), and soaking entries in order of soak end. */
  queued: DeviceEntry[];
  soaks: DeviceEntry[];
}

function terminal(r: Rollout): boolean {
  return r.state === 'finished' || r.state === 'aborted';
}

function pct(n: number, of: number): string {
  return `${of ? Math.round((n * 1000) / of) / 10 : 0} %`;
}

export interface RolloutEngineEvents {
  event: [event: RolloutEvent];
}

/** Phases in which a shared (Sming) notice is withheld from the device (noticeReleased). */
const WITHHELD_PHASES: ReadonlySet<DevicePhase> = new Set<DevicePhase>(['waiting', 'queued', 'soaking', 'succeeded', 'cancelled']);

export class RolloutEngine extends EventEmitter<RolloutEngineEvents> {
  private readonly live = new Map<string, Live>();
  /** Devices of rollouts not finished or aborted: a device is in one such rollout at most. */
  private readonly byDevice = new Map<string, { l: Live; e: DeviceEntry }>();
  private readonly online = new Map<string, boolean>();
  private timer: unknown;
  private armedFor = Infinity;
  private busy = false;
  private readonly pending = new Set<string>();
  private stopped = false;
  /** Devices whose notice may not have gone out, checked once at `until` (resume()). */
  private inDoubt: { until: number; devices: Map<string, string[]> } | undefined;

  /**
   * `inDoubtMs` (a shared database, where other instances kept hearing the devices while no one
   * drove): on resume, released devices that show no reaction to their notice get it again if
   * they still show none this long after. Unset (files: nothing was heard while Node-RED was
   * down, silence proves nothing), they wait for the tracker's timeout and retry.
   */
  constructor(
    private readonly effects: RolloutEffects,
    private readonly store: RolloutPersistence,
    private readonly clock: Clock = systemClock,
    private readonly options: { inDoubtMs?: number } = {},
  ) {
    super();
    this.setMaxListeners(0);
    const replay = store.replay();
    for (const r of store.load()) {
      for (const { devices, at } of replay.get(r.id) ?? []) {
        const set = new Set(devices);
        for (const e of r.devices) if (set.has(e.device) && (e.phase === 'waiting' || e.phase === 'queued')) Object.assign(e, { phase: 'released', releasedAt: at });
      }
      // A queued notice that was not released never went out: it waits again.
      for (const e of r.devices) if (e.phase === 'queued') { e.phase = 'waiting'; delete e.notifyAt; }
      this.index(r);
    }
  }

  /** Catches up after a restart: devices whose release is written but unknown to the tracker, and every rule. */
  resume(): void {
    this.stopped = false;
    this.run(() => {
      for (const l of this.live.values()) {
        if (terminal(l.r)) continue;
        const unknown = l.r.devices.filter((e) => e.phase === 'released' && this.effects.status(e.device)?.firmware !== l.r.firmware).map((e) => e.device);
        if (unknown.length) this.effects.adopt(l.r.firmware, unknown);
        for (const e of l.r.devices) this.observe(l, e);
        this.step(l);
      }
      this.doubt();
    });
  }

  /**
   * The last driver died between writing a release and its notices going out, or just after:
   * which, nobody knows. A device that had its notice reacts within moments (a report, a
   * download) and other instances record it; one still silent `inDoubtMs` after the takeover
   * never had it, and gets it now, once (not twice to a device that had it: it reacted).
   */
  private doubt(): void {
    const ms = this.options.inDoubtMs;
    if (!ms) return;
    const devices = new Map<string, string[]>();
    for (const l of this.live.values()) {
      if (terminal(l.r)) continue;
      const ids = l.r.devices.filter((e) => e.phase === 'released' && this.unanswered(l, e.device)).map((e) => e.device);
      if (ids.length) devices.set(l.r.id, ids);
    }
    this.inDoubt = devices.size ? { until: this.clock.now() + ms, devices } : undefined;
  }

  private unanswered(l: Live, device: string): boolean {
    const s = this.effects.status(device);
    return !!s && !s.silent && s.firmware === l.r.firmware && (s.state === 'assigned' || s.state === 'notified');
  }

  private resolveDoubt(): void {
    const doubt = this.inDoubt;
    if (!doubt || this.clock.now() < doubt.until) return;
    this.inDoubt = undefined;
    for (const [id, devices] of doubt.devices) {
      const l = this.live.get(id);
      if (!l || terminal(l.r)) continue;
      const still = devices.filter((d) => {
        const hit = this.byDevice.get(d);
        return hit?.l === l && hit.e.phase === 'released' && this.unanswered(l, d);
      });
      if (still.length) this.effects.retry(l.r.firmware, still);
    }
  }

  stop(): void {
    this.stopped = true;
    this.disarm();
  }

  /** Writes the rollouts now: an operator's pause or abort must survive a kill -9 that follows the answer. */
  persist(): Promise<void> {
    this.save();
    return this.store.flush();
  }

  /** True while a rollout that is not over will (or did) release this firmware. */
  usesFirmware(id: string): boolean {
    // An assignment's devices hold the firmware in their device states already (the catalogue asks those).
    for (const l of this.live.values()) if (l.r.firmware === id && !terminal(l.r) && l.r.kind !== 'assignment') return true;
    return false;
  }

  list(): Rollout[] {
    return [...this.live.values()].map((l) => l.r);
  }

  get(id: string): Rollout {
    const l = this.live.get(id);
    if (!l) throw new OtaError('unknown_rollout', `unknown rollout: ${id}`, 'rollout');
    return l.r;
  }

  /**
   * May this device have a notice that reaches it whether or not it was meant for it (Sming's
   * shared retained topic, held back at the gateway)? Yes outside every rollout that is not over;
   * inside one, only while released: not before its group (waiting, queued), and not once it has
   * taken it (a second copy is flashed again).
   */
  noticeReleased(device: string): boolean {
    const hit = this.byDevice.get(device);
    // An assignment holds nothing back: every device is released at once, as before assignments
    // were rollouts (a Sming device the tracker took for updated when the whole fleet reconnected
    // after a broker crash was otherwise refused the retained notice it never had).
    if (!hit || hit.l.r.kind === 'assignment') return true;
    // Held back: not yet released (a later group), taken already (Sming flashes an equal patch
    // again), or cancelled. A device that failed or timed out may have it: the tracker's retries
    // send it again.
    return !WITHHELD_PHASES.has(hit.e.phase);
  }

  /** Counts per group and in total. */
  counts(id: string): { groups: Counts[]; total: Counts } {
    const l = this.live.get(id);
    if (!l) throw new OtaError('unknown_rollout', `unknown rollout: ${id}`, 'rollout');
    return { groups: l.counts.map((c) => ({ ...c })), total: { ...l.total } };
  }

  create(input: CreateInput): Rollout {
    if (!input.devices.length) throw new OtaError('bad_field', 'the targets match no device', 'targets');
    if (this.live.size >= MAX_ROLLOUTS) throw new OtaError('too_many_rollouts', `${MAX_ROLLOUTS} rollouts are kept already: delete finished or aborted ones first`, 'rollout');
    const busy = input.devices.filter((d) => this.byDevice.has(d.id));
    if (busy.length) {
      const shown = busy.slice(0, 5).map((d) => `${d.id} (${this.byDevice.get(d.id)?.l.r.id})`).join(', ');
      throw new OtaError('device_in_rollout', `${busy.length} target device${busy.length === 1 ? ' is' : 's are'} in another rollout not finished or aborted: ${shown}`, 'targets');
    }
    const split = splitGroups(input.plan.groups, input.devices.length);
    refuseSplitSharedNotices(input.devices, split[0].size, input.firmware.version, input.gated);
    const now = this.clock.now();
    const groups: GroupRecord[] = [];
    const devices: DeviceEntry[] = [];
    let at = 0;
    split.forEach(({ spec, size }, index) => {
      const startAt = spec.startAt ? Date.parse(spec.startAt) : undefined;
      const success = { ...input.plan.success, ...spec.success };
      // parsePlan already completed a group's own condition from the plan's: taken as it is (merged
      // again, a group's {count} would gain the plan's {percent} back).
      const error = spec.error ?? input.plan.error;
      groups.push({ index, size, state: 'pending', ...(startAt !== undefined ? { startAt } : {}), success, ...(error ? { error: error as GroupRecord['error'] } : {}) });
      for (const d of input.devices.slice(at, at + size)) devices.push({ device: d.id, group: index, phase: 'waiting', ...(d.previous ? { previous: d.previous } : {}) });
      at += size;
    });
    const r: Rollout = {
      id: randomUUID(),
      name: input.name ?? `rollout of ${input.firmware.version}`,
      firmware: input.firmware.id,
      targets: input.targets,
      plan: input.plan,
      state: 'draft',
      createdAt: now,
      groups,
      devices,
    };
    const l = this.index(r);
    this.emitEvent(l, 'created');
    this.save();
    return r;
  }

  /**
   * Records an assignment whose notices its caller sent already (POST /ota/assignments, an
   * ota-assign node's msg): a rollout of one group, every device released. A device in another
   * rollout leaves it (cancelled there: assigned outside it), as its device state already says.
   * Undefined when MAX_ROLLOUTS are kept and none is an ended assignment to forget: the
   * assignment stands without its record.
   */
  recordAssignment(input: { firmware: { id: string; version: string }; devices: TargetDevice[] }): Rollout | undefined {
    if (!input.devices.length) return undefined;
    this.forgetEndedAssignments(MAX_ENDED_ASSIGNMENTS - 1);
    if (this.live.size >= MAX_ROLLOUTS && !this.forgetEndedAssignments(0)) return undefined;
    const now = this.clock.now();
    let r: Rollout | undefined;
    this.run(() => {
      const left = new Set<Live>();
      for (const d of input.devices) {
        const hit = this.byDevice.get(d.id);
        if (!hit) continue;
        this.finish(hit.l, hit.e, 'cancelled', 'assigned outside this rollout');
        left.add(hit.l);
      }
      const rollout: Rollout = {
        id: randomUUID(),
        kind: 'assignment',
        name: `assignment of ${input.firmware.version}`,
        firmware: input.firmware.id,
        targets: { devices: input.devices.map((d) => d.id) },
        plan: { groups: 1, success: { percent: 100, action: 'next' }, jitterMs: 0, soakMs: 0, revertOnAbort: false },
        state: 'running',
        createdAt: now,
        startedAt: now,
        groups: [{ index: 0, size: input.devices.length, state: 'running', startedAt: now, success: { percent: 100, action: 'next' } }],
        devices: input.devices.map((d) => ({ device: d.id, group: 0, phase: 'released', releasedAt: now, ...(d.previous ? { previous: d.previous } : {}) })),
      };
      const l = this.index(rollout);
      this.emitEvent(l, 'created');
      this.emitEvent(l, 'started');
      for (const e of rollout.devices) this.observe(l, e);
      for (const other of left) this.step(other);
      this.step(l);
      r = rollout;
    });
    return r;
  }

  /** Forgets the oldest ended assignments until at most `keep` remain; true if it forgot any. */
  private forgetEndedAssignments(keep: number): boolean {
    const ended = [...this.live.values()].filter((l) => l.r.kind === 'assignment' && terminal(l.r));
    if (ended.length <= keep) return false;
    ended.sort((a, b) => (a.r.endedAt ?? 0) - (b.r.endedAt ?? 0));
    for (const l of ended.slice(0, ended.length - keep)) this.live.delete(l.r.id);
    return true;
  }

  /** Forgets a rollout that is a draft, finished or aborted. */
  remove(id: string): Rollout {
    const r = this.get(id);
    if (r.state !== 'draft' && !terminal(r)) throw new OtaError('rollout_active', `rollout ${id} is ${r.state}: abort it first`, 'rollout');
    for (const e of r.devices) if (this.byDevice.get(e.device)?.l.r === r) this.byDevice.delete(e.device);
    this.live.delete(id);
    this.save();
    return r;
  }

  act(id: string, action: Action): Rollout {
    const l = this.live.get(id);
    if (!l) throw new OtaError('unknown_rollout', `unknown rollout: ${id}`, 'rollout');
    const r = l.r;
    const refuse = (): never => {
      throw new OtaError('bad_state', `cannot ${action} a rollout that is ${r.state}${r.reason ? ` (${r.reason})` : ''}`, 'action');
    };
    this.run(() => {
      switch (action) {
        case 'start':
          if (r.state !== 'draft') refuse();
          r.state = 'running';
          r.startedAt = this.clock.now();
          this.emitEvent(l, 'started');
          break;
        case 'pause':
          if (r.state !== 'running' && r.state !== 'scheduled' && !(r.state === 'paused' && r.reason === 'schedule')) refuse();
          this.pause(l, 'manual', 'paused by an operator');
          break;
        case 'resume':
          if (r.state !== 'paused') refuse();
          // The group whose condition paused the rollout no longer holds it back: its remaining
          // devices go ahead, and the next group starts once it has finished.
          for (const g of r.groups) if (g.state === 'failed' || (g.state === 'succeeded' && g.success.action === 'pause')) g.overridden = true;
          r.state = 'running';
          delete r.reason;
          delete r.detail;
          this.emitEvent(l, 'resumed');
          break;
        case 'abort':
          if (terminal(r)) refuse();
          this.abort(l, 'aborted by an operator');
          break;
        case 'retry': {
          if (terminal(r) || r.state === 'draft') refuse();
          const failed = r.devices.filter((e) => e.phase === 'failed' || e.phase === 'timed_out');
          // Within the rate and maxConcurrent like any notice (paused or not): as many as they
          // allow go now, the rest wait for release() (once running) in their group's turn.
          const now = this.clock.now();
          while (l.window.length && l.window[0] <= now - MINUTE) l.window.shift();
          const budget = Math.max(0, Math.min(this.rate(l) - l.window.length, (r.plan.maxConcurrent ?? Infinity) - inFlightOf(l.total)));
          const again = failed.slice(0, budget);
          for (const e of failed.slice(budget)) {
            this.setPhase(l, e, 'waiting');
            delete e.reason;
          }
          if (again.length) this.store.released(r.id, again.map((e) => e.device), now);
          for (const e of again) {
            this.setPhase(l, e, 'released');
            e.releasedAt = now;
            e.queuedAt = now;
            l.window.push(now);
            delete e.reason;
          }
          if (failed.length) {
            // The failed group is given another chance: its error condition counts afresh.
            for (const g of r.groups) if (g.state === 'failed' && !g.overridden && errorsOf(l.counts[g.index]) === 0) g.state = 'running';
          }
          if (again.length) {
            this.effects.retry(r.firmware, again.map((e) => e.device));
            for (const e of again) this.observe(l, e);
          }
          break;
        }
        case 'next': {
          if (terminal(r) || r.state === 'draft') refuse();
          const g = r.groups.find((x) => x.state === 'pending');
          if (!g) throw new OtaError('bad_state', 'every group has started already', 'action');
          for (const x of r.groups) if (x.state !== 'pending') x.overridden = true;
          this.startGroup(l, g);
          if (r.state === 'paused' || r.state === 'scheduled') {
            r.state = 'running';
            delete r.reason;
            delete r.detail;
            this.emitEvent(l, 'resumed');
          }
          break;
        }
      }
      this.step(l);
    });
    return r;
  }

  /** A device's update changed (tracker progress): applies it, then every rule, at once. */
  deviceChanged(device: string): void {
    if (!this.byDevice.has(device)) return;
    this.pending.add(device);
    this.run(() => undefined);
  }

  /** Presence at the gateway, where known: a device silent at the end of its soak has failed. */
  presence(device: string, event: 'connect' | 'disconnect' | 'subscribe'): void {
    if (!this.byDevice.has(device)) return;
    this.online.set(device, event !== 'disconnect');
  }

  /** Runs `fn` and then every device event that arrived meanwhile (effects may report synchronously). */
  private run(fn: () => void): void {
    if (this.busy) {
      fn();
      return;
    }
    this.busy = true;
    try {
      fn();
      while (this.pending.size) {
        const [device] = this.pending;
        this.pending.delete(device);
        const hit = this.byDevice.get(device);
        if (!hit || terminal(hit.l.r)) continue;
        this.observe(hit.l, hit.e);
        this.step(hit.l);
      }
    } finally {
      this.busy = false;
    }
    // No rollout, nothing to write: a repository that never had one keeps no rollouts.json.
    if (this.live.size) this.save();
    this.arm();
  }

  private index(r: Rollout): Live {
    const l: Live = {
      r,
      counts: r.groups.map(() => emptyCounts()),
      total: emptyCounts(),
      byGroup: r.groups.map(() => []),
      cursor: r.groups.map(() => 0),
      window: [],
      queued: [],
      soaks: [],
    };
    for (const e of r.devices) {
      l.counts[e.group][e.phase] += 1;
      l.total[e.phase] += 1;
      l.byGroup[e.group].push(e);
      if (!terminal(r) && e.phase !== 'cancelled') this.byDevice.set(e.device, { l, e });
    }
    const since = this.clock.now() - MINUTE;
    l.window = r.devices.map((e) => e.queuedAt ?? e.releasedAt ?? -Infinity).filter((t) => t > since).sort((a, b) => a - b);
    l.soaks = r.devices.filter((e) => e.phase === 'soaking').sort((a, b) => (a.soakUntil ?? 0) - (b.soakUntil ?? 0));
    this.live.set(r.id, l);
    return l;
  }

  private setPhase(l: Live, e: DeviceEntry, phase: DevicePhase): void {
    if (e.phase === phase) return;
    l.counts[e.group][e.phase] -= 1;
    l.total[e.phase] -= 1;
    e.phase = phase;
    l.counts[e.group][phase] += 1;
    l.total[phase] += 1;
    if (phase === 'waiting' && l.cursor[e.group] > 0) l.cursor[e.group] = 0;
    // Cancelled is final: the device is free for another rollout (or assignment).
    if (phase === 'cancelled' && this.byDevice.get(e.device)?.e === e) this.byDevice.delete(e.device);
    if (phase === 'succeeded' || phase === 'failed' || phase === 'timed_out' || phase === 'cancelled') e.finishedAt = this.clock.now();
  }

  private finish(l: Live, e: DeviceEntry, phase: DevicePhase, reason?: string): void {
    this.setPhase(l, e, phase);
    if (reason) e.reason = reason;
    else delete e.reason;
    delete e.soakUntil;
  }

  /** Maps the device's update state onto its phase in the rollout. */
  private observe(l: Live, e: DeviceEntry): void {
    if (e.phase === 'waiting' || e.phase === 'queued' || e.phase === 'succeeded' || e.phase === 'cancelled') return;
    const s = this.effects.status(e.device);
    if (!s || s.firmware !== l.r.firmware) {
      // Unassigned, or given another firmware, by someone else.
      if (e.phase === 'released' || e.phase === 'soaking') this.finish(l, e, 'cancelled', 'its assignment was changed outside the rollout');
      return;
    }
    const now = this.clock.now();
    if (s.state === 'updated') {
      if (e.phase === 'soaking') return;
      if (l.r.plan.soakMs > 0) {
        this.setPhase(l, e, 'soaking');
        e.soakUntil = now + l.r.plan.soakMs;
        l.soaks.push(e);
      } else this.finish(l, e, 'succeeded');
    } else if (s.state === 'failed') {
      if (e.phase !== 'failed') this.finish(l, e, 'failed', s.error ?? (e.phase === 'soaking' ? 'reported a failure during the soak' : 'reported a failure'));
    } else if (s.state === 'timed_out') {
      if (e.phase === 'released') this.finish(l, e, 'timed_out', s.error ?? 'timed out');
    } else if (e.phase === 'soaking') {
      this.finish(l, e, 'failed', 'left the target version during the soak');
    } else if (e.phase === 'failed' || e.phase === 'timed_out') {
      // The tracker sent it again (its retry policy): in flight once more.
      this.setPhase(l, e, 'released');
      delete e.reason;
    }
  }

  /** Every rule for one rollout: soak ends, conditions, groups, releases. */
  private step(l: Live): void {
    const r = l.r;
    if (terminal(r) || r.state === 'draft') return;
    const now = this.clock.now();
    while (l.soaks.length && (l.soaks[0].phase !== 'soaking' || (l.soaks[0].soakUntil ?? 0) <= now)) {
      const e = l.soaks.shift() as DeviceEntry;
      if (e.phase !== 'soaking') continue;
      if (this.online.get(e.device) === false) this.finish(l, e, 'failed', 'went silent during the soak');
      else this.finish(l, e, 'succeeded');
    }
    for (const g of r.groups) if (g.state !== 'pending') this.evaluate(l, g);
    if (terminal(r)) return;
    this.progress(l);
    this.release(l);
    if (r.state !== 'paused' && r.groups.every((g) => g.state !== 'pending') && inFlightOf(l.total) + l.total.waiting + l.total.soaking === 0) {
      this.end(l, 'finished');
    }
  }

  /** A group's conditions, on its current counts. Error first: a group can fail on the report that would have completed it. */
  private evaluate(l: Live, g: GroupRecord): void {
    const r = l.r;
    // An assignment has no conditions: it ends once every device has.
    if (r.kind === 'assignment') return;
    const c = l.counts[g.index];
    const errors = errorsOf(c);
    const finished = finishedOf(c);
    const err = g.error;
    if (err && !g.overridden && g.state !== 'failed' && finished >= err.minFinished &&
        ((err.count !== undefined && errors > err.count) || (err.percent !== undefined && errors * 100 > err.percent * g.size))) {
      g.state = 'failed';
      const limit = err.count !== undefined && errors > err.count ? `more than ${err.count}` : `over ${err.percent} %`;
      const detail = `group ${g.index + 1}: ${errors} of ${g.size} failed, ${limit} (${finished} finished)`;
      this.emitEvent(l, 'threshold', g.index, detail);
      if (err.action === 'abort') this.abort(l, detail);
      else this.pause(l, 'threshold', detail);
      return;
    }
    if (g.state === 'running' && c.succeeded * 100 >= g.success.percent * g.size) {
      g.state = 'succeeded';
      this.emitEvent(l, 'group-succeeded', g.index, `group ${g.index + 1}: ${c.succeeded} of ${g.size} succeeded`);
      // Already paused (by hand, or a threshold): that pause stands, and resume approves the next group.
      if (g.success.action === 'pause' && g.index < r.groups.length - 1 && r.state === 'running') this.pause(l, 'threshold', `group ${g.index + 1} reached its success condition: trigger the next group`);
      return;
    }
    if (g.state === 'running' && finished === g.size && !g.overridden) {
      g.state = 'failed';
      const detail = `group ${g.index + 1} finished with ${c.succeeded} of ${g.size} succeeded, under ${g.success.percent} %`;
      this.emitEvent(l, 'threshold', g.index, detail);
      this.pause(l, 'threshold', detail);
    }
  }

  /** Has this group let the next one start? */
  private passed(l: Live, g: GroupRecord): boolean {
    if (g.state === 'succeeded') return g.success.action === 'next' || g.overridden === true;
    const c = l.counts[g.index];
    return g.overridden === true && c.waiting + inFlightOf(c) + c.soaking === 0;
  }

  /** Starts the next group once the ones before it have passed, at its start time. */
  private progress(l: Live): void {
    const r = l.r;
    if (r.state === 'paused' && r.reason !== 'schedule') return;
    for (const g of r.groups) {
      if (g.state !== 'pending') {
        if (!this.passed(l, g)) return;
        continue;
      }
      if (g.startAt !== undefined && g.startAt > this.clock.now()) {
        const started = r.groups.some((x) => x.state !== 'pending');
        if (!started && r.state !== 'scheduled') {
          r.state = 'scheduled';
          this.emitEvent(l, 'paused', g.index, `group ${g.index + 1} starts at ${new Date(g.startAt).toISOString()}`);
        } else if (started && r.state === 'running') {
          this.pause(l, 'schedule', `group ${g.index + 1} starts at ${new Date(g.startAt).toISOString()}`);
        }
        return;
      }
      if (r.state === 'scheduled' || (r.state === 'paused' && r.reason === 'schedule')) {
        r.state = 'running';
        delete r.reason;
        delete r.detail;
        this.emitEvent(l, 'resumed');
      }
      this.startGroup(l, g);
      return;
    }
  }

  private startGroup(l: Live, g: GroupRecord): void {
    g.state = 'running';
    g.startedAt = this.clock.now();
    this.emitEvent(l, 'group-started', g.index, `group ${g.index + 1} of ${l.r.groups.length}: ${g.size} devices`);
  }

  /** Notices a minute now (rate or ramp), Infinity without a rate. */
  private rate(l: Live): number {
    const rate = l.r.plan.rate;
    if (!rate) return Infinity;
    if ('perMinute' in rate) return rate.perMinute;
    const { base, factor, every, max } = rate.ramp;
    return Math.min(max ?? Infinity, Math.floor(base * factor ** Math.floor(l.total.succeeded / every)));
  }

  /** Picks the next devices within rate and concurrency, and sends the notices that are due. */
  private release(l: Live): void {
    const r = l.r;
    if (r.state !== 'running') return;
    const now = this.clock.now();
    while (l.window.length && l.window[0] <= now - MINUTE) l.window.shift();
    let budget = Math.min(this.rate(l) - l.window.length, (r.plan.maxConcurrent ?? Infinity) - inFlightOf(l.total));
    for (const g of r.groups) {
      if (budget <= 0) break;
      if (g.state === 'pending') break;
      const list = l.byGroup[g.index];
      let i = l.cursor[g.index];
      for (; i < list.length && budget > 0; i++) {
        const e = list[i];
        if (e.phase !== 'waiting') continue;
        this.setPhase(l, e, 'queued');
        e.queuedAt = now;
        e.notifyAt = now + (r.plan.jitterMs > 0 ? Math.floor(this.clock.random() * r.plan.jitterMs) : 0);
        l.window.push(now);
        l.queued.push(e);
        budget -= 1;
      }
      l.cursor[g.index] = i;
    }
    const due = l.queued.filter((e) => e.phase === 'queued' && (e.notifyAt ?? 0) <= now);
    l.queued = l.queued.filter((e) => e.phase === 'queued' && (e.notifyAt ?? 0) > now);
    if (!due.length) return;
    const ids = due.map((e) => e.device);
    // Intent first: once this returns, a restart never sends these notices again.
    try {
      this.store.released(r.id, ids, now);
    } catch (err) {
      // Not written, so not sent: they wait again, and the rollout waits for someone to resume it
      // (a timer's or a report's call must not throw: it would take Node-RED down).
      for (const e of due) {
        this.setPhase(l, e, 'waiting');
        delete e.notifyAt;
      }
      this.pause(l, 'storage', `the release of ${ids.length} device(s) could not be written (${(err as Error).message}): nothing was sent; resume once the storage is back`);
      return;
    }
    for (const e of due) {
      this.setPhase(l, e, 'released');
      e.releasedAt = now;
      delete e.notifyAt;
    }
    this.effects.notify(r.firmware, ids);
    for (const e of due) this.observe(l, e);
  }

  private pause(l: Live, reason: PauseReason, detail: string): void {
    const r = l.r;
    r.state = 'paused';
    r.reason = reason;
    r.detail = detail;
    // Picked but not sent: they wait again, and no notice goes out while paused.
    for (const e of l.queued) if (e.phase === 'queued') {
      this.setPhase(l, e, 'waiting');
      delete e.notifyAt;
    }
    l.queued = [];
    this.emitEvent(l, 'paused', undefined, detail);
  }

  private abort(l: Live, detail: string): void {
    const r = l.r;
    for (const e of l.queued) if (e.phase === 'queued') this.setPhase(l, e, 'waiting');
    l.queued = [];
    // Notices not yet acted on are withdrawn: those devices never start. Failed and timed-out
    // devices lose their assignment too, so that no retry sends them the firmware again.
    const unacted = r.devices.filter((e) => e.phase === 'released' && ['assigned', 'notified'].includes(this.effects.status(e.device)?.state ?? ''));
    for (const e of unacted) this.finish(l, e, 'cancelled', 'notice withdrawn by the abort');
    const failed = r.devices.filter((e) => (e.phase === 'failed' || e.phase === 'timed_out') && this.effects.status(e.device)?.firmware === r.firmware);
    const clear = [...unacted, ...failed].map((e) => e.device);
    if (clear.length) this.effects.clear(r.firmware, clear);
    this.end(l, 'aborted', detail);
    if (r.plan.revertOnAbort) {
      const took = r.devices.filter((e) => e.phase === 'soaking' || e.phase === 'succeeded' || (e.phase === 'released' && this.effects.status(e.device)?.state === 'updated'));
      const byPrevious = new Map<string, string[]>();
      const unknown: string[] = [];
      for (const e of took) {
        if (e.previous && e.previous !== r.firmware) byPrevious.set(e.previous, [...(byPrevious.get(e.previous) ?? []), e.device]);
        else unknown.push(e.device);
      }
      for (const [firmware, devices] of byPrevious) this.effects.revert(firmware, devices);
      const reverted = took.length - unknown.length;
      this.emitEvent(l, 'reverted', undefined, `${reverted} device${reverted === 1 ? '' : 's'} given their previous firmware again${unknown.length ? `; ${unknown.length} with no known previous firmware left as they are` : ''}`);
    }
  }

  private end(l: Live, state: 'finished' | 'aborted', detail?: string): void {
    const r = l.r;
    r.state = state;
    r.endedAt = this.clock.now();
    // An assignment's group failed if a device did; a cancelled one was unassigned or assigned again.
    if (r.kind === 'assignment') for (const g of r.groups) g.state = l.counts[g.index].failed + l.counts[g.index].timed_out ? 'failed' : 'succeeded';
    delete r.reason;
    if (detail) r.detail = detail;
    else delete r.detail;
    for (const e of r.devices) if (this.byDevice.get(e.device)?.l === l) this.byDevice.delete(e.device);
    this.emitEvent(l, state, undefined, detail);
  }

  private emitEvent(l: Live, type: RolloutEvent['type'], group?: number, detail?: string): void {
    const counts = group !== undefined ? l.counts[group] : l.total;
    this.emit('event', { type, rollout: l.r.id, ...(l.r.kind ? { kind: l.r.kind } : {}), ...(group !== undefined ? { group } : {}), ...(detail ? { detail } : {}), counts: { ...counts }, at: this.clock.now() });
  }

  private readonly snapshot = (): Rollout[] => this.list();

  private save(): void {
    this.store.save(this.snapshot);
  }

  /** When the next timed rule falls due: a jittered notice, a rate slot, a soak end, a group start. */
  private nextWake(l: Live): number {
    const r = l.r;
    if (terminal(r) || r.state === 'draft') return Infinity;
    let at = Infinity;
    for (const e of l.soaks) if (e.phase === 'soaking') { at = Math.min(at, e.soakUntil ?? 0); break; }
    if (r.state === 'running') {
      for (const e of l.queued) at = Math.min(at, e.notifyAt ?? 0);
      if (l.total.waiting > 0 && l.window.length && l.window.length >= this.rate(l)) at = Math.min(at, l.window[0] + MINUTE);
    }
    if (r.state === 'scheduled' || r.state === 'running' || (r.state === 'paused' && r.reason === 'schedule')) {
      const next = r.groups.find((g) => g.state === 'pending');
      if (next?.startAt !== undefined) at = Math.min(at, next.startAt);
    }
    return at;
  }

  private disarm(): void {
    if (this.timer !== undefined) this.clock.clearTimeout(this.timer);
    this.timer = undefined;
    this.armedFor = Infinity;
  }

  private arm(): void {
    if (this.stopped) return;
    let at = Infinity;
    for (const l of this.live.values()) at = Math.min(at, this.nextWake(l));
    if (this.inDoubt) at = Math.min(at, this.inDoubt.until);
    if (at === this.armedFor) return;
    this.disarm();
    if (at === Infinity) return;
    this.armedFor = at;
    this.timer = this.clock.setTimeout(() => {
      this.timer = undefined;
      this.armedFor = Infinity;
      this.run(() => {
        this.resolveDoubt();
        for (const l of this.live.values()) this.step(l);
      });
    }, Math.min(MAX_DELAY, Math.max(0, at - this.clock.now())));
  }

  /** A short status line: "wave 2/3, 41 %, 2 failed". */
  static statusLine(r: Rollout, total: Counts): string {
    const started = r.groups.filter((g) => g.state !== 'pending').length;
    const errors = errorsOf(total);
    return `wave ${Math.max(1, started)}/${r.groups.length}, ${pct(total.succeeded, r.devices.length)}${errors ? `, ${errors} failed` : ''}`;
  }
}
