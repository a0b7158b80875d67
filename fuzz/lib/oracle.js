'use strict';
// What a device may reach, written independently of src/gateway (so that the fuzzer does not
// trust the code it tests): its own topics from COMPLETE identities only (a rule whose
// placeholder the device lacks grants nothing), never `$share/...` or `$SYS/...`, never a
// notice topic to publish on, never another device's topics.

const NAMESPACE = 'ota';

/** Own topic filters to subscribe to and publish on, per dialect. */
function ownTopics(dialect, id, attributes = {}) {
  if (dialect === 'thingsboard' || dialect === 'tago') return { sub: [`${NAMESPACE}/${id}/#`], pub: [`${NAMESPACE}/${id}/#`] };
  const { customer, product, app } = attributes;
  if (dialect === 'biotz') return customer ? { sub: [`biotz/1/0/${customer}/${id}/#`], pub: [`biotz/1/0/${customer}/${id}/#`] } : { sub: [], pub: [] };
  if (dialect === 'tencent') {
    if (!product) return { sub: [], pub: [] };
    return { sub: [`$ota/update/${product}/${id}`, `$ota/report/${product}/${id}`, `${product}/${id}/#`], pub: [`$ota/report/${product}/${id}`, `${product}/${id}/#`] };
  }
  if (dialect === 'sming') return app ? { sub: [`a/${app}/u/#`, `/a/${app}/u/#`], pub: [] } : { sub: [], pub: [] };
  // Tasmota: commands in on its own cmnd topic only, answers out on its own stat and tele.
  if (dialect === 'tasmota') return { sub: [`cmnd/${id}/#`], pub: [`stat/${id}/#`, `tele/${id}/#`] };
  return { sub: [], pub: [] };
}

/** Notice topics of every per-device dialect: no device publishes there. */
const NOTICE_FILTERS = ['biotz/1/0/+/+/subscribe/firmware/update', '$ota/update/+/+', 'a/+/u/+', '/a/+/u/+', 'cmnd/+/#'];

/** MQTT matching (3.1.1 4.7): a filter's leading wildcard never matches a `$` topic. */
function topicMatches(filter, topic) {
  const f = filter.split('/');
  const t = topic.split('/');
  if (topic.startsWith('$') && (f[0] === '+' || f[0] === '#')) return false;
  for (let i = 0; i < f.length; i++) {
    if (f[i] === '#') return true;
    if (i >= t.length) return false;
    if (f[i] !== '+' && f[i] !== t[i]) return false;
  }
  return f.length === t.length;
}

/** True when every topic `inner` can match is matched by `outer` (with the `$` rule). */
function filterWithin(inner, outer) {
  const o = outer.split('/');
  const i = inner.split('/');
  for (let k = 0; k < o.length; k++) {
    if (o[k] === '#') return !(k === 0 && i[0].startsWith('$'));
    if (k >= i.length) return false;
    if (i[k] === '#') return false;
    if (o[k] === '+') {
      if (k === 0 && i[0].startsWith('$')) return false;
      continue;
    }
    if (o[k] !== i[k]) return false;
  }
  return o.length === i.length;
}

/** Why a filter granted upstream is outside the device's own topics, or null when it is inside. */
function subscribeViolation(dialect, id, attributes, granted) {
  if (/^\$share\//i.test(granted) || granted.toLowerCase() === '$share') return `granted a shared subscription ${JSON.stringify(granted)}`;
  if (/^\$SYS(\/|$)/.test(granted)) return `granted $SYS: ${JSON.stringify(granted)}`;
  if (granted.includes('\u0000')) return 'granted a filter with NUL';
  const own = ownTopics(dialect, id, attributes).sub;
  if (own.some((o) => filterWithin(granted, o))) return null;
  return `granted ${JSON.stringify(granted)}, outside its own topics ${JSON.stringify(own)}`;
}

/** Why a topic allowed upstream for a PUBLISH is not the device's to publish on, or null. */
function publishViolation(dialect, id, attributes, upTopic) {
  if (/[+#]/.test(upTopic) || upTopic.includes('\u0000')) return `publish topic with a wildcard or NUL: ${JSON.stringify(upTopic)}`;
  if (dialect !== 'thingsboard' && dialect !== 'tago' && NOTICE_FILTERS.some((f) => topicMatches(f, upTopic))) return `publish on a notice topic ${JSON.stringify(upTopic)}`;
  const own = ownTopics(dialect, id, attributes).pub;
  if (own.some((o) => topicMatches(o, upTopic))) return null;
  return `publish on ${JSON.stringify(upTopic)}, outside its own topics ${JSON.stringify(own)}`;
}

module.exports = { NAMESPACE, ownTopics, NOTICE_FILTERS, topicMatches, filterWithin, subscribeViolation, publishViolation };
