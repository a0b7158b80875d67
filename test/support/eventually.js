'use strict';
const assert = require('assert');

/**
 * Polls `check` every `everyMs` until it returns true; after `timeoutMs` fails with `what` and
 * the last thing it returned (a check returns what it saw when it is not yet satisfied).
 */
async function eventually(check, timeoutMs, what, everyMs = 100) {
  const until = Date.now() + timeoutMs;
  let last;
  while (Date.now() < until) {
    last = await check();
    if (last === true) return;
    await new Promise((r) => setTimeout(r, everyMs));
  }
  assert.fail(`${what}: still ${JSON.stringify(last)}`);
}

module.exports = { eventually };
