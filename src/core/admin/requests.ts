import type { OtaRepository } from '../repository';
import { unknownField } from '../fields';
import { DeviceRecord, FirmwareRecord, OtaError } from '../types';
import type { DeviceState } from '../device-updates/device-states';
import type { RolloutTracker } from '../device-updates/tracker';
import { rolloutsFor } from '../rollouts/service';

// What the admin HTTP API does, without HTTP: request bodies in, records out, OtaErrors naming
// the field for anything wrong. Every request is validated in full before anything is written.

const MAX_DEVICES_PER_REQUEST = 10_000;

/** A device as the API shows it: never the token hash, never the device secret. */
export interface DeviceView extends Omit<DeviceRecord, 'tokenHash' | 'sealedSecret'> {
  hasToken: boolean;
  hasDeviceSecret: boolean;
  rollout: DeviceState | null;
}

export function deviceView(repo: OtaRepository, device: DeviceRecord): DeviceView {
  const { tokenHash, sealedSecret, ...rest } = device;
  return { ...rest, hasToken: Boolean(tokenHash), hasDeviceSecret: Boolean(sealedSecret), rollout: repo.rollout.get(device.id) ?? null };
}

/** HTTP status for an error: 400 for bad input, 404 for a missing path item, 409 for conflicts. */
export function statusFor(err: unknown, inPath = false): number {
  if (!(err instanceof OtaError)) return 500;
  switch (err.code) {
    case 'unknown_firmware':
    case 'unknown_device':
    case 'unknown_rollout':
      return inPath ? 404 : 400;
    case 'firmware_assigned':
    case 'version_conflict':
    case 'token_in_use':
    case 'device_in_rollout':
    case 'bad_state':
    case 'rollout_active':
    case 'not_driver': // another Node-RED on the database drives rollouts: sent to the wrong one
      return 409;
    case 'image_too_large':
    case 'body_too_large':
      return 413;
    case 'unsupported_media_type':
      return 415;
    default:
      return 400;
  }
}

/** The fields each request body may have: anything else is a mistake worth naming, not dropping. */
export const BODY_FIELDS = {
  device: ['id', 'dialect', 'token', 'deviceSecret', 'attributes', 'tags'],
  assignment: ['firmware', 'devices', 'tag'],
  upload: ['title', 'version', 'tag', 'deviceType'],
} as const;
/** Attributes the dialects' topics use: sent beside `id` they were silently lost (Tencent `product`). */
const ATTRIBUTE_NAMES = ['product', 'customer', 'app'];

/** Refuses a field `kind` does not have, naming it (cut short: it is the caller's text). */
export function checkFields(o: object, kind: keyof typeof BODY_FIELDS): void {
  const allowed: readonly string[] = BODY_FIELDS[kind];
  const name = unknownField(o, allowed);
  if (name === undefined) return;
  const hint = kind === 'device' && ATTRIBUTE_NAMES.includes(name)
    ? `: a device's ${name} is one of its attributes, {"attributes": {"${name}": …}}`
    : `: ${kind === 'upload' ? 'an upload' : `a ${kind}`} has ${allowed.join(', ')}`;
  throw new OtaError('unknown_field', `unknown field ${JSON.stringify(name)}${hint}`, name);
}

/**
 * JSON routes take what Node-RED's JSON parser reads (application/json): a form, text or a
 * vendor +json body is refused, not half-read by the urlencoded parser or read as empty.
 */
export function requireJsonType(contentType: unknown, contentLength: unknown, transferEncoding: unknown): void {
  const length = Number(contentLength);
  const hasBody = (Number.isFinite(length) && length > 0) || transferEncoding !== undefined;
  if (!hasBody) return;
  const type = String(contentType ?? '').split(';')[0].trim().toLowerCase();
  if (type === 'application/json') return;
  throw new OtaError('unsupported_media_type', `send a JSON object with Content-Type: application/json (got ${type ? JSON.stringify(type.slice(0, 64)) : 'none'})`, 'body');
}

/**
 * What to answer for an error Node-RED's body parsers (body-parser) raise before any route runs:
 * malformed JSON, a body over apiMaxLength, an unknown charset. The body is never quoted back
 * (it may hold a device token): a JSON.parse message can carry a piece of it.
 */
