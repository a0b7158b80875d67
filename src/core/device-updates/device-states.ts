import * as path from 'path';
import { JsonDocument, readJsonSync } from '../atomic-file';
import type { StateSink } from '../storage/backend';
import { DialectName, FirmwareRecord, ProgressError, ProgressEvent, ProgressState, PROGRESS_STATES } from '../types';

// One record per device: what it should run, where it is on the way there, and what went wrong.
// Persisted atomically, so a restart of Node-RED resumes the rollout where it was.

export interface DeviceState {
  device: string;
  dialect: DialectName;
  /** The assigned firmware's id; absent once unassigned. */
  firmware?: string;
  target?: { title: string; version: string };
  state: ProgressState | 'idle';
  percent?: number;
  current?: { title?: string; version?: string };
  /** How many notices were sent for this assignment (the first one included). */
  attempts: number;
  lastError?: ProgressError;
  assignedAt?: string;
  notifiedAt?: string;
  /** When the state last changed, and when the device was last heard from. */
  stateSince: string;
  lastSeen?: string;
  /** When the rollout last moved for this device (notice sent, state or percent changed): timeouts count from here. */
  progressAt?: string;
  /**
   * True when the state was inferred from the device's presence at the gateway (Sming, Biotz:
   * they report nothing past their download), not reported by the device.
   */
  inferred?: boolean;
  /** The topic where this device's notice waits retained on the broker (Biotz, Sming), until cleared. */
  retained?: string;
  /**
   * The block size its notice announced (TagoIO manifests carry one): the blocks must keep it
   * whatever the node's setting says later, a restart of Node-RED included.
   */
  chunkSize?: number;
}

export type RolloutSummary = Record<ProgressState | 'idle', number> & { total: number; percentDone: number };

const ACTIVE: ReadonlySet<string> = new Set(['notified', 'downloading', 'downloaded', 'verified', 'updating']);

export function isActive(state: DeviceState['state']): boolean {
  return ACTIVE.has(state);
}

/** States in which a device has taken its notice: a shared retained notice may go once all have. */
export function hasReceived(state: DeviceState['state']): boolean {
  return state === 'downloaded' || state === 'verified' || state === 'updating' || state === 'updated';
}

type CountKey = ProgressState | 'idle';

/** How long durable() waits for the database at most. */
const DURABLE_CAP_MS = 2000;

export class RolloutStore {
  private readonly states = new Map<string, DeviceState>();
  private readonly doc: JsonDocument<DeviceState[]>;
  /** Given a shared backend (storage/backend.ts), each changed record is written there as a row. */
  private readonly sink?: StateSink;
  /** Counts per state over assigned devices, kept up to date on every change: summary() is O(1). */
  private readonly counts = new Map<CountKey, number>();
  /** Called after every change to a record (the tracker re-arms its timer from it). */
  onChange?: (state: DeviceState) => void;

  constructor(
    dir: string,
    private readonly now: () => Date = () => new Date(),
    backend?: { records: DeviceState[]; sink: StateSink },
  ) {
    const file = path.join(dir, 'device-states.json');
    this.sink = backend?.sink;
    for (const s of backend ? backend.records : readJsonSync<DeviceState[]>(file, [])) {
      this.states.set(s.device, s);
      this.count(s, 1);
    }
    // Progress arrives in bursts: one write per half second at most (flush() on close writes the rest).
    this.doc = new JsonDocument(file, () => this.list(), 0o600, 500);
  }

  private count(s: DeviceState | undefined, delta: 1 | -1): void {
    if (!s?.firmware) return;
    this.counts.set(s.state, (this.counts.get(s.state) ?? 0) + delta);
  }

  /** Runs a mutation of one record with the counts and the file kept in step. */
  private change<T>(device: string, mutate: (before: DeviceState | undefined) => T): T {
    this.count(this.states.get(device), -1);
    const result = mutate(this.states.get(device));
    const after = this.states.get(device);
    this.count(after, 1);
    this.persist(device);
    if (after) this.onChange?.(after);
    return result;
  }

  /** One device's record changed: a row for a shared backend, the whole document for files. */
  private persist(device: string): void {
    if (!this.sink) {
      void this.doc.save();
      return;
    }
    const s = this.states.get(device);
    if (s) this.sink.put(s);
    else this.sink.remove(device);
  }

