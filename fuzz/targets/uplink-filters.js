'use strict';
// Topic filters and ACLs for the uplink target (fuzz/targets/uplink.js): matches() against
// filterRegExp(), the gateway's contains()/intersects() against matching, and the gateway's
// policy for every dialect against lib/oracle.js (a device's own topics, complete identities only).

const path = require('path');
const g = require('../lib/gen');
const oracle = require('../lib/oracle');

const dist = (p) => require(path.join(__dirname, '../../dist', p));
const { matches, filterRegExp } = dist('core/topic-filter');
const topics = dist('gateway/topics');
const { policyFor } = dist('gateway/policy');

/** Device ids the fuzzers use: ordinary ones and ones that collide with topic levels. */
const DEVICE_IDS = ['d1', 'lamp', '1', 'ota', 'a', 'x:y', '..', '.', 'dev-42', 'P1'];

function thrown(err) {
  return { cls: `threw ${err && err.constructor ? err.constructor.name : typeof err}`, detail: String(err && err.stack ? err.stack.split('\n').slice(0, 3).join(' | ') : err) };
}

function topicFilterCase(rng) {
  const base = rng.pick(['a/b/c', 'ota/d1/v2/fw/response/1/chunk/0', '$ota/update/P1/d1', '$SYS/x', 'a/+/c', '#', '+/#', 'a/#', '+', '', '/', 'a//b', 'biotz/1/0/c1/d1/#']);
  let filter = base;
  let topic = base.replace(/[+#]/g, 'x');
  for (let i = rng.range(0, 3); i > 0; i--) filter = g.mutateTopic(rng, filter);
  for (let i = rng.range(0, 3); i > 0; i--) topic = g.mutateTopic(rng, topic).replace(/[+#]/g, rng.pick(['x', '', '\n']));
  return { filter, topic };
}

/** matches() and filterRegExp() say the same for every filter and topic. */
const topicFilter = {
  name: 'topic-filter matches/filterRegExp',
  weight: 12,
  gen(rng) {
    const c = topicFilterCase(rng);
    if (rng.chance(0.3)) c.other = topicFilterCase(rng).filter;
    return c;
  },
  check(c) {
    try {
      // Only what MQTT allows: the gateway refuses anything else before it is ever matched.
      if (!topics.isFilter(c.filter) || !topics.isTopicName(c.topic) || (c.other !== undefined && !topics.isFilter(c.other))) return null;
      // filterRegExp takes the filters of node settings, not a device's: keep to lengths a setting has.
      if (c.filter.length > 1024 || (c.other ?? '').length > 1024) return null;
      const one = matches(c.filter, c.topic);
      const re = filterRegExp([c.filter]).test(c.topic);
      if (one !== re) return { cls: 'matches and filterRegExp disagree', detail: `matches=${one} filterRegExp=${re}` };
      if (c.other !== undefined) {
        const both = filterRegExp([c.filter, c.other]).test(c.topic);
        if (both !== (one || matches(c.other, c.topic))) return { cls: 'filterRegExp of two filters is not the union', detail: `${both}` };
      }
      return null;
    } catch (err) {
      return thrown(err);
    }
  },
};

/** contains() and intersects() are sound against matches() on sampled topics. */
const filterAlgebra = {
  name: 'gateway contains/intersects',
  weight: 8,
  gen(rng) {
    const a = topicFilterCase(rng);
    const b = topicFilterCase(rng);
    return { outer: a.filter, inner: rng.chance(0.5) ? b.filter : g.mutateTopic(rng, a.filter), topic: rng.chance(0.5) ? a.topic : b.topic };
  },
  check(c) {
    try {
      const { outer, inner, topic } = c;
      if (!topics.isFilter(outer) || !topics.isFilter(inner) || !topics.isTopicName(topic)) return null;
      if (topics.contains(outer, inner) && oracle.topicMatches(inner, topic) && !oracle.topicMatches(outer, topic)) {
        return { cls: 'contains(outer, inner) but a topic matches inner and not outer', detail: `contains(${JSON.stringify(outer)}, ${JSON.stringify(inner)}) yet ${JSON.stringify(topic)}` };
      }
      if (oracle.topicMatches(inner, topic) && oracle.topicMatches(outer, topic) && !topics.intersects(outer, inner)) {
        return { cls: 'intersects() false for filters with a common topic' };
      }
      return null;
    } catch (err) {
      return thrown(err);
    }
  },
};

/** The gateway's ACL policy: what a device of each dialect is granted (see lib/oracle.js). */
const policy = {
  name: 'gateway policy',
  weight: 12,
  gen(rng) {
    const dialect = rng.pick(['biotz', 'tencent', 'sming', 'thingsboard', 'tago', 'tasmota']);
    const id = rng.chance(0.8) ? rng.pick(DEVICE_IDS) : g.randomText(rng, rng.range(1, 6)).replace(/[^A-Za-z0-9._:@-]/g, '') || 'z';
    const attributes = {};
    if (rng.chance(0.6)) attributes.customer = rng.pick(['c1', 'c2', '1']);
    if (rng.chance(0.6)) attributes.product = rng.pick(['P1', 'P2', 'a', 'ota']);
    if (rng.chance(0.6)) attributes.app = rng.pick(['lamp', 'toy', 'u']);
    const other = rng.pick(DEVICE_IDS);
    const bases = [
      ...oracle.ownTopics(dialect, id, attributes).sub,
      ...oracle.ownTopics(rng.pick(['biotz', 'tencent', 'sming', 'thingsboard', 'tasmota']), other, { customer: 'c1', product: 'P1', app: 'lamp' }).sub,
      `cmnd/${other}/Upgrade`, 'cmnd/tasmotas/#', `stat/${other}/RESULT`, `tele/${id}/LWT`, `stat/${id}/UPGRADE`,
      '#', '+/#', `+/${id}/#`, `$share/${id}/#`, `$share/g/+/${id}/#`, `$SYS/${id}/#`, `$share/${attributes.product || 'P1'}/${id}/x`,
      'a/lamp/u/9.9', `a/${id}/u/9.9`, `biotz/1/0/c1/${other}/subscribe/firmware/update`, `$ota/update/P1/${other}`, `${id}/${id}/#`, `ota/${other}/v1/devices/me/attributes`,
    ];
    let topic = rng.pick(bases);
    for (let i = rng.range(0, 2); i > 0; i--) topic = g.mutateTopic(rng, topic, [id, other, '$share']);
    const op = rng.pick(['subscribe', 'publish', 'down']);
    if (op === 'publish') topic = topic.replace(/\/#$/, '/x').replace(/\+/g, rng.pick([id, other, 'x']));
    return { dialect, id, attributes, op, topic };
  },
  check(c) {
    try {
      const p = policyFor({ deviceId: c.id, dialect: c.dialect, attributes: c.attributes }, { namespace: oracle.NAMESPACE });
      if (c.op === 'subscribe') {
        const granted = p.subscribe(c.topic);
        if (granted === null) return null;
        const bad = oracle.subscribeViolation(c.dialect, c.id, c.attributes, granted);
        if (!bad) return null;
        const missing = ['customer', 'product', 'app'].filter((k) => c.attributes[k] === undefined);
        return { cls: `${c.dialect} device granted a filter outside its own topics${/^\$share/i.test(granted) ? ' ($share)' : /^\$SYS/.test(granted) ? ' ($SYS)' : ''}${missing.length ? ' (attribute missing)' : ''}`, detail: bad };
      }
      if (c.op === 'publish') {
        const up = p.publish(c.topic);
        if (up === null) return null;
        const bad = oracle.publishViolation(c.dialect, c.id, c.attributes, up);
        const missing = ['customer', 'product', 'app'].filter((k) => c.attributes[k] === undefined);
        return bad ? { cls: `${c.dialect} device may publish outside its own topics${/notice/.test(bad) ? ' (notice topic)' : ''}${missing.length ? ' (attribute missing)' : ''}`, detail: bad } : null;
      }
      const down = p.down(c.topic);
      if (down !== null && (c.dialect === 'thingsboard' || c.dialect === 'tago') && !c.topic.startsWith(`${oracle.NAMESPACE}/${c.id}/`)) {
        return { cls: 'namespaced device handed another namespace\'s message', detail: c.topic };
      }
      return null;
    } catch (err) {
      // Refusing a device whose topics need an attribute it lacks is the policy's answer (it is
      // refused at CONNECT); refusing a complete identity is not.
      if (err && err.name === 'IncompleteIdentityError') {
        const need = NEEDS[c.dialect];
        return need && c.attributes[need] === undefined ? null : { cls: `${c.dialect} device with a complete identity refused`, detail: err.message };
      }
      return thrown(err);
    }
  },
};

/** The attribute each per-device dialect's topics need (DEFAULT_ACL_RULES). */
const NEEDS = { tencent: 'product', biotz: 'customer', sming: 'app' };

module.exports = { topicFilter, filterAlgebra, policy, DEVICE_IDS, thrown };
