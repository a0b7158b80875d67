'use strict';
const assert = require('assert');
const { fuzz } = require('../fuzz/run');

// A bounded slice of `npm run fuzz` (fuzz/run.js): every target with a small count and a fixed
// seed, so that `npm test` catches a regression the full run would. An escape fails the spec
// with each escape class and its shrunk reproducer. The full run: `npm run fuzz`.

const SEED = 'npm-test';

async function slice(target, counts, brokers) {
  const lines = [];
  const { escapes, inputs, results } = await fuzz({ seed: SEED, targets: [target], quick: true, counts, brokers, log: (l) => lines.push(l) });
  const log = results.flatMap((r) => r.escapes.lines()).join('\n');
  assert.strictEqual(escapes, 0, `${escapes} escapes (seed ${SEED}; rerun: node fuzz/run.js --seed ${SEED} --target ${target})\n${log}`);
  return { inputs, lines };
}

describe('fuzz slice (npm run fuzz runs the full counts)', function () {
  this.timeout(120000);

  // Skipped until the fixes of issue 11 land (ACL completeness, prototype-safe lookups, the
  // topic-filter newline, records from unregistered devices): on b7da9bd this finds escapes.
  it('finds no escape in 5,000 uplinks to every parser, policy and topic filter', async function () {
    const { inputs } = await slice('uplink', { uplink: 5_000 });
    assert.strictEqual(inputs, 5_000);
  });

  // Skipped until the admin API answers malformed JSON and undecodable paths with JSON, refuses
  // ids . and .., and checks names read from an image like typed ones.
  it('finds no escape in 1,000 admin API bodies and 30 HTTP requests to a real Node-RED', async function () {
    const { inputs } = await slice('admin', { admin: 1_000, http: 30 });
    assert.ok(inputs >= 1_000);
  });

  // Skipped until the gateway refuses incomplete identities, $share and $SYS, keeps upstream
  // client ids apart and refuses an empty client id with clean session 0.
  it('lets no hostile client reach another device through the gateway (aedes and mosquitto)', async function () {
    const brokers = ['aedes', ...(require('../scripts/servers').haveMosquitto() ? ['mosquitto'] : [])];
    const { inputs } = await slice('gateway', { connections: 100, concurrency: 50 }, brokers);
    assert.strictEqual(inputs, 100 * brokers.length);
  });
});
