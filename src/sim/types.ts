// The simulator's vocabulary: options a fleet is started with, and what a device reports about itself.
import type { DialectName } from '../core/types';

/** What a simulated device is doing now. `idle` = connected, running its version, nothing pending. */
export type SimState =
  | 'connecting'
  | 'idle'
  | 'notified'
  | 'downloading'
  | 'downloaded'
  | 'verified'
  | 'updating'
  | 'updated'
  | 'failed'
  | 'stopped';

/** One-shot failures a device injects into its own download (each fires at most once per device). */
export interface FaultOptions {
  /** Cut the download connection when this fraction (0..1) of the image has arrived, then reconnect and resume. */
  dropAt?: number;
  /** Corrupt this chunk (MQTT dialects: chunk index; HTTP dialects: 4 KiB block index), once. */
  corruptChunk?: number;
  /** Stop requesting (or reading) for `stallMs` when this fraction of the image has arrived. */
  stallAt?: number;
  stallMs?: number;
}

export type SmingDecoder = 'strict' | 'sming';

/** Options shared by every group of a fleet (a group may override any of them). */
export interface DeviceOptions {
  /** mqtt://host:port (mqtts:// and ws:// work too: mqtt.js decides). */
  broker: string;
  /** `{n}` = number within the group (from startIndex), `{i}` = index in the fleet (0-based), `{dialect}`. */
  idPattern?: string;
  /** Token per device; `{id}`, `{n}`, `{i}`, `{dialect}` are replaced. Default: the device id. */
  tokenPattern?: string;
  /** MQTT client id; default the device id (Tencent: `{product}{id}`, as its SDK). */
  clientIdPattern?: string;
  /**
   * Tencent device secret per device (base64, as Tencent's console shows it); `{id}`, `{n}`, `{i}`
   * are replaced. Given, the device signs its username with it as the C SDK does.
   */
  deviceSecretPattern?: string;
  startIndex?: number;
  /** The version every device runs at start (ThingsBoard current_fw_version, Tencent report_version …). */
  version?: string;
  /** ThingsBoard current_fw_title at start. */
  title?: string;
  /** Tencent product id. */
  product?: string;
  /** Biotz customer id (a UUID on the real platform). */
  customer?: string;
  /**
   * Sming application id, and a prefix before its topic: '' (the default) gives `a/{app}/u/4.3`,
   * what Sming's Upgrade sample subscribes to; '/' gives the seed's older `/a/{app}/u/4.3`.
   */
  app?: string;
  smingPrefix?: string;
  /** `sming`: the real decoder (7-bit groups summed without shifting; an equal patch is flashed again). */
  smingDecoder?: SmingDecoder;
  /** Sming's ENABLE_OTA_VARINT_VERSION (default on, as in Sming); off = one byte. */
  smingVarint?: boolean;
  /**
   * TagoIO: report firmware_version at connect and firmware_status on failure (ours, default on);
   * off, the device is the seed's script (seed 002): it subscribes and waits, and starts on any
   * manifest, one for the version it runs included.
   */
  tagoVersionReports?: boolean;
  /**
   * Tasmota: the flash (bytes) the running image and a new one share. A new image must fit in
   * what the running one leaves (ESP.getFreeSketchSpace; before any install the running image is
   * taken to fill half of it); a larger one fails as ESP8266's updater does
   * (HTTP_UE_TOO_LESS_SPACE) and the device fetches `-minimal` first, which leaves room for the
   * full image (the two-step upgrade, docs/tasmota.md). 0 (default): any image fits.
   */
  tasmotaFlashSize?: number;
  /** Tasmota: pause between its download attempts (the device waits about 2 s; 0: retryDelayMs / 10). */
  tasmotaAttemptDelayMs?: number;
  /** Bytes asked for per chunk (ThingsBoard request payload). */
  chunkSize?: number;
  faults?: FaultOptions;
  /** Which devices of the group inject the faults (numbers within the group, as {n}); default all. */
  faultDevices?: number[];
  /**
   * This share (0..1) of the group's devices, spread evenly, fail every update: each image they
   * take arrives corrupted (a bad image for their hardware), so each attempt fails the dialect's
   * way. For watching a rollout's error threshold work.
   */
  failRate?: number;
  /** These devices (numbers within the group, as {n}) fail every update, as failRate. */
  failDevices?: number[];
  /** Give up one chunk request after this long without an answer (it is re-sent up to 5 times). */
  chunkTimeoutMs?: number;
  /** Give up one download attempt after this long. */
  downloadTimeoutMs?: number;
  /** Download attempts per device before it stays `failed`. */
  maxAttempts?: number;
  /** Pause before asking again after a failure (the dialect's way: attribute request, version report …). */
  retryDelayMs?: number;
  /** mqtt.js reconnectPeriod. */
  reconnectMs?: number;
  /**
   * MQTT version the devices speak (default 4, 3.1.1). 5 makes ThingsBoard devices behave as the
   * stock ThingsBoard Python SDK: MQTT 5, chunk replies awaited on `v2/fw/response/+`, which only
   * ThingsBoard's transport or the ota-gateway delivers them to (not a plain broker).
   */
  protocolVersion?: 4 | 5;
}

export interface GroupOptions extends Partial<DeviceOptions> {
  dialect: DialectName;
  count?: number;
}

export interface FleetOptions extends DeviceOptions {
  /** One group: dialect + count. Or several groups (e.g. all six dialects for the demo). */
  dialect?: DialectName;
  count?: number;
  groups?: GroupOptions[];
  /** Most devices downloading at once across the fleet (default unlimited). */
  concurrency?: number;
}

/** One entry of a device's history: what it reported, in order. */
export interface HistoryEntry {
  state: SimState;
  version?: string;
  percent?: number;
  error?: string;
  at: number;
}

export interface ProgressInfo {
  device: string;
  dialect: DialectName;
  group: number;
  state: SimState;
  percent: number;
  received: number;
  total: number;
}
