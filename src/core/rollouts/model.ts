import type { DialectName } from '../types';

// The rollout model (issue 14): what an operator plans, and what the engine keeps while it runs.
// Plain data, serialisable as is: the engine persists it and the admin API shows it.

export type RolloutState = 'draft' | 'scheduled' | 'running' | 'paused' | 'finished' | 'aborted';
/** Why a rollout paused; `storage`: a release could not be written (the database away), nothing was sent. */
export type PauseReason = 'threshold' | 'manual' | 'schedule' | 'storage';
export type GroupState = 'pending' | 'running' | 'succeeded' | 'failed';

/**
 * Where one device is in a rollout:
 * - waiting: in a group not released yet (or not reached by the rate, concurrency or jitter);
 * - queued: picked for release, its notice due at `notifyAt` (jitter);
 * - released: its notice went out (written before it went, see persistence.ts);
 * - soaking: runs the target version; succeeds once it stays healthy for the soak time;
 * - succeeded, failed, timed_out, cancelled: finished (the last three count as errors).
 */
export type DevicePhase = 'waiting' | 'queued' | 'released' | 'soaking' | 'succeeded' | 'failed' | 'timed_out' | 'cancelled';
export const ERROR_PHASES: readonly DevicePhase[] = ['failed', 'timed_out', 'cancelled'];
export const FINISHED_PHASES: readonly DevicePhase[] = ['succeeded', ...ERROR_PHASES];

export interface SuccessCondition {
  /** Percent of the group's devices succeeded (default 100). */
  percent: number;
  /** Reached: start the next group, or pause for someone to trigger it. */
  action: 'next' | 'pause';
}

export interface ErrorCondition {
  /** Fires when the group's failed + timed out + cancelled devices are strictly more than this count... */
  count?: number;
  /** ...or strictly more than this percent of the group. */
  percent?: number;
  /** ...and at least this many of the group's devices have finished (succeeded or not). */
  minFinished: number;
  action: 'pause' | 'abort';
}

export type Rate =
  | { perMinute: number }
  /** AWS-style exponential ramp: base notices a minute, times factor after every `every` succeeded devices, up to max. */
  | { ramp: { base: number; factor: number; every: number; max?: number } };

export interface GroupSpec {
  percent?: number;
  count?: number;
  /** ISO time before which the group is not released. */
  startAt?: string;
  success?: Partial<SuccessCondition>;
  error?: Partial<ErrorCondition>;
}

export interface Plan {
  /** Groups by percent or count of the targets (the last takes the rest), or a number of equal groups. */
  groups: GroupSpec[] | number;
  success: SuccessCondition;
  /** Absent: no error condition (failures never pause). */
  error?: ErrorCondition;
  rate?: Rate;
  /** At most this many devices between their notice and the end of their update at once. */
  maxConcurrent?: number;
  /** Each notice goes out after a random delay of up to this many milliseconds. */
  jitterMs: number;
  /** A device counts as succeeded only after running the target version this long, healthy. */
  soakMs: number;
  /** On abort, re-assign each device that took the new firmware the firmware it ran before. */
  revertOnAbort: boolean;
}

export interface Targets {
  devices?: string[];
  tag?: string;
  filter?: { dialect?: DialectName; attributes?: Record<string, string>; version?: string };
}

export interface DeviceEntry {
  device: string;
  group: number;
  phase: DevicePhase;
  /** When it was queued (rate window) and when its notice is due (jitter). */
  queuedAt?: number;
  notifyAt?: number;
  releasedAt?: number;
  soakUntil?: number;
  finishedAt?: number;
  /** The firmware it ran when the rollout was created (what revert gives back), when known. */
  previous?: string;
  reason?: string;
}

export interface GroupRecord {
  index: number;
  size: number;
  state: GroupState;
  startAt?: number;
  startedAt?: number;
  success: SuccessCondition;
  error?: ErrorCondition;
  /** Set by resume (or next) after this group's condition paused the rollout: it no longer holds the rollout back. */
  overridden?: boolean;
}

/**
 * `assignment`: POST /ota/assignments or an ota-assign node's msg assigned the firmware and sent
 * the notices itself; the rollout is its record: one group, every device released at once, no
 * conditions, finished once every device has. Absent: a staged rollout (/ota/rollouts, ota-rollout).
 */
export type RolloutKind = 'assignment';

export interface Rollout {
  id: string;
  kind?: RolloutKind;
  name: string;
  firmware: string;
  targets: Targets;
  plan: Plan;
  state: RolloutState;
  reason?: PauseReason;
  /** What paused it, in words ("group 2: 3 of 20 failed, over 10 %"). */
  detail?: string;
  createdAt: number;
  startedAt?: number;
  endedAt?: number;
  groups: GroupRecord[];
  devices: DeviceEntry[];
}

export type Counts = Record<DevicePhase, number>;

export function emptyCounts(): Counts {
  return { waiting: 0, queued: 0, released: 0, soaking: 0, succeeded: 0, failed: 0, timed_out: 0, cancelled: 0 };
}

export function errorsOf(c: Counts): number {
  return c.failed + c.timed_out + c.cancelled;
}

export function finishedOf(c: Counts): number {
  return c.succeeded + errorsOf(c);
}

/** In flight: picked or notified and not finished (what maxConcurrent bounds). */
export function inFlightOf(c: Counts): number {
  return c.queued + c.released;
}

/** The event a rollout emits to its listeners (the ota-rollout node, the admin API's log). */
export interface RolloutEvent {
  type: 'created' | 'started' | 'group-started' | 'group-succeeded' | 'threshold' | 'paused' | 'resumed' | 'finished' | 'aborted' | 'reverted';
  rollout: string;
  /** Set for an assignment's rollout, so a flow can tell those from staged ones. */
  kind?: RolloutKind;
  group?: number;
  detail?: string;
  counts: Counts;
  at: number;
}
