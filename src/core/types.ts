// The shared vocabulary of the package: firmware, devices, progress. Nothing here knows Node-RED.

export const DIALECTS = ['biotz', 'sming', 'tago', 'tasmota', 'tencent', 'thingsboard'] as const;
export type DialectName = (typeof DIALECTS)[number];

/**
 * Dialects whose devices all use the same topic names (ThingsBoard `v1/devices/me/...`, TagoIO
 * `tago/data/post`): behind the gateway their topics live under `{ns}/{device}/`, so a namespace
 * prefix applies to them. The others name the device in their topics already and keep them.
 */
export const NAMESPACED_DIALECTS: readonly DialectName[] = ['thingsboard', 'tago'];

export function isDialectName(value: unknown): value is DialectName {
  return typeof value === 'string' && (DIALECTS as readonly string[]).includes(value);
}

/** ThingsBoard's checksum set; every value is lower-case hex (see firmware/checksums.ts). */
export interface Checksums {
  md5: string;
  sha256: string;
  sha384: string;
  sha512: string;
  crc32: string;
  murmur3_32: string;
  murmur3_128: string;
}
export type ChecksumAlgorithm = keyof Checksums;

export interface FirmwareRecord {
  /** Stable id derived from title and version: the same pair always gets the same id. */
  id: string;
  title: string;
  /** Semantic version, validated on store. */
  version: string;
  tag: string;
  deviceType?: string;
  size: number;
  checksums: Checksums;
  /** Where title and version came from: the message, the node's defaults, or the image itself. */
  source: 'msg' | 'defaults' | 'esp-app-desc';
  createdAt: string;
}

/** Per-dialect addressing a device carries (Tencent product, Biotz customer, Sming app). */
export interface DeviceAttributes {
  product?: string;
  customer?: string;
  app?: string;
  [key: string]: string | undefined;
}

export interface DeviceRecord {
  id: string;
  dialect: DialectName;
  /** HMAC of the device's token under the repository secret; the token itself is never stored. */
  tokenHash?: string;
  /**
   * Tencent device secret (the key the device signs its username with), sealed under the
   * repository secret (core/sealed-secret.ts): the server must compute the same HMAC, so a hash
   * would not do. Never shown by the API.
   */
  sealedSecret?: string;
  attributes: DeviceAttributes;
  tags: string[];
  createdAt: string;
}

/** The normalised progress model every dialect maps onto (DESIGN.md section 4). */
export const PROGRESS_STATES = [
  'assigned',
  'notified',
  'downloading',
  'downloaded',
  'verified',
  'updating',
  'updated',
  'failed',
  'timed_out',
] as const;
export type ProgressState = (typeof PROGRESS_STATES)[number];

export interface ProgressError {
  code: string | number;
  message: string;
}

/** One normalised progress event, as progress-parser emits it. */
export interface ProgressEvent {
  device: string;
  dialect: DialectName;
  state: ProgressState;
  percent?: number;
  /** A version the device reported running (ThingsBoard current_fw_version, Tencent report_version). */
  version?: string;
  title?: string;
  error?: ProgressError;
  /**
   * The state was inferred from what the gateway saw the device do (connect, subscribe), not
   * reported by the device: dialects without progress reports (Sming, Biotz after its download).
   */
  inferred?: boolean;
  at: string;
}

/**
 * What the ota-gateway saw a device do, forwarded to the repository (`repo.emit('presence', …)`):
 * the only signal Sming devices give, and Biotz devices after their download. `filters` are the
 * subscriptions the broker granted (device's own topic names); `session` tells one connection of
 * a device from the next, so a late disconnect of an old connection is not taken for the new one.
 */
export interface PresenceEvent {
  device: string;
  dialect: DialectName;
  event: 'connect' | 'subscribe' | 'disconnect';
  filters?: string[];
  session?: string;
  at: string;
}

/** A message ready for core `mqtt out`: it publishes topic/payload/qos/retain as given. */
export interface MqttOut {
  topic: string;
  payload: Buffer | string;
  qos: 0 | 1 | 2;
  retain: boolean;
}

/** An error that carries a stable code, so nodes and the admin API can say what went wrong. */
export class OtaError extends Error {
  constructor(
    readonly code: string,
    message: string,
    readonly field?: string,
  ) {
    super(message);
    this.name = 'OtaError';
  }
}
