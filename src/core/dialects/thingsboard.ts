import type { ChecksumAlgorithm, FirmwareRecord, ProgressEvent, ProgressState } from '../types';
import type { ChunkRequest, Dialect, DialectOptions, Uplink } from './dialect';
import { fill, filterOf, index, isObject, json, match, now, templatesOf, text, varsOf } from './topics';
import { own } from '../own';

// ThingsBoard's MQTT firmware API (seed 004): shared attributes announce the firmware, the device
// pulls chunks on v2/fw/request/{requestId}/chunk/{n} and reports fw_state as telemetry.

export const DEFAULT_MAX_CHUNK = 65536; // ThingsBoard refuses larger chunks

const TOPICS = {
  attributes: 'v1/devices/me/attributes',
  attributeRequest: 'v1/devices/me/attributes/request/{requestId}',
  attributeResponse: 'v1/devices/me/attributes/response/{requestId}',
  telemetry: 'v1/devices/me/telemetry',
  chunkRequest: 'v2/fw/request/{requestId}/chunk/{chunk}',
  chunkResponse: 'v2/fw/response/{requestId}/chunk/{chunk}',
  error: 'v2/fw/error',
};

export const FW_KEYS = ['fw_title', 'fw_version', 'fw_tag', 'fw_size', 'fw_checksum_algorithm', 'fw_checksum'] as const;

/** ThingsBoard's names for the checksum algorithms (ChecksumAlgorithm enum). */
const ALGORITHM_NAMES: Record<ChecksumAlgorithm, string> = {
  md5: 'MD5',
  sha256: 'SHA256',
  sha384: 'SHA384',
  sha512: 'SHA512',
  crc32: 'CRC32',
  murmur3_32: 'MURMUR3_32',
  murmur3_128: 'MURMUR3_128',
};

const STATES: Readonly<Record<string, ProgressState>> = {
  DOWNLOADING: 'downloading',
  DOWNLOADED: 'downloaded',
  VERIFIED: 'verified',
  UPDATING: 'updating',
  UPDATED: 'updated',
  FAILED: 'failed',
};

/** The shared attributes ThingsBoard sets when it assigns a firmware. fw_size is the exact byte count. */
export function sharedAttributes(firmware: FirmwareRecord, options?: DialectOptions): Record<(typeof FW_KEYS)[number], string | number> {
  const algorithm = options?.checksumAlgorithm ?? 'sha256';
  return {
    fw_title: firmware.title,
    fw_version: firmware.version,
    fw_tag: firmware.tag,
    fw_size: firmware.size,
    fw_checksum_algorithm: ALGORITHM_NAMES[algorithm],
    fw_checksum: firmware.checksums[algorithm],
  };
}

function deviceFor(groups: Record<string, string>, options?: DialectOptions): string | undefined {
  return groups.device ?? (options?.device || undefined);
}

function noDevice(): Uplink {
  return { kind: 'invalid', error: 'the topic names no device and the node has no single device set' };
}


/** Telemetry: {k:v}, {ts, values:{k:v}}, or a list of either (ThingsBoard accepts all three). */
function telemetryEvents(value: unknown, device: string): ProgressEvent[] | string {
  const items = Array.isArray(value) ? value : [value];
  const events: ProgressEvent[] = [];
  for (const item of items) {
    if (!isObject(item)) return 'telemetry must be an object or a list of objects';
    const values = isObject(item.values) ? item.values : item;
    // When we heard it, not the device's ts: device clocks drift, and timeouts run on ours.
    const at = now();
    const raw = values.fw_state;
    // An empty version names nothing (a device that does not know its own yet).
    const version = typeof values.current_fw_version === 'string' && values.current_fw_version !== '' ? values.current_fw_version : undefined;
    const title = typeof values.current_fw_title === 'string' ? values.current_fw_title : undefined;
    let state: ProgressState | undefined;
    if (raw !== undefined) {
      state = typeof raw === 'string' ? own(STATES, raw.toUpperCase()) : undefined;
      if (!state) return `unknown fw_state ${JSON.stringify(raw)}`;
    } else if (version !== undefined) {
      state = 'notified'; // a bare version report: the device says what it runs
    } else continue;
    const event: ProgressEvent = { device, dialect: 'thingsboard', state, at };
    if (version !== undefined) event.version = version;
    if (title !== undefined) event.title = title;
    if (values.fw_error !== undefined && values.fw_error !== null && values.fw_error !== '') {
      event.error = { code: 'fw_error', message: String(values.fw_error) };
    } else if (state === 'failed') {
      event.error = { code: 'FAILED', message: 'the device reported FAILED' };
    }
    events.push(event);
  }
  return events;
}

function sharedKeys(value: unknown): string[] | undefined {
  if (!isObject(value)) return undefined;
  const keys = value.sharedKeys;
  if (typeof keys === 'string') return keys.split(',').map((k) => k.trim()).filter(Boolean);
  if (Array.isArray(keys) && keys.every((k) => typeof k === 'string')) return keys as string[];
  if (keys === undefined) return [];
  return undefined;
}

