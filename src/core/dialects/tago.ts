import type { MqttOut, ProgressEvent } from '../types';
import type { Dialect, DialectOptions, Uplink } from './dialect';
import { fill, filterOf, index, isObject, json, match, now, templatesOf, varsOf } from './topics';

// TagoIO's stateless chunking (seed 002): a manifest on tago/data/post, then the device asks for
// each block with {"variable":"firmware_request","value":i} and gets it base64-encoded. Requests
// and blocks share the one topic, so we also see our own blocks and manifests: they are skipped
// by a substring test before any JSON parse.

export const DEFAULT_TAGO_CHUNK = 4096;

const TOPICS = { data: 'tago/data/post' };

function chunkSizeOf(options?: DialectOptions): number {
  const n = options?.chunkSize;
  return typeof n === 'number' && Number.isSafeInteger(n) && n > 0 ? n : DEFAULT_TAGO_CHUNK;
}

/**
 * Whether the manifest goes out retained: as the node says, else when its topic is the device's
 * alone (behind the gateway, `ota/{device}/tago/data/post`). The seed's device only subscribes and
 * waits (seed 002, on_connect): one that connects after its assignment would otherwise wait for
 * the timeout. On the one topic every device shares on a plain broker a retained manifest would
 * start every device, so there it is not (a device's version report is answered instead:
 * assign-service.uplink). The tracker clears it once the device has every block.
 */
export function retainsManifest(options?: DialectOptions): boolean {
  return options?.retain ?? templatesOf('tago', TOPICS, options).data.includes('{device}');
}

function dataTopic(vars: Record<string, string | number | undefined>, options: DialectOptions | undefined, what: string): string {
  return fill(templatesOf('tago', TOPICS, options).data, vars, what);
}

/** A variable in Tago's form; devices may also post a list of them. */
function pick(value: unknown, variable: string): Record<string, unknown> | undefined {
  const items = Array.isArray(value) ? value : [value];
  return items.find((v): v is Record<string, unknown> => isObject(v) && v.variable === variable);
}

function bytesOf(payload: unknown): Buffer | string | undefined {
  return Buffer.isBuffer(payload) || typeof payload === 'string' ? payload : undefined;
}

export const tago: Dialect = {
  name: 'tago',
  defaultTopics: TOPICS,
  reports: 'progress',
  retainedNotice: 'device',

  uplinkFilters(options) {
    return [filterOf(templatesOf('tago', TOPICS, options).data)];
  },

  notice(ctx, options) {
    const size = chunkSizeOf(options);
    const manifest = {
      variable: 'firmware_manifest',
      value: 'pending',
      metadata: {
        total_size: ctx.firmware.size,
        total_chunks: Math.ceil(ctx.firmware.size / size),
        chunk_size: size,
        version: ctx.firmware.version,
      },
    };
    return [{
      topic: dataTopic(varsOf(ctx.device, options), options, 'tago manifest'),
      payload: JSON.stringify(manifest),
      qos: 1,
      retain: retainsManifest(options),
    }];
  },

  clear(device, _firmware, options) {
    if (!retainsManifest(options)) return []; // nothing stays on the broker
    return [{ topic: dataTopic(varsOf(device, options), options, 'tago clear'), payload: '', qos: 1, retain: true }];
  },

  parseUplink(topic, payload, options): Uplink {
    const g = match(templatesOf('tago', TOPICS, options).data, topic, options);
    if (!g) return { kind: 'ignored', reason: `not a Tago uplink topic: ${topic}`, foreign: true };
    const raw = bytesOf(payload);
    // Our own blocks and manifests come back on this topic: skip them without parsing.
    if (raw !== undefined && raw.indexOf('firmware_request') < 0 && raw.indexOf('firmware_version') < 0 && raw.indexOf('firmware_status') < 0) {
      return { kind: 'ignored', reason: 'not a firmware request' };
    }
    if (raw !== undefined && raw.length === 0) return { kind: 'ignored', reason: 'empty payload' };
    const device = g.device ?? (options?.device || undefined);
    const parsed = json(payload);
    if (!parsed.ok) return { kind: 'invalid', device, error: `firmware_request: ${parsed.error}` };
    const request = pick(parsed.value, 'firmware_request');
    if (request) {
      if (!device) return { kind: 'invalid', error: 'the topic names no device and the node has no single device set' };
      const n = index(request.value);
      if (n === undefined) return { kind: 'invalid', device, error: `firmware_request value ${JSON.stringify(request.value)?.slice(0, 32)} is not a non-negative integer` };
      return { kind: 'chunk-request', device, requestId: '', index: n };
    }
    const version = pick(parsed.value, 'firmware_version');
    if (version) {
      if (typeof version.value !== 'string' || version.value === '') return { kind: 'invalid', device, error: 'firmware_version value must be a version string' };
      const event: ProgressEvent = { device: device ?? '', dialect: 'tago', state: 'notified', version: version.value, at: now() };
      return { kind: 'progress', events: [event] };
    }
    // Our extension, like firmware_version: a device says its download failed (TagoIO stores any variable).
    const status = pick(parsed.value, 'firmware_status');
    if (status && status.value === 'failed') {
      const meta = isObject(status.metadata) ? status.metadata : {};
      const message = typeof meta.error === 'string' && meta.error ? meta.error.slice(0, 200) : 'the device reports a failed update';
      const event: ProgressEvent = { device: device ?? '', dialect: 'tago', state: 'failed', error: { code: 'device_failed', message }, at: now() };
      return { kind: 'progress', events: [event] };
    }
    return { kind: 'ignored', reason: 'not a firmware request' };
  },

  chunkReply(request, bytes, options): MqttOut {
    // Built as text: the base64 alphabet needs no JSON escaping.
    const payload = `{"variable":"firmware_block","value":${request.index},"metadata":{"data":"${bytes.toString('base64')}"}}`;
    return { topic: dataTopic({ device: request.device }, options, 'tago block'), payload, qos: 0, retain: false }; // QoS 0: see thingsboard.chunkReply
  },

  errorReply(device, message, options) {
    const topic = templatesOf('tago', TOPICS, options).data;
    if (!device && /\{device\}/.test(topic)) return [];
    return [{ topic: fill(topic, { device }, 'tago error'), payload: JSON.stringify({ variable: 'firmware_error', value: message }), qos: 0, retain: false }];
  },
};

export { chunkSizeOf as tagoChunkSize };