  /**
   * On a shared backend, resolves once what changed so far is in the database (at most `capMs`
   * later: a database away must not hold the caller for ever; the writes go on being retried).
   * Undefined on files: one instance, its memory is the truth, nothing to wait for.
   */
  durable(capMs = DURABLE_CAP_MS): Promise<void> | undefined {
    if (!this.sink?.shared) return undefined;
    return new Promise<void>((resolve) => {
      const cap = setTimeout(resolve, capMs);
      cap.unref?.();
      this.sink?.flush().then(
        () => { clearTimeout(cap); resolve(); },
        () => { clearTimeout(cap); resolve(); },
      );
    });
  }

  /** A record another instance wrote (null: forgotten); nothing is written back. */
  adopt(device: string, state: DeviceState | null): void {
    this.count(this.states.get(device), -1);
    if (state) this.states.set(device, state);
    else this.states.delete(device);
    this.count(state ?? undefined, 1);
    if (state) this.onChange?.(state);
  }

  /** Every record as another store holds it now (a backend's reload after a lost connection). */
  adoptAll(states: DeviceState[]): void {
    const seen = new Set<string>();
    for (const s of states) {
      seen.add(s.device);
      this.adopt(s.device, s);
    }
    for (const device of [...this.states.keys()]) if (!seen.has(device)) this.adopt(device, null);
  }

  private stamp(): string {
    return this.now().toISOString();
  }

  list(): DeviceState[] {
    return [...this.states.values()].sort((a, b) => a.device.localeCompare(b.device));
  }

  /** Every record, unsorted (for scans that do not need list()'s order). */
  records(): IterableIterator<DeviceState> {
    return this.states.values();
  }

  get(device: string): DeviceState | undefined {
    return this.states.get(device);
  }

  /** True while any device is assigned this firmware (the catalogue refuses to delete it). */
  isAssigned(firmwareId: string): boolean {
    for (const s of this.states.values()) if (s.firmware === firmwareId) return true;
    return false;
  }

  assign(device: string, dialect: DialectName, firmware: FirmwareRecord): DeviceState {
    return this.change(device, (previous) => this.assignRecord(device, dialect, firmware, previous));
  }

  private assignRecord(device: string, dialect: DialectName, firmware: FirmwareRecord, previous: DeviceState | undefined): DeviceState {
    const at = this.stamp();
    // A version the device reported counts; one inferred from its presence at the gateway (Biotz,
    // Sming: they report nothing) is no proof, so assigning again sends the notice again.
    const alreadyThere = !previous?.inferred && previous?.current?.version === firmware.version &&
      (previous.current.title === undefined || previous.current.title === firmware.title);
    const state: DeviceState = {
      device,
      dialect,
      firmware: firmware.id,
      target: { title: firmware.title, version: firmware.version },
      state: alreadyThere ? 'updated' : 'assigned',
      ...(alreadyThere ? { percent: 100 } : {}),
      ...(previous?.current ? { current: previous.current } : {}),
      attempts: 0,
      assignedAt: at,
      stateSince: at,
      progressAt: at,
      ...(previous?.lastSeen ? { lastSeen: previous.lastSeen } : {}),
    };
    this.states.set(device, state);
    return state;
  }

  /** Records that a notice went out (again): counts the attempt. */
  markNotified(device: string): DeviceState | undefined {
    const s = this.states.get(device);
    if (!s || !s.firmware || s.state === 'updated') return s;
    return this.change(device, () => {
      const at = this.stamp();
      s.attempts += 1;
      s.notifiedAt = at;
      s.progressAt = at;
      delete s.inferred;
      if (s.state === 'assigned' || s.state === 'failed' || s.state === 'timed_out') {
        s.state = 'notified';
        s.stateSince = at;
        delete s.percent;
      }
      return s;
    });
  }

  /** No progress for too long: the device is timed out (the tracker decides when). */
  markTimedOut(device: string, error: ProgressError): DeviceState | undefined {
    const s = this.states.get(device);
    if (!s || !s.firmware || !isActive(s.state)) return undefined;
    return this.change(device, () => {
      const at = this.stamp();
      s.state = 'timed_out';
      s.stateSince = at;
      delete s.inferred;
      s.lastError = error;
      return s;
    });
  }