export const thingsboard: Dialect = {
  name: 'thingsboard',
  defaultTopics: TOPICS,
  reports: 'progress',

  uplinkFilters(options) {
    const t = templatesOf('thingsboard', TOPICS, options);
    return [t.attributeRequest, t.telemetry, t.chunkRequest].map(filterOf);
  },

  notice(ctx, options) {
    const t = templatesOf('thingsboard', TOPICS, options);
    return [{
      topic: fill(t.attributes, varsOf(ctx.device, options), 'thingsboard notice'),
      payload: JSON.stringify(sharedAttributes(ctx.firmware, options)),
      qos: 1,
      retain: false,
    }];
  },

  clear(device, _firmware, options) {
    const t = templatesOf('thingsboard', TOPICS, options);
    return [{ topic: fill(t.attributes, varsOf(device, options), 'thingsboard clear'), payload: JSON.stringify({ deleted: [...FW_KEYS] }), qos: 1, retain: false }];
  },

  parseUplink(topic, payload, options) {
    const t = templatesOf('thingsboard', TOPICS, options);
    // Chunk requests first: they are the hot path, and need no JSON.
    let g = match(t.chunkRequest, topic, options);
    if (g) {
      const device = deviceFor(g, options);
      if (!device) return noDevice();
      const n = index(g.chunk);
      if (n === undefined) return { kind: 'invalid', device, error: `chunk index "${g.chunk}" is not a non-negative integer` };
      const body = text(payload);
      const raw = body === undefined ? (typeof payload === 'number' ? String(payload) : undefined) : body.trim();
      if (raw === undefined) return { kind: 'invalid', device, error: 'chunk size must be a number as text' };
      const request: ChunkRequest = { kind: 'chunk-request', device, requestId: g.requestId, index: n };
      if (raw === '') return request;
      const size = index(raw);
      const max = options?.maxChunkSize ?? DEFAULT_MAX_CHUNK;
      if (size === undefined) return { kind: 'invalid', device, error: `chunk size "${raw.slice(0, 32)}" is not a positive integer` };
      if (size === 0) return { kind: 'invalid', device, error: 'chunk size 0: ask for at least 1 byte (or send an empty payload for the whole image)' };
      if (size > max) return { kind: 'invalid', device, error: `chunk size ${size} is over the limit of ${max} bytes` };
      request.size = size;
      return request;
    }
    g = match(t.telemetry, topic, options);
    if (g) {
      const device = deviceFor(g, options) ?? ''; // '': the caller fills it (msg.device)
      const parsed = json(payload);
      if (!parsed.ok) return { kind: 'invalid', device, error: `telemetry: ${parsed.error}` };
      const events = telemetryEvents(parsed.value, device);
      if (typeof events === 'string') return { kind: 'invalid', device, error: `telemetry: ${events}` };
      return events.length ? { kind: 'progress', events } : { kind: 'ignored', reason: 'telemetry without firmware keys' };
    }
    g = match(t.attributeRequest, topic, options);
    if (g) {
      const device = deviceFor(g, options);
      if (!device) return noDevice();
      const parsed = json(payload);
      if (!parsed.ok) return { kind: 'invalid', device, error: `attribute request: ${parsed.error}` };
      const keys = sharedKeys(parsed.value);
      if (!keys) return { kind: 'invalid', device, error: 'attribute request: sharedKeys must be a comma-separated string or a list' };
      return { kind: 'attribute-request', device, requestId: g.requestId, keys };
    }
    return { kind: 'ignored', reason: `not a ThingsBoard uplink topic: ${topic}`, foreign: true };
  },

  chunkReply(request, bytes, options) {
    const t = templatesOf('thingsboard', TOPICS, options);
    // Raw bytes, no copy: `bytes` is a view on the cached image. QoS 0: a QoS 1 reply makes the
    // device write a PUBACK just before its next request, and Nagle then holds that request until
    // the broker's delayed ACK (about 40 ms a chunk). A lost reply is asked for again.
    return {
      topic: fill(t.chunkResponse, { device: request.device, requestId: request.requestId, chunk: request.index }, 'thingsboard chunk'),
      payload: bytes,
      qos: 0,
      retain: false,
    };
  },

  errorReply(device, message, options) {
    const t = templatesOf('thingsboard', TOPICS, options);
    if (!device && /\{device\}/.test(t.error)) return [];
    return [{ topic: fill(t.error, { device }, 'thingsboard error'), payload: message, qos: 0, retain: false }];
  },

  attributeReply(request, firmware, options) {
    const t = templatesOf('thingsboard', TOPICS, options);
    const shared: Record<string, string | number> = {};
    if (firmware) {
      const all: Record<string, string | number> = sharedAttributes(firmware, options);
      // No keys named: ThingsBoard answers with all of them.
      for (const key of request.keys.length ? request.keys : FW_KEYS) {
        const value = own(all, key);
        if (value !== undefined) shared[key] = value;
      }
    }
    return {
      topic: fill(t.attributeResponse, { device: request.device, requestId: request.requestId }, 'thingsboard attributes'),
      payload: JSON.stringify({ shared }),
      qos: 1,
      retain: false,
    };
  },
};
