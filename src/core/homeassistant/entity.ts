import { createHash } from 'crypto';
import * as semver from 'semver';
import type { DeviceRecord, FirmwareRecord } from '../types';
import { DeviceState, isActive } from '../device-updates/device-states';
import { OtaError } from '../types';

// One Home Assistant MQTT `update` entity per registered device: its discovery config, its state
// payload and its topics, as pure functions of the device, its rollout record and the catalogue.
// Every field name and type below is Home Assistant's own (home-assistant/core, read with the
// search tool; docs/home-assistant.md lists the lines):
// - homeassistant/components/mqtt/update.py @4a776668, PLATFORM_SCHEMA_MODERN (lines 46-60):
//   state_topic is required (it extends MQTT_RO_SCHEMA, config.py), command_topic,
//   payload_install, device_class, entity_picture, latest_version_topic/template, release_summary,
//   release_url, title are optional strings; DISCOVERY_SCHEMA drops unknown keys.
// - async_install publishes `self._config[CONF_PAYLOAD_INSTALL]`: a config without
//   payload_install raises KeyError on Install, so it is always given.
// - The JSON state (newer update.py, `_handle_state_message_received`, validated there with
//   MQTT_JSON_UPDATE_SCHEMA): installed_version, latest_version, title, release_summary,
//   release_url, entity_picture (strings), in_progress (bool), update_percentage (number 0-100 or
//   null; a number also sets in_progress). Only keys present are applied, an unknown key or a
//   null string makes HA drop the whole message: unknown versions are left out, never null.
// - discovery.py TOPIC_MATCHER: `<prefix>/<component>/[<node_id>/]<object_id>/config`, node and
//   object ids of `[a-zA-Z0-9_-]+`; an empty payload on that topic removes the entity.

export interface HaSettings {
  /** Home Assistant's discovery prefix (its MQTT integration setting; default homeassistant). */
  prefix: string;
  /** Where our state, command and availability topics live (default mqtt-ota). */
  base: string;
  /** Device availability from the ota-gateway's presence; off when devices do not connect through it. */
  presence: boolean;
}

export const DEFAULT_PREFIX = 'homeassistant';
export const DEFAULT_BASE = 'mqtt-ota';
/** What the Install button publishes on the command topic. */
export const PAYLOAD_INSTALL = 'install';
/** Home Assistant's documented limit for release_summary (update.mqtt docs: "max 255 characters"). */
export const SUMMARY_MAX = 255;
const ORIGIN = { name: 'node-red-contrib-mqtt-ota' };

const TOPIC_PART = /^[A-Za-z0-9._-]+(\/[A-Za-z0-9._-]+)*$/;
const HA_ID = /^[a-zA-Z0-9_-]+$/;

function topicSetting(value: unknown, fallback: string, field: string): string {
  const text = typeof value === 'string' ? value.trim() : '';
  if (!text) return fallback;
  if (text.length > 64 || !TOPIC_PART.test(text)) {
    throw new OtaError('bad_field', `${field} must be 1-64 characters of letters, digits and . _ - in levels separated by /, no wildcards (got "${text.slice(0, 64)}")`, field);
  }
  return text;
}

/** Settings from the repository node's fields; throws OtaError naming a bad one. */
export function haSettings(input: { prefix?: unknown; base?: unknown; presence?: unknown }): HaSettings {
  return {
    prefix: topicSetting(input.prefix, DEFAULT_PREFIX, 'discovery prefix'),
    base: topicSetting(input.base, DEFAULT_BASE, 'topic base'),
    presence: input.presence === undefined ? true : input.presence === true || input.presence === 'true',
  };
}

/**
 * The object id Home Assistant accepts for a device id. Our ids may hold `. : @`, HA's only
 * `[a-zA-Z0-9_-]`: those become `_`, with a hash of the id so `a.b` and `a_b` stay two entities.
 */
export function objectIdFor(deviceId: string): string {
  if (HA_ID.test(deviceId)) return deviceId;
  const hash = createHash('sha256').update(deviceId).digest('hex').slice(0, 8);
  return `${deviceId.replace(/[^a-zA-Z0-9_-]/g, '_')}_${hash}`;
}

function nodeIdFor(base: string): string {
  return base.replace(/[^a-zA-Z0-9_-]/g, '_');
}

export interface EntityTopics {
  config: string;
  state: string;
  command: string;
  availability: string;
}

export function bridgeAvailabilityTopic(s: HaSettings): string {
  return `${s.base}/bridge/availability`;
}

/** The filter that receives every entity's Install (one level per object id). */
export function commandFilter(s: HaSettings): string {
  return `${s.base}/devices/+/install`;
}

/** The object id in a command topic, or undefined when the topic is not one of ours. */
export function objectIdOfCommand(s: HaSettings, topic: string): string | undefined {
  const head = `${s.base}/devices/`;
  if (!topic.startsWith(head) || !topic.endsWith('/install')) return undefined;
  const id = topic.slice(head.length, -'/install'.length);
  return HA_ID.test(id) ? id : undefined;
}

/** The filter over every entity config of ours (this topic base), to find those left by deleted devices. */
export function configFilter(s: HaSettings): string {
  return `${s.prefix}/update/${nodeIdFor(s.base)}/+/config`;
}