  /**
   * Its notice could not be built or sent (a topic attribute missing, the image gone): the device
   * is failed with that reason, not left looking notified. Only while the notice is what it waits
   * for (assigned, notified) and, given `firmwareId`, for that assignment.
   */
  markFailed(device: string, error: ProgressError, firmwareId?: string): DeviceState | undefined {
    const s = this.states.get(device);
    if (!s?.firmware || (firmwareId !== undefined && s.firmware !== firmwareId)) return undefined;
    if (s.state !== 'assigned' && s.state !== 'notified') return undefined;
    return this.change(device, () => {
      const at = this.stamp();
      s.state = 'failed';
      s.stateSince = at;
      s.progressAt = at;
      delete s.inferred;
      delete s.percent;
      s.lastError = error;
      return s;
    });
  }

  unassign(device: string): DeviceState | undefined {
    const s = this.states.get(device);
    if (!s) return undefined;
    return this.change(device, () => {
      delete s.firmware;
      delete s.target;
      delete s.percent;
      delete s.inferred;
      delete s.retained;
      delete s.chunkSize;
      s.state = 'idle';
      s.stateSince = this.stamp();
      return s;
    });
  }

  /** Where a device's retained notice now waits (undefined: cleared). Changes nothing else. */
  setRetained(device: string, topic: string | undefined): void {
    const s = this.states.get(device);
    if (!s || s.retained === topic) return;
    this.change(device, () => {
      if (topic === undefined) delete s.retained;
      else s.retained = topic;
    });
  }

  /** The block size the device's notice announced. Changes nothing else. */
  setChunkSize(device: string, size: number): void {
    const s = this.states.get(device);
    if (!s || s.chunkSize === size) return;
    this.change(device, () => {
      s.chunkSize = size;
    });
  }

  forget(device: string): void {
    if (!this.states.has(device)) return;
    this.count(this.states.get(device), -1);
    this.states.delete(device);
    this.persist(device);
  }

  /**
   * Applies a normalised progress event. A reported version equal to the target means updated,
   * whatever state the event names. Returns the new record, or undefined when the event changed
   * nothing a user would see (a repeated percent, say).
   */
  apply(event: ProgressEvent): DeviceState | undefined {
    return this.change(event.device, () => this.applyEvent(event));
  }

  private applyEvent(event: ProgressEvent): DeviceState | undefined {
    const at = event.at || this.stamp();
    let s = this.states.get(event.device);
    if (!s) {
      s = { device: event.device, dialect: event.dialect, state: 'idle', attempts: 0, stateSince: at };
      this.states.set(event.device, s);
    }
    s.lastSeen = at;
    if (event.version !== undefined) s.current = { ...(event.title !== undefined ? { title: event.title } : s.current?.title !== undefined ? { title: s.current.title } : {}), version: event.version };

    let next: DeviceState['state'] = event.state;
    if (s.target && s.current?.version === s.target.version && (!s.current.title || s.current.title === s.target.title)) {
      next = 'updated';
    } else if (event.state === 'updated' && s.target && event.version !== undefined && event.version !== s.target.version) {
      // "Updated" to some other version: the device did not take the assigned image.
      next = 'failed';
      s.lastError = { code: 'wrong_version', message: `device reports ${event.version}, expected ${s.target.version}` };
    }
    const percent = next === 'updated' || next === 'downloaded' ? 100 : event.percent;
    const inferred = event.inferred === true;
    const changed = s.state !== next || (percent !== undefined && percent !== s.percent) || event.error !== undefined || inferred !== (s.inferred === true);
    if (s.state !== next) s.stateSince = at;
    s.state = next;
    if (inferred) s.inferred = true;
    else delete s.inferred;
    if (percent !== undefined) s.percent = percent;
    else if (next !== 'downloading') delete s.percent;
    if (event.error) s.lastError = event.error;
    if (changed) s.progressAt = at;
    return changed ? s : undefined;
  }

  /** Counts per state over the devices with an assignment, and the share that is done. */
  summary(): RolloutSummary {
    const counts = Object.fromEntries([...PROGRESS_STATES, 'idle'].map((k) => [k, this.counts.get(k as CountKey) ?? 0])) as Record<CountKey, number>;
    let total = 0;
    for (const n of Object.values(counts)) total += n;
    return { ...counts, total, percentDone: total ? Math.round((counts.updated / total) * 1000) / 10 : 0 };
  }

  flush(): Promise<void> {
    return this.sink ? this.sink.flush() : this.doc.flush();
  }
}
