'use strict';
const assert = require('assert');
const h = require('./helpers');
const { onBothBrokers } = require('./brokers');
const { LogLimiter, printable } = require('../../dist/gateway');

// What devices can make the gateway say. Found: refused long client ids wrote 114 MiB of log in
// 5 s, and a client id is written into log lines as is (a newline forges a line).

const LONG = 'A'.repeat(15_000); // under the CONNECT limit: refused for who it is, not for its size

/** `count` CONNECTs with unknown client ids, each waiting for its CONNACK (a refusal). */
async function refusedConnects(port, count, version, clientId = (i) => `${LONG}${i}`) {
  for (let i = 0; i < count; i += 20) {
    await Promise.all(
      Array.from({ length: Math.min(20, count - i) }, async (_, j) => {
        const raw = h.rawClient(port, version);
        raw.send({ cmd: 'connect', protocolVersion: version, clientId: clientId(i + j), clean: true, keepalive: 60 });
        await raw.next('connack');
        await raw.closed;
      }),
    );
  }
}

describe('log limits', function () {
  it('lets a few lines of each kind through per window and tells how many it left out', function () {
    const limiter = new LogLimiter(2, 1000);
    const seen = [0, 1, 2, 3, 4].map((i) => limiter.allow('refused', i));
    assert.deepStrictEqual(seen, [0, 0, false, false, false]);
    assert.strictEqual(limiter.allow('denied', 5), 0, 'kinds are counted apart');
    assert.strictEqual(limiter.allow('refused', 1000), 3);
  });

  it('keeps a bounded number of keys for once-per-key lines', function () {
    const limiter = new LogLimiter(1e9, 1000, 3);
    for (const key of ['a', 'b', 'c', 'd']) assert.strictEqual(limiter.once('refused', key, 60_000, 0), 0);
    assert.strictEqual(limiter.once('refused', 'd', 60_000, 1), false);
    assert.strictEqual(limiter.once('refused', 'a', 60_000, 2), 0, 'the oldest key was forgotten');
  });

  it('cuts and escapes a device-chosen string', function () {
    assert.strictEqual(printable('a\u0000b\u2028'), 'a\\u0000b\\u2028');
    assert.strictEqual(printable('x'.repeat(100), 10), `${'x'.repeat(10)}…(+90)`);
  });
});

onBothBrokers('ota-gateway events and logs', (startBroker) => {
  let broker, store, gateway;
  const refused = [];

  before(async function () {
    broker = await startBroker(this);
    store = h.makeRepository();
    gateway = await h.startGateway(store.repo, broker.url, { maxEventsPerKind: 10 });
    gateway.on('refused', (e) => refused.push(e));
  });

  after(async function () {
    if (gateway) await gateway.close();
    if (broker) await broker.close();
    if (store) await store.close();
  });

  it('reports refusals of long client ids a few at a time, cut short', async function () {
    await refusedConnects(gateway.port, 200, broker.version);
    assert.strictEqual(gateway.counters.refused, 200);
    assert.ok(refused.length <= 10, `${refused.length} refused events`);
    for (const e of refused) assert.ok(e.clientId.length < 120, `a client id of ${e.clientId.length} characters`);
  });

  it('escapes control characters in a client id', async function () {
    const own = await h.startGateway(store.repo, broker.url);
    const events = [];
    own.on('refused', (e) => events.push(e));
    await refusedConnects(own.port, 1, broker.version, () => 'x\n2026-11-29 ota-gateway: forged line\r');
    await own.close();
    assert.strictEqual(events[0].clientId, 'x\\u000a2026-11-29 ota-gateway: forged line\\u000d');
  });
});

describe('ota-gateway command line logs', function () {
  this.timeout(30000);
  let broker, store, cli, port;

  before(async function () {
    broker = await h.startAedes();
    store = h.makeRepository();
    await store.repo.flush();
    cli = await h.runCli(['--dir', store.dir, '--listen', '127.0.0.1:0', '--upstream', broker.url], { OTA_SECRET: 'x'.repeat(40) });
    port = cli.port;
  });

  after(async function () {
    if (cli) await cli.stop();
    if (broker) await broker.close();
    if (store) await store.close();
  });

  it('writes a bounded log however many long client ids are refused', async function () {
    await refusedConnects(port, 200, 4);
    await h.sleep(200);
    const out = cli.output();
    const refusedLines = out.split('\n').filter((l) => l.includes('refused client id'));
    assert.ok(refusedLines.length <= 20, `${refusedLines.length} lines`);
    assert.ok(out.length < 20 * 1024, `${out.length} bytes of log for 200 refusals`);
  });
});
