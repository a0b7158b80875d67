'use strict';
// node-red-node-test-helper gives nodes a RED._ that returns the key untranslated. To check the
// words a user reads, wrap a node module so that its RED._ looks keys up in the package's message
// catalogues with Node-RED's own i18n (@node-red/util: i18next, `__x__` interpolation, `_one` /
// `_other` plurals), as the runtime does.
const path = require('path');
const { i18n } = require('@node-red/util');

const DIR = path.join(__dirname, '..', '..', 'nodes', 'locales');
const TYPES = ['chunk-server', 'firmware-store', 'ota-assign', 'ota-gateway', 'ota-repository', 'progress-parser'];
let ready;

/** Loads the catalogues once (en-US). */
function catalogues() {
  ready = ready || (async () => {
    await i18n.init({ lang: 'en-US' });
    for (const type of TYPES) await i18n.registerMessageCatalog(`mqtt-ota-${type}`, DIR, `${type}.json`);
  })();
  return ready;
}

const translate = (key, subs) => {
  const type = String(key).split('.')[0];
  return TYPES.includes(type) ? i18n._(`mqtt-ota-${type}:${key}`, subs) : key;
};

/** The node module, with RED._ translating. */
function translated(nodeModule) {
  return (RED) => {
    RED._ = translate;
    return nodeModule(RED);
  };
}

module.exports = { catalogues, translated, translate };