export function bodyParserError(err: unknown): { status: number; error: OtaError } {
  const e = (err ?? {}) as { type?: unknown; status?: unknown; limit?: unknown; message?: unknown };
  const status = typeof e.status === 'number' && e.status >= 400 && e.status < 600 ? e.status : 500;
  switch (e.type) {
    case 'entity.parse.failed': {
      const at = /position (\d+)/.exec(String(e.message ?? ''));
      return { status: 400, error: new OtaError('bad_json', `the body is not valid JSON${at ? ` (at byte ${at[1]})` : ''}`, 'body') };
    }
    case 'entity.too.large':
      return { status: 413, error: new OtaError('body_too_large', `the body is over the limit of ${typeof e.limit === 'number' ? `${e.limit} bytes` : 'the admin API'}`, 'body') };
    case 'charset.unsupported':
    case 'encoding.unsupported':
      return { status: 415, error: new OtaError('unsupported_media_type', 'send the body as UTF-8 JSON, without a content encoding', 'body') };
  }
  if (status < 500) return { status, error: new OtaError('bad_body', 'the request body could not be read', 'body') };
  return { status: 500, error: new OtaError('internal', 'internal error') };
}

function objectBody(body: unknown, kind: keyof typeof BODY_FIELDS): Record<string, unknown> {
  if (!body || typeof body !== 'object' || Array.isArray(body) || Buffer.isBuffer(body)) {
    throw new OtaError('bad_body', 'send a JSON object (Content-Type: application/json)', 'body');
  }
  checkFields(body, kind);
  return body as Record<string, unknown>;
}

function firmwareOf(repo: OtaRepository, value: unknown): FirmwareRecord {
  if (typeof value === 'string' && value.trim()) return repo.firmware.resolve(value.trim());
  if (value && typeof value === 'object' && !Array.isArray(value)) {
    const o = value as Record<string, unknown>;
    const s = (v: unknown) => (typeof v === 'string' && v.trim() ? v.trim() : undefined);
    if (s(o.id) || (s(o.title) && s(o.version))) return repo.firmware.resolve({ id: s(o.id), title: s(o.title), version: s(o.version) });
  }
  throw new OtaError('bad_field', 'firmware must be an id, or {id}, or {title, version}', 'firmware');
}

/** The devices a body names with `devices` (ids) or `tag`, exactly one of the two. */
function devicesOf(repo: OtaRepository, body: Record<string, unknown>, known: (id: string) => DeviceRecord | undefined): DeviceRecord[] {
  const hasDevices = body.devices !== undefined && body.devices !== null;
  const hasTag = body.tag !== undefined && body.tag !== null;
  if (hasDevices === hasTag) throw new OtaError('bad_field', 'give either devices (a list of ids) or tag', hasDevices ? 'tag' : 'devices');
  if (hasTag) {
    if (typeof body.tag !== 'string' || !body.tag.trim()) throw new OtaError('bad_field', 'tag must be a non-empty string', 'tag');
    const list = repo.devices.withTag(body.tag.trim());
    if (!list.length) throw new OtaError('bad_field', `no device has the tag "${body.tag.trim()}"`, 'tag');
    return list;
  }
  const raw = typeof body.devices === 'string' ? [body.devices] : body.devices;
  if (!Array.isArray(raw) || raw.length === 0 || !raw.every((d) => typeof d === 'string' && d.trim() !== '')) {
    throw new OtaError('bad_field', 'devices must be a non-empty list of device ids', 'devices');
  }
  if (raw.length > MAX_DEVICES_PER_REQUEST) throw new OtaError('bad_field', `at most ${MAX_DEVICES_PER_REQUEST} devices per request`, 'devices');
  const ids = [...new Set((raw as string[]).map((d) => d.trim()))];
  const unknown = ids.filter((id) => !known(id));
  if (unknown.length) {
    const shown = unknown.slice(0, 10).join(', ') + (unknown.length > 10 ? ` and ${unknown.length - 10} more` : '');
    throw new OtaError('unknown_device', `unknown devices: ${shown} (register them first: POST /ota/devices)`, 'devices');
  }
  return ids.map((id) => known(id) as DeviceRecord);
}

