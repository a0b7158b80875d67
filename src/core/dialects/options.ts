import { ChecksumAlgorithm, OtaError } from '../types';
import type { DialectOptions, TopicTemplates } from './dialect';

// Node settings (strings from the editor) to dialect options, validated once at deploy.

export interface DeliverySettings {
  prefix?: unknown;
  topics?: unknown;
  singleDevice?: unknown;
  product?: unknown;
  customer?: unknown;
  app?: unknown;
  smingPrefix?: unknown;
  smingEncoding?: unknown;
  maxMessageKB?: unknown;
  tagoChunkSize?: unknown;
  tagoRetain?: unknown;
  checksumAlgorithm?: unknown;
  maxChunkSize?: unknown;
}

const ALGORITHMS: ChecksumAlgorithm[] = ['md5', 'sha256', 'sha384', 'sha512', 'crc32', 'murmur3_32', 'murmur3_128'];

function s(value: unknown): string | undefined {
  return typeof value === 'string' && value.trim() !== '' ? value.trim() : undefined;
}

function positiveInt(value: unknown, field: string): number | undefined {
  if (value === undefined || value === null || value === '') return undefined;
  const n = Number(value);
  if (!Number.isSafeInteger(n) || n <= 0) throw new OtaError('bad_setting', `${field} must be a positive whole number`, field);
  return n;
}

function topicsOf(value: unknown): TopicTemplates | undefined {
  if (value === undefined || value === null || value === '') return undefined;
  let parsed: unknown = value;
  if (typeof value === 'string') {
    try {
      parsed = JSON.parse(value);
    } catch {
      throw new OtaError('bad_setting', 'topics must be JSON: {"key": "template"}', 'topics');
    }
  }
  if (!parsed || typeof parsed !== 'object' || Array.isArray(parsed)) throw new OtaError('bad_setting', 'topics must be an object of templates', 'topics');
  const out: TopicTemplates = {};
  for (const [k, v] of Object.entries(parsed as Record<string, unknown>)) {
    if (typeof v !== 'string' || /[#+]/.test(v)) throw new OtaError('bad_setting', `topics.${k} must be a topic template without wildcards`, 'topics');
    out[k] = v;
  }
  return out;
}

export function optionsFromSettings(c: DeliverySettings): DialectOptions {
  const options: DialectOptions = {};
  const prefix = s(c.prefix);
  if (prefix) {
    if (/[#+]/.test(prefix)) throw new OtaError('bad_setting', 'the namespace prefix must not contain wildcards', 'prefix');
    options.prefix = prefix.endsWith('/') ? prefix : prefix + '/';
  }
  const topics = topicsOf(c.topics);
  if (topics) options.topics = topics;
  const device = s(c.singleDevice);
  if (device) options.device = device;
  const attributes: Record<string, string> = {};
  for (const key of ['product', 'customer', 'app'] as const) {
    const v = s(c[key]);
    if (v) attributes[key] = v;
  }
  if (Object.keys(attributes).length) options.attributes = attributes;
  if (typeof c.smingPrefix === 'string') options.smingPrefix = c.smingPrefix.trim();
  if (c.smingEncoding === 'varint' || c.smingEncoding === 'byte') options.smingPatchEncoding = c.smingEncoding;
  const kb = positiveInt(c.maxMessageKB, 'maxMessageKB');
  if (kb) options.maxMessageBytes = kb * 1024;
  const chunk = positiveInt(c.tagoChunkSize, 'tagoChunkSize');
  if (chunk) options.chunkSize = chunk;
  const max = positiveInt(c.maxChunkSize, 'maxChunkSize');
  if (max) options.maxChunkSize = max;
  // 'auto' (and the old checkbox's false, its default): retained when the topic names the device.
  if (c.tagoRetain === true || c.tagoRetain === 'true' || c.tagoRetain === 'always') options.retain = true;
  else if (c.tagoRetain === 'never') options.retain = false;
  const algorithm = s(c.checksumAlgorithm);
  if (algorithm) {
    if (!(ALGORITHMS as string[]).includes(algorithm)) throw new OtaError('bad_setting', `checksum algorithm must be one of ${ALGORITHMS.join(', ')}`, 'checksumAlgorithm');
    options.checksumAlgorithm = algorithm as ChecksumAlgorithm;
  }
  return options;
}
