'use strict';
// Who is who in the gateway fuzz (fuzz/targets/gateway.js): devices whose credentials the
// attacker holds, devices it must never reach, what waits retained on the broker, and the
// filters and topics an attacker tries. `validCredentials` reads credentials as the gateway's
// directory does, so that made-up ones that happen to be valid are not taken for an escape.

const oracle = require('./oracle');

/** Devices whose credentials the attacker holds. `lamp` and `1` are Tencent devices registered without a product. */
const ATTACKERS = [
  { id: 'atk-tb', dialect: 'thingsboard', token: 'atk-tb-token' },
  { id: 'atk-tg', dialect: 'tago', token: 'atk-tg-token' },
  { id: 'atk-bz', dialect: 'biotz', token: 'atk-bz-token', attributes: { customer: 'c1' } },
  { id: 'atk-tc', dialect: 'tencent', token: 'atk-tc-token', attributes: { product: 'P1' } },
  { id: 'atk-sm', dialect: 'sming', token: 'atk-sm-token', attributes: { app: 'toy' } },
  { id: 'atk-ts', dialect: 'tasmota', token: 'atk-ts-token' },
  { id: 'lamp', dialect: 'tencent', token: 'lamp-token' },
  { id: '1', dialect: 'tencent', token: 'one-token' },
  { id: 'site', dialect: 'thingsboard', token: 'site-token' },
];
/** Devices the attacker must never reach; `site:42` holds a connection all along (session takeover). */
const VICTIMS = [
  { id: 'legit', dialect: 'thingsboard', token: 'legit-token' },
  { id: 'victim-tb', dialect: 'thingsboard', token: 'victim-tb-token' },
  { id: 'victim-bz', dialect: 'biotz', token: 'victim-bz-token', attributes: { customer: 'c1' } },
  { id: 'victim-tc', dialect: 'tencent', token: 'victim-tc-token', attributes: { product: 'P1' } },
  { id: 'victim-sm', dialect: 'sming', token: 'victim-sm-token', attributes: { app: 'lamp' } },
  { id: 'victim-ts', dialect: 'tasmota', token: 'victim-ts-token' },
  { id: 'site:42', dialect: 'thingsboard', token: 'site42-token' },
];
const ATTACKER = new Map(ATTACKERS.map((a) => [a.id, a]));
const NAMESPACED = new Set(['thingsboard', 'tago']);

/** Retained on the broker before the attack; only the last two may be read, each by its own device. */
const RETAINED = [
  ['biotz/1/0/c1/victim-bz/subscribe/firmware/update', 'VICTIM-NOTICE biotz'],
  ['$ota/update/P1/victim-tc', 'VICTIM-NOTICE tencent'],
  ['a/lamp/u/1.0', 'VICTIM-NOTICE sming'],
  ['/a/lamp/u/1.0', 'VICTIM-NOTICE sming'],
  // A retained command, as users publish by mistake (Tasmota runs it at every connection).
  ['cmnd/victim-ts/Upgrade', 'VICTIM-NOTICE tasmota'],
  ['cmnd/tasmotas/Upgrade', 'VICTIM-NOTICE tasmota group'],
  ['ota/victim-tb/v1/devices/me/attributes', 'VICTIM-NOTICE thingsboard'],
  ['ota/legit/v1/devices/me/attributes', 'VICTIM-NOTICE legit'],
  ['ota/site:42/v1/devices/me/attributes', 'VICTIM-NOTICE site:42'],
  ['a/toy/u/1.0', 'OWN-NOTICE atk-sm'],
  ['biotz/1/0/c1/atk-bz/subscribe/firmware/update', 'OWN-NOTICE atk-bz'],
];
/** Published every 100 ms during the attack: another device's live traffic. */
const LIVE = ['ota/victim-tb/v1/devices/me/attributes', '$ota/update/P1/victim-tc', 'biotz/1/0/c1/victim-bz/x', 'P1/victim-tc/x', 'lamp/x/y', 'x/lamp/y', 'x/1/y', 'cmnd/victim-ts/OtaUrl', 'stat/victim-ts/RESULT', 'tele/victim-ts/LWT'];

/** Filters an attacker tries, given its own id and attributes. */
function evilFilters(a) {
  const p = a.attributes?.product ?? 'P1';
  return [
    '#', '+/#', '+/+/#', '$SYS/#', `$SYS/${a.id}/#`, '$share/x/#', `$share/${a.id}/#`, `$share/${p}/#`, `$share/x/${p}/${a.id}/#`,
    `+/${a.id}/#`, `${a.id}/${a.id}/#`, 'biotz/1/0/c1/victim-bz/#', 'biotz/1/0/+/+/subscribe/firmware/update', '$ota/update/P1/victim-tc', '$ota/#',
    'a/lamp/u/#', 'a/+/u/#', '/a/lamp/u/#', 'ota/victim-tb/#', 'ota/+/v2/fw/response/#', 'v2/fw/response/+', 'v1/devices/me/attributes', '../legit/#',
    'cmnd/victim-ts/#', 'cmnd/+/#', 'cmnd/tasmotas/#', 'stat/+/#', 'tele/victim-ts/LWT', `cmnd/${a.id}/+`,
    ...oracle.ownTopics(a.dialect, a.id, a.attributes).sub.map((f) => (NAMESPACED.has(a.dialect) ? f.replace(`ota/${a.id}/`, '') : f)),
  ];
}

function evilTopics(a) {
  return [
    'biotz/1/0/c1/victim-bz/subscribe/firmware/update', `biotz/1/0/c1/${a.id}/subscribe/firmware/update`, '$ota/update/P1/victim-tc', '$ota/report/P1/victim-tc',
    'a/lamp/u/9.9', '/a/lamp/u/9.9', 'a/toy/u/9.9', `x/${a.id}/y`, `a/${a.id}/u/9.9`, `biotz/${a.id}/0/c1/victim-bz/subscribe/firmware/update`,
    'ota/victim-tb/v1/devices/me/attributes', '../victim-tb/v1', 'v1/devices/me/telemetry', 'v2/fw/request/1/chunk/0', '$SYS/x', 'tago/data/post',
    `P1/${a.id}/data`, `$ota/report/P1/${a.id}`,
    'cmnd/victim-ts/Upgrade', `cmnd/${a.id}/Upgrade`, 'cmnd/tasmotas/Upgrade', 'stat/victim-ts/UPGRADE', 'tele/victim-ts/INFO1', `stat/${a.id}/RESULT`,
  ];
}


/**
 * Whether made-up credentials happen to be valid, the way the directory reads them: a token as
 * username (TagoIO: username `Token`, token as password), or a device id as client id with its
 * token as password or username. Nothing else (every device here has a token).
 */
function validCredentials(claimed) {
  if (!claimed || claimed.mutated) return false;
  const all = [...ATTACKERS, ...VICTIMS];
  const token = claimed.username === 'Token' ? claimed.password : claimed.username;
  if (token && all.some((d) => d.token === token)) return true;
  const byId = all.find((d) => d.id === claimed.clientId);
  return Boolean(byId && [claimed.password, claimed.username].includes(byId.token));
}

module.exports = { ATTACKERS, VICTIMS, ATTACKER, NAMESPACED, RETAINED, LIVE, evilFilters, evilTopics, validCredentials };
