import type { DownloadEvent } from '../firmware/download';
import { DialectName, ProgressError, ProgressEvent, ProgressState, PROGRESS_STATES, isDialectName } from '../types';
import type { DeviceState } from './device-states';
import { RESULT_CODES as TENCENT_RESULT_CODES } from '../dialects/tencent';
import { own } from '../own';

// Turning what arrives (chunk-server events, download events, hand-made messages) into
// ProgressEvents, and records into the normalised events progress-parser sends.

/** What progress-parser sends on its first output, one per change a user would notice. */
export interface NormalisedEvent {
  device: string;
  dialect: DialectName;
  state: ProgressState;
  percent?: number;
  version?: string;
  error?: ProgressError;
  /** The state was inferred from the device's presence at the gateway, not reported by it. */
  inferred?: true;
  at: string;
}

/** Tencent's fail result codes (IoT Hub OTA documentation), for reports with an empty result_msg. */
export { RESULT_CODES as TENCENT_RESULT_CODES } from '../dialects/tencent';

/** Fills in a message the device left empty, where the dialect defines one for the code. */
export function explainError(dialect: DialectName, error: ProgressError | undefined): ProgressError | undefined {
  if (!error) return undefined;
  if (error.message) return error;
  const known = dialect === 'tencent' ? own(TENCENT_RESULT_CODES, String(error.code)) : undefined;
  return { code: error.code, message: known ?? `error ${error.code}` };
}

function percentOf(value: unknown): number | undefined | null {
  if (value === undefined || value === null || value === '') return undefined;
  const n = typeof value === 'number' ? value : typeof value === 'string' ? Number(value.trim()) : NaN;
  if (!Number.isFinite(n) || n < 0 || n > 100) return null;
  return Math.round(n * 10) / 10;
}

/**
 * A ProgressEvent from a message payload (chunk-server's second output, or a user's own flow).
 * `state` may be left out when `version` is given: a plain version report. Returns an error
 * text naming the field when the value is not one.
 */
export interface EventContext {
  /** The registered dialect of a device, or that of its rollout record. */
  dialectOf(device: string): DialectName | undefined;
  /** The device's current state, for plain version reports. */
  stateOf(device: string): DeviceState['state'] | undefined;
  now(): Date;
}

export function toProgressEvent(value: unknown, ctx: EventContext): ProgressEvent | string {
  if (!value || typeof value !== 'object' || Array.isArray(value)) return 'payload must be a progress event object';
  const v = value as Record<string, unknown>;
  if (typeof v.device !== 'string' || v.device === '') return 'device must be a non-empty string';
  const device = v.device;
  const dialect = isDialectName(v.dialect) ? v.dialect : ctx.dialectOf(device);
  if (!dialect) return `dialect must be one of biotz, sming, tago, tasmota, tencent, thingsboard (device ${device} is not registered)`;
  const version = typeof v.version === 'string' && v.version !== '' ? v.version : undefined;
  if (v.version !== undefined && version === undefined) return 'version must be a non-empty string';
  let state: ProgressState;
  if (typeof v.state === 'string' && (PROGRESS_STATES as readonly string[]).includes(v.state)) state = v.state as ProgressState;
  else if (v.state === undefined && version !== undefined) {
    // A version report leaves the state where it is; the store turns it into updated when the
    // version is the assigned one.
    const current = ctx.stateOf(device);
    state = current && current !== 'idle' ? current : 'updated';
  }
  else return `state must be one of ${PROGRESS_STATES.join(', ')}`;
  const percent = percentOf(v.percent);
  if (percent === null) return 'percent must be a number from 0 to 100';
  let error: ProgressError | undefined;
  if (v.error !== undefined && v.error !== null) {
    const e = v.error as Record<string, unknown>;
    if (typeof e !== 'object' || (typeof e.code !== 'string' && typeof e.code !== 'number')) return 'error must be {code, message}';
    error = explainError(dialect, { code: e.code as string | number, message: typeof e.message === 'string' ? e.message : '' });
  }
  const at = typeof v.at === 'string' && !Number.isNaN(Date.parse(v.at)) ? v.at : ctx.now().toISOString();
  return {
    device,
    dialect,
    state,
    ...(percent !== undefined ? { percent } : {}),
    ...(version !== undefined ? { version } : {}),
    ...(typeof v.title === 'string' && v.title ? { title: v.title } : {}),
    ...(error ? { error } : {}),
    at,
  };
}

/**
 * A download route event as progress: the first event of a request says where it starts, the
 * last one how far it got. Only downloads of the firmware the device is assigned count.
 */
export function fromDownload(ev: DownloadEvent, record: DeviceState | undefined, dialect: DialectName, at: string): ProgressEvent | undefined {
  if (!record?.firmware || record.firmware !== ev.firmware || record.state === 'updated' || ev.size <= 0) return undefined;
  if (ev.complete) return { device: ev.device, dialect, state: 'downloaded', percent: 100, at };
  // The opening event has end === start (nothing sent yet); later ones, the last byte sent.
  const sent = ev.aborted || ev.end > ev.start ? ev.end + 1 : ev.start;
  const percent = Math.max(0, Math.min(99, Math.floor((sent / ev.size) * 100)));
  // A download that stopped part way leaves the device where it was until it resumes or times out.
  return { device: ev.device, dialect, state: 'downloading', percent, at };
}

/** The event progress-parser sends for a record that just changed. */
export function normalise(record: DeviceState, event?: ProgressEvent): NormalisedEvent {
  const state = record.state === 'idle' ? (event?.state ?? 'assigned') : record.state;
  const error = state === 'failed' || state === 'timed_out' ? (event?.error ?? record.lastError) : event?.error;
  return {
    device: record.device,
    dialect: event?.dialect ?? record.dialect,
    state,
    ...(record.percent !== undefined && state !== 'notified' && state !== 'assigned' ? { percent: record.percent } : {}),
    ...(event?.version !== undefined ? { version: event.version } : {}),
    ...(error ? { error } : {}),
    ...(record.inferred ? { inferred: true as const } : {}),
    at: event?.at ?? record.stateSince,
  };
}
