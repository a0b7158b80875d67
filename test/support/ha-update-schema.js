'use strict';
// A checker for what Home Assistant's MQTT integration accepts for an `update` entity, written
// from its source (home-assistant/core; docs/home-assistant.md has the files and lines):
// - discovery.py TOPIC_MATCHER: `<prefix>/<component>/[<node_id>/]<object_id>/config`, ids [a-zA-Z0-9_-]+
// - update.py PLATFORM_SCHEMA_MODERN = config.py MQTT_RO_SCHEMA (qos, encoding, state_topic
//   required, value_template) + the update keys + schemas.py MQTT_ENTITY_COMMON_SCHEMA
//   (availability, device, origin, entity_category, unique_id, ...). HA drops unknown keys
//   (REMOVE_EXTRA); this checker refuses them, since a key HA drops is a bug on our side.
// - update.py async_install reads config[payload_install]: with a command_topic it must be there.
// - update.py _handle_state_message_received / MQTT_JSON_UPDATE_SCHEMA: a JSON object of only
//   the eight keys below; a wrong type (a null version) makes HA drop the whole message.

const DISCOVERY_TOPIC = /^(?<component>\w+)\/(?:(?<node_id>[a-zA-Z0-9_-]+)\/)?(?<object_id>[a-zA-Z0-9_-]+)\/config$/;

const isString = (v) => typeof v === 'string';
const isBool = (v) => typeof v === 'boolean';

function validPublishTopic(t) {
  return isString(t) && t.length > 0 && Buffer.byteLength(t) <= 65535 && !t.includes('\0') && !/[+#]/.test(t);
}
function validSubscribeTopic(t) {
  if (!isString(t) || t.length === 0 || Buffer.byteLength(t) > 65535 || t.includes('\0')) return false;
  const levels = t.split('/');
  return levels.every((l, i) => (l.includes('#') ? l === '#' && i === levels.length - 1 : !l.includes('+') || l === '+'));
}

const DEVICE_KEYS = {
  identifiers: (v) => isString(v) || (Array.isArray(v) && v.every(isString)),
  connections: (v) => Array.isArray(v) && v.every((c) => Array.isArray(c) && c.length === 2 && c.every(isString)),
  manufacturer: isString, model: isString, model_id: isString, name: isString, hw_version: isString,
  serial_number: isString, sw_version: isString, via_device: isString, suggested_area: isString,
  configuration_url: isString,
};
const ORIGIN_KEYS = { name: isString, sw_version: isString, support_url: isString };
const AVAILABILITY_ITEM = { topic: validSubscribeTopic, payload_available: isString, payload_not_available: isString, value_template: isString };

const CONFIG_KEYS = {
  // config.py MQTT_RO_SCHEMA
  qos: (v) => v === 0 || v === 1 || v === 2,
  encoding: isString,
  state_topic: validSubscribeTopic,
  value_template: isString,
  // update.py PLATFORM_SCHEMA_MODERN
  command_topic: validPublishTopic,
  device_class: (v) => v === null || v === 'firmware',
  display_precision: (v) => Number.isInteger(v) && v >= 0,
  entity_picture: isString,
  latest_version_template: isString,
  latest_version_topic: validSubscribeTopic,
  name: (v) => v === null || isString(v),
  payload_install: isString,
  release_summary: isString,
  release_url: isString,
  retain: isBool,
  title: isString,
  // schemas.py MQTT_ENTITY_COMMON_SCHEMA and the availability schemas
  availability_topic: validSubscribeTopic,
  availability_template: isString,
  payload_available: isString,
  payload_not_available: isString,
  availability_mode: (v) => v === 'all' || v === 'any' || v === 'latest',
  availability: (v) => Array.isArray(v) && v.length > 0 && v.every((a) => objectOf(a, AVAILABILITY_ITEM, ['topic']).length === 0),
  device: (v) => objectOf(v, DEVICE_KEYS).length === 0 && ((Array.isArray(v.identifiers) ? v.identifiers.length : !!v.identifiers) || (v.connections || []).length > 0),
  origin: (v) => objectOf(v, ORIGIN_KEYS, ['name']).length === 0,
  enabled_by_default: isBool,
  entity_category: (v) => v === 'config' || v === 'diagnostic',
  icon: isString,
  json_attributes_topic: validSubscribeTopic,
  json_attributes_template: isString,
  object_id: isString,
  default_entity_id: isString,
  unique_id: isString,
};

/** Problems of a plain object against `keys` (name -> check), with `required` names. */
function objectOf(value, keys, required = []) {
  if (!value || typeof value !== 'object' || Array.isArray(value)) return ['not an object'];
  const out = [];
  for (const k of required) if (!(k in value)) out.push(`${k} is required`);
  for (const [k, v] of Object.entries(value)) {
    if (!Object.prototype.hasOwnProperty.call(keys, k)) out.push(`unknown key ${k}`);
    else if (!keys[k](v)) out.push(`${k} has a bad value ${JSON.stringify(v)}`);
  }
  return out;
}

/** Problems of a discovery message (topic + payload text) for an update entity; [] when HA takes it. */
function checkDiscovery(prefix, topic, payload) {
  const problems = [];
  if (!topic.startsWith(`${prefix}/`)) problems.push(`topic ${topic} is not under ${prefix}/`);
  const m = DISCOVERY_TOPIC.exec(topic.slice(prefix.length + 1));
  if (!m) problems.push(`topic ${topic} does not match TOPIC_MATCHER`);
  else if (m.groups.component !== 'update') problems.push(`component ${m.groups.component} is not update`);
  if (payload === '') return problems; // removal
  let config;
  try {
    config = JSON.parse(payload);
  } catch {
    return [...problems, 'payload is not JSON'];
  }
  problems.push(...objectOf(config, CONFIG_KEYS, ['state_topic']));
  if ('availability' in config && 'availability_topic' in config) problems.push('availability and availability_topic are exclusive');
  if ('command_topic' in config && !('payload_install' in config)) problems.push('command_topic without payload_install: Install raises KeyError');
  if ('device' in config && !('unique_id' in config)) problems.push('device info needs a unique_id');
  return problems;
}

const STATE_KEYS = {
  installed_version: isString,
  latest_version: isString,
  title: isString,
  release_summary: (v) => isString(v) && v.length <= 255,
  release_url: isString,
  entity_picture: isString,
  in_progress: isBool,
  update_percentage: (v) => v === null || (typeof v === 'number' && Number.isFinite(v) && v >= 0 && v <= 100),
};

/** Problems of a state payload; [] when HA applies it. */
function checkState(payload) {
  let state;
  try {
    state = JSON.parse(payload);
  } catch {
    return ['payload is not JSON'];
  }
  return objectOf(state, STATE_KEYS);
}

module.exports = { checkDiscovery, checkState, DISCOVERY_TOPIC };
