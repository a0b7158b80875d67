'use strict';
// node-red-node-test-helper set up once for all node specs, plus a capture of RED.httpNode so
// specs can reach routes that nodes register there.
const helper = require('node-red-node-test-helper');
helper.init(require.resolve('node-red'));

const captured = { httpNode: null };
/** A pseudo node module that only records the runtime's httpNode app. */
function captureHttpNode(RED) {
  captured.httpNode = RED.httpNode;
}

const nodes = {
  repository: require('../../dist/nodes/ota-repository.js'),
  firmwareStore: require('../../dist/nodes/firmware-store.js'),
  catch: require('@node-red/nodes/core/common/25-catch.js'),
};

module.exports = { helper, nodes, captured, captureHttpNode };