export interface AssignResult {
  firmware: FirmwareRecord;
  /** Each device's record once its notice went out or failed (`failed`, with lastError saying why). */
  devices: DeviceState[];
  /**
   * False when no notice went out: no ota-assign node is deployed (devices stay `assigned`), or
   * none of the notices could be built (devices `failed`).
   */
  published: boolean;
  warning?: string;
  /** The rollout (of one group) that records this assignment in /ota/rollouts. */
  rollout?: string;
}

export async function assign(repo: OtaRepository, tracker: RolloutTracker, body: unknown): Promise<AssignResult> {
  const o = objectBody(body, 'assignment');
  if (o.firmware === undefined) throw new OtaError('bad_field', 'firmware is required', 'firmware');
  const firmware = firmwareOf(repo, o.firmware);
  const devices = devicesOf(repo, o, (id) => repo.devices.get(id));
  const assigned = tracker.assign(firmware, devices);
  // Recorded before the notices reach the broker: a gateway asks the rollouts whether a Sming
  // device may have its notice (a device waiting in a staged rollout's later group leaves it now).
  const rollout = rolloutsFor(repo).recordAssignment(firmware, devices);
  await assigned.settled;
  const records = assigned.records.map((r) => repo.rollout.get(r.device) ?? r);
  const failed = records.filter((r) => r.state === 'failed' && r.firmware === firmware.id);
  const toNotify = records.filter((r) => r.state !== 'updated').length;
  const published = assigned.published && (toNotify === 0 || failed.length < toNotify);
  let warning: string | undefined;
  if (!assigned.published) warning = 'no ota-assign node is deployed for this repository: the devices are assigned, but no notice was sent';
  else if (failed.length) {
    const shown = failed.slice(0, 5).map((r) => `${r.device}: ${r.lastError?.message ?? 'failed'}`).join('; ');
    warning = `${failed.length} notice${failed.length === 1 ? '' : 's'} could not be built: ${shown}${failed.length > 5 ? ` and ${failed.length - 5} more` : ''}`;
  }
  return { firmware, devices: records, published, ...(warning ? { warning } : {}), ...(rollout ? { rollout } : {}) };
}

export function unassign(repo: OtaRepository, tracker: RolloutTracker, body: unknown): { devices: DeviceState[] } {
  const o = objectBody(body, 'assignment');
  const firmware = o.firmware !== undefined ? firmwareOf(repo, o.firmware) : undefined;
  // A device that was removed from the list may still hold an assignment: it can be unassigned.
  const known = (id: string): DeviceRecord | undefined => {
    const d = repo.devices.get(id);
    if (d) return d;
    const s = repo.rollout.get(id);
    return s ? { id, dialect: s.dialect, attributes: {}, tags: [], createdAt: s.stateSince } : undefined;
  };
  const devices = devicesOf(repo, o, known).filter((d) => {
    const s = repo.rollout.get(d.id);
    return s?.firmware !== undefined && (!firmware || s.firmware === firmware.id);
  });
  return { devices: tracker.unassign(devices.map((d) => d.id)) };
}

export async function registerDevice(repo: OtaRepository, body: unknown): Promise<{ device: DeviceView; token?: string; created: boolean }> {
  const o = objectBody(body, 'device');
  const { device, token, created } = await repo.devices.register({
    id: o.id,
    dialect: o.dialect,
    token: o.token,
    deviceSecret: o.deviceSecret,
    attributes: o.attributes,
    tags: o.tags,
  });
  return { device: deviceView(repo, device), ...(token !== undefined ? { token } : {}), created };
}

/** The upload's metadata fields (query string or form fields), each a string or absent. */
export interface UploadFields {
  title?: string;
  version?: string;
  tag?: string;
  deviceType?: string;
}

export async function storeFirmware(repo: OtaRepository, image: Buffer, fields: UploadFields): Promise<{ record: FirmwareRecord; created: boolean }> {
  return repo.firmware.store({ image, ...fields, source: fields.title && fields.version ? 'msg' : 'defaults' });
}
