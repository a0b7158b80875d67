import type { DeviceAttributes, DeviceRecord, DialectName, FirmwareRecord, MqttOut, ProgressEvent, ChecksumAlgorithm } from '../types';

// One interface for the six device protocols. A dialect module is data (its topics) plus pure
// functions: downlinks for a command, and uplinks parsed into what the server must do.

/** Topic templates; placeholders {device}, {product}, {customer}, {app}, {major}, {minor}, {requestId}, {chunk}. */
export type TopicTemplates = Record<string, string>;

export interface DialectOptions {
  /** Overrides of the dialect's default topic templates, by key (see each dialect's defaultTopics). */
  topics?: TopicTemplates;
  /**
   * Prepended to every topic template: the gateway's per-device namespace, e.g. `ota/{device}/`,
   * so that ThingsBoard topics become `ota/{device}/v1/devices/me/...` and the device is read
   * from the topic. Empty (the default) is one device on a plain broker.
   */
  prefix?: string;
  /** The device an uplink belongs to when its topic names none (one device on a plain broker). */
  device?: string;
  /** Attributes a device record lacks (Tencent product, Biotz customer, Sming app). */
  attributes?: DeviceAttributes;
  /** Chunk size for chunked dialects (bytes); the dialect's default otherwise (Tago 4096). */
  chunkSize?: number;
  /** Largest chunk a device may ask for (ThingsBoard payload), default 65536. */
  maxChunkSize?: number;
  /** Sming: patch version encoding. */
  smingPatchEncoding?: 'byte' | 'varint';
  /** Sming: topic prefix ('' gives a/{app}/u/{major}.{minor}; the seed writes /a/test/u/4.3). */
  smingPrefix?: string;
  /** Broker message size limit, for warnings about whole-image notices (Sming). */
  maxMessageBytes?: number;
  /** ThingsBoard: the checksum the device verifies (default sha256). */
  checksumAlgorithm?: ChecksumAlgorithm;
  /** Tago: publish the manifest retained or not; unset, retained when its topic names the device (tago.retainsManifest). */
  retain?: boolean;
}

/** What a notice needs that only the repository knows. */
export interface NoticeContext {
  device: DeviceRecord;
  firmware: FirmwareRecord;
  /** Signed per-device download URL (URL dialects). */
  downloadUrl(): string;
  /** The same, in the compact form ending in `file` (Tasmota: url-signing.ts, download.ts COMPACT_FILE). */
  compactDownloadUrl?(file: string): string;
  /** The image bytes (Sming sends the image itself in the notice; Tasmota names a gzip image .bin.gz). */
  image?: Buffer;
  /** Told about things worth a warning that do not stop the notice (Sming over the broker limit). */
  warn?(text: string): void;
}

/** The firmware a notice named, as far as clearing it needs (the record may be deleted by then). */
export type FirmwareRef = Pick<FirmwareRecord, 'title' | 'version'> & Partial<FirmwareRecord>;

/**
 * An uplink, classified. Parsing never throws: bad input comes back as kind 'invalid'.
 * A bare version report (Tencent report_version, ThingsBoard current_fw_* without fw_state, Tago
 * firmware_version) is a progress event with state 'notified' and `version`: the device says what
 * it runs and is waiting; the rollout store turns a version equal to the target into 'updated'.
 * A progress event's device is '' when neither the topic nor options.device names it: the caller
 * fills it (msg.device). Requests (chunk, attribute) with no device come back 'invalid'.
 */
export type Uplink =
  | { kind: 'progress'; events: ProgressEvent[] }
  /** ThingsBoard v2/fw/request/{requestId}/chunk/{n} (requestId '' for Tago firmware_request). */
  | { kind: 'chunk-request'; device: string; requestId: string; index: number; size?: number }
  /** ThingsBoard v1/devices/me/attributes/request/{id} with sharedKeys. */
  | { kind: 'attribute-request'; device: string; requestId: string; keys: string[] }
  /** `foreign`: the topic is not one of this dialect's (another dialect's, or nobody's). */
  | { kind: 'ignored'; reason: string; foreign?: true }
  | { kind: 'invalid'; device?: string; error: string };

export type ChunkRequest = Extract<Uplink, { kind: 'chunk-request' }>;

/**
 * What a device of a dialect tells the server about its update:
 * - `progress`: it reports (ThingsBoard fw_state, Tencent reports, TagoIO chunk requests);
 * - `download`: nothing, but its signed URL is fetched (Biotz): downloading and downloaded are seen;
 * - `none`: nothing at all (Sming). Past the download, only the gateway's presence events tell
 *   more (a reconnect after the download: the device restarted into the new firmware).
 */
export type Reports = 'progress' | 'download' | 'none';

/**
 * Where a dialect's notice stays retained and would start the update again unless cleared:
 * `device` (one topic per device: Biotz; TagoIO behind the gateway), `shared` (one topic for every
 * device of an app and version line: Sming). Absent: the notice is not retained.
 */
export type RetainedNotice = 'device' | 'shared';

/**
 * Whether a device of a dialect that reports this way can leave `state` by anything the server
 * sees (a report, a download request). If not, waiting longer proves nothing: no timeout, and no
 * retry (a retry would only publish again what the device already took).
 */
export function leavesBySignal(reports: Reports, state: string): boolean {
  if (reports === 'progress') return true;
  if (reports === 'download') return state === 'notified' || state === 'downloading';
  return false;
}

export interface Dialect {
  readonly name: DialectName;
  readonly defaultTopics: TopicTemplates;
  readonly reports: Reports;
  readonly retainedNotice?: RetainedNotice;
  /** Topic filters (MQTT wildcards) an `mqtt in` node subscribes to for this dialect's uplinks. */
  uplinkFilters(options?: DialectOptions): string[];
  /** The notice(s) telling a device to update. Throws OtaError when one cannot be built. */
  notice(ctx: NoticeContext, options?: DialectOptions): MqttOut[];
  /** What clears a notice (empty retained publish, ThingsBoard {"deleted":[...]}). */
  clear(device: DeviceRecord, firmware: FirmwareRef | undefined, options?: DialectOptions): MqttOut[];
  /**
   * Classifies an uplink; the device comes from the topic, else from options.device. Without
   * options.prefix, topics with levels in front still match and the last such level is the
   * device (`{ns}/{device}/v1/devices/me/telemetry`); with a prefix, only that prefix. The payload
   * is what `mqtt in` gives: a Buffer, a string, or already-parsed JSON (auto-detect mode).
   */
  parseUplink(topic: string, payload: unknown, options?: DialectOptions): Uplink;
  /** Chunked dialects: the reply carrying `bytes` for a chunk request. */
  chunkReply?(request: ChunkRequest, bytes: Buffer, options?: DialectOptions): MqttOut;
  /** Chunked dialects: an error the device can see (ThingsBoard v2/fw/error). */
  errorReply?(device: string | undefined, message: string, options?: DialectOptions): MqttOut[];
  /** ThingsBoard: the answer to an attribute request, with only the keys asked for. */
  attributeReply?(request: Extract<Uplink, { kind: 'attribute-request' }>, firmware: FirmwareRecord | undefined, options?: DialectOptions): MqttOut;
}
