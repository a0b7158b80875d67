import type { DeviceRecord, DialectName, FirmwareRecord, MqttOut, ProgressEvent } from '../types';

// One interface for the five device protocols. A dialect module is data (its topics) plus pure
// functions: downlinks for a command, and uplinks parsed into what the server must do.

/** Topic templates; placeholders {device}, {product}, {customer}, {app}, {major}, {minor}. */
export type TopicTemplates = Record<string, string>;

export interface DialectOptions {
  /** Overrides of the dialect's default topic templates (e.g. a gateway namespace prefix). */
  topics?: TopicTemplates;
  /** Chunk size for chunked dialects (bytes); the dialect's default otherwise. */
  chunkSize?: number;
  /** Largest chunk a device may ask for (ThingsBoard payload), default 65536. */
  maxChunkSize?: number;
  /** Sming: patch version encoding. */
  smingPatchEncoding?: 'byte' | 'varint';
  /** Sming: topic prefix ('' gives a/{app}/u/{major}.{minor}; the seed writes /a/test/u/4.3). */
  smingPrefix?: string;
  /** Broker message size limit, for warnings about whole-image notices (Sming). */
  maxMessageBytes?: number;
}

/** What a notice needs that only the repository knows. */
export interface NoticeContext {
  device: DeviceRecord;
  firmware: FirmwareRecord;
  /** Signed per-device download URL (URL dialects). */
  downloadUrl(): string;
  /** The image bytes (Sming sends the image itself in the notice). */
  image?: Buffer;
}

/** An uplink, classified. Parsing never throws: bad input comes back as kind 'invalid'. */
export type Uplink =
  | { kind: 'progress'; events: ProgressEvent[] }
  /** ThingsBoard v2/fw/request/{requestId}/chunk/{n}, Tago firmware_request. */
  | { kind: 'chunk-request'; device: string; requestId: string; index: number; size?: number }
  /** ThingsBoard v1/devices/me/attributes/request/{id} with sharedKeys. */
  | { kind: 'attribute-request'; device: string; requestId: string; keys: string[] }
  | { kind: 'ignored'; reason: string }
  | { kind: 'invalid'; device?: string; error: string };

export interface Dialect {
  readonly name: DialectName;
  readonly defaultTopics: TopicTemplates;
  /** Topic filters (MQTT wildcards) an `mqtt in` node subscribes to for this dialect's uplinks. */
  uplinkFilters(options?: DialectOptions): string[];
  /** The notice(s) telling a device to update. */
  notice(ctx: NoticeContext, options?: DialectOptions): MqttOut[];
  /** What clears a notice (empty retained publish, ThingsBoard {"deleted":[...]}). */
  clear(device: DeviceRecord, firmware: FirmwareRecord | undefined, options?: DialectOptions): MqttOut[];
  /** Classifies an uplink; `device` is resolved from the topic (or undefined when ambiguous). */
  parseUplink(topic: string, payload: Buffer | string, options?: DialectOptions): Uplink;
}
