'use strict';
// Where the package's own nodes plug into the benchmark, beside the hand-built flow:
//  - flows(): extra nodes for the Node-RED that has the package, and the targets they serve;
//  - fleet:   the 10,000-device gateway scenario.
// Each is enabled only when this checkout of the package registers the node it needs, so the
// harness runs on any branch.
const { packageNodeTypes } = require('./flows');

function flows() {
  const types = packageNodeTypes();
  const nodes = [];
  const targets = [];
  void types;
  return { nodes, targets };
}

module.exports = { flows, fleet: null };
