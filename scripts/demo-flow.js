'use strict';
// The flow `npm start` deploys: the "Register firmware" example plus a demo image injected at start.
const fs = require('fs');
const path = require('path');
const { ROOT } = require('./node-red-runtime');

function demoFlow({ brokerUrl }) {
  const flow = JSON.parse(fs.readFileSync(path.join(ROOT, 'examples', 'Register firmware.json'), 'utf8'));
  const repo = flow.find((n) => n.type === 'ota-repository');
  repo.storageDir = 'mqtt-ota';
  void brokerUrl;
  return flow;
}

module.exports = { demoFlow };