/** The object id in a config topic of ours, or undefined. */
export function objectIdOfConfig(s: HaSettings, topic: string): string | undefined {
  const head = `${s.prefix}/update/${nodeIdFor(s.base)}/`;
  if (!topic.startsWith(head) || !topic.endsWith('/config')) return undefined;
  const id = topic.slice(head.length, -'/config'.length);
  return HA_ID.test(id) ? id : undefined;
}

/** Topics of an object id (a device's, or one a deleted device left behind). */
export function topicsOfObject(s: HaSettings, object: string): EntityTopics {
  const dev = `${s.base}/devices/${object}`;
  return {
    config: `${s.prefix}/update/${nodeIdFor(s.base)}/${object}/config`,
    state: `${dev}/state`,
    command: `${dev}/install`,
    availability: `${dev}/availability`,
  };
}

export function topicsFor(s: HaSettings, deviceId: string): EntityTopics {
  return topicsOfObject(s, objectIdFor(deviceId));
}

/** The retained discovery config of a device's update entity. */
export function discoveryConfig(s: HaSettings, device: DeviceRecord, swVersion?: string): Record<string, unknown> {
  const t = topicsFor(s, device.id);
  const node = nodeIdFor(s.base);
  const availability = [{ topic: bridgeAvailabilityTopic(s) }, ...(s.presence ? [{ topic: t.availability }] : [])];
  return {
    name: 'Firmware',
    unique_id: `${node}_${objectIdFor(device.id)}_firmware`,
    device_class: 'firmware',
    entity_category: 'config',
    state_topic: t.state,
    command_topic: t.command,
    payload_install: PAYLOAD_INSTALL,
    availability,
    // Both must say online: Node-RED connected (its last will says offline) and, with presence,
    // the device connected at the gateway.
    availability_mode: 'all',
    qos: 1,
    device: {
      identifiers: [`${node}_${device.id}`],
      name: device.id,
      model: `${device.dialect} device`,
    },
    origin: { ...ORIGIN, ...(swVersion ? { sw_version: swVersion } : {}) },
  };
}

/** The newest firmware of a title by semantic version (the catalogue validates versions on store). */
export function newestOf(list: Iterable<FirmwareRecord>, title: string): FirmwareRecord | undefined {
  let best: FirmwareRecord | undefined;
  for (const f of list) {
    if (f.title !== title || !semver.valid(f.version)) continue;
    if (!best || semver.gt(f.version, best.version)) best = f;
  }
  return best;
}

/**
 * The firmware Install would put on the device: its assignment while one exists (and is still in
 * the catalogue), else the newest firmware of the title it runs or was last given.
 */
export function latestFirmware(
  record: DeviceState | undefined,
  firmware: { get(id: string): FirmwareRecord | undefined; list(): FirmwareRecord[] },
  /** Newest per title, kept by a caller that asks for many devices at once. */
  memo?: Map<string, FirmwareRecord | undefined>,
): FirmwareRecord | undefined {
  const assigned = record?.firmware ? firmware.get(record.firmware) : undefined;
  if (assigned) return assigned;
  const title = record?.current?.title ?? record?.target?.title;
  if (!title) return undefined;
  if (memo?.has(title)) return memo.get(title);
  const newest = newestOf(firmware.list(), title);
  memo?.set(title, newest);
  return newest;
}

export interface EntityState {
  installed_version?: string;
  latest_version?: string;
  title?: string;
  release_summary: string;
  in_progress: boolean;
  update_percentage: number | null;
}

function summaryOf(record: DeviceState | undefined): string {
  if (!record) return '';
  let text = '';
  if (record.state === 'failed') text = `Update failed${record.lastError ? `: ${record.lastError.message || record.lastError.code}` : ''}`;
  else if (record.state === 'timed_out') text = 'Update timed out: the device stopped reporting progress';
  else if (record.state === 'assigned') text = 'Assigned: waiting for an ota-assign node to send the notice';
  return text.length > SUMMARY_MAX ? text.slice(0, SUMMARY_MAX - 1) + '…' : text;
}

/**
 * The JSON state: always every key HA keeps from an earlier message (release_summary, in_progress,
 * update_percentage), so a retained state never leaves an old value behind; versions only when known.
 */
export function entityState(record: DeviceState | undefined, latest: FirmwareRecord | undefined): EntityState {
  const installed = record?.current?.version;
  // Only an assignment is on its way: a device without one that reports its version is recorded
  // as `notified` (a bare version report), which is no update in progress.
  const active = record?.firmware !== undefined && isActive(record.state);
  const percent = active && record?.state === 'downloading' && typeof record.percent === 'number' ? Math.max(0, Math.min(100, Math.round(record.percent))) : null;
  // Nothing newer known: the device is up to date as far as the catalogue tells.
  const latestVersion = latest?.version ?? installed;
  const title = latest?.title ?? record?.current?.title ?? record?.target?.title;
  return {
    ...(installed ? { installed_version: installed } : {}),
    ...(latestVersion ? { latest_version: latestVersion } : {}),
    ...(title ? { title } : {}),
    release_summary: summaryOf(record),
    in_progress: active,
    update_percentage: percent,
  };
}
