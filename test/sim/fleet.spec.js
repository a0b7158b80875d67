'use strict';
const assert = require('assert');
const { PassThrough } = require('stream');
const { startFleet, Fleet, renderBars, ProgressDisplay, encodePatch } = require('../../dist/sim');
const { startBroker, serverClient, makeImage, sha256, startFileServer } = require('./helpers');

describe('sim: fleet', function () {
  let broker;

  before(async () => { broker = await startBroker(); });
  after(async () => { await broker.close(); });

  it('refuses bad options with a clear message', () => {
    assert.throws(() => new Fleet({ broker: broker.url, dialect: 'lora' }), /unknown dialect lora/);
    assert.throws(() => new Fleet({ broker: 'localhost:1883', dialect: 'tago' }), /broker must be a URL/);
    assert.throws(() => new Fleet({ broker: broker.url, dialect: 'tago', count: -1 }), /count/);
    assert.throws(() => new Fleet({ broker: broker.url, dialect: 'tago', count: 2, idPattern: 'same' }), /ids repeat/);
    assert.throws(() => new Fleet({ broker: broker.url, dialect: 'tago', faults: { dropAt: 2 } }), /dropAt/);
    assert.throws(() => new Fleet({ broker: broker.url, dialect: 'tago', concurrency: 0 }), /concurrency/);
  });

  it('names devices and tokens from patterns, and injects faults only into the chosen devices', () => {
    const fleet = new Fleet({ broker: broker.url, dialect: 'thingsboard', count: 3, idPattern: 'tb-{n}', tokenPattern: 'tok-{id}', startIndex: 7, faults: { dropAt: 0.5 }, faultDevices: [8] });
    assert.deepStrictEqual(fleet.devices.map((d) => [d.id, d.token]), [['tb-7', 'tok-tb-7'], ['tb-8', 'tok-tb-8'], ['tb-9', 'tok-tb-9']]);
    assert.deepStrictEqual(fleet.devices.map((d) => d.dropDue(1, 2)), [false, true, false]);
  });

  it('picks the devices that fail every update: a share spread over each group, or by number', () => {
    const fleet = new Fleet({ broker: broker.url, groups: [{ dialect: 'tencent', count: 20, failRate: 0.15 }, { dialect: 'tago', count: 4, failDevices: [2] }] });
    const broken = fleet.devices.filter((d) => d.broken).map((d) => d.id);
    assert.deepStrictEqual(broken, ['tencent-7', 'tencent-14', 'tencent-20', 'tago-2']);
    const d = fleet.devices.find((x) => x.id === 'tago-2');
    assert.deepStrictEqual([d.corruptDue(0), d.corruptDue(0), d.takeFault('corrupt'), d.takeFault('corrupt')], [true, true, true, true], 'every attempt, not once');
    assert.throws(() => new Fleet({ broker: broker.url, dialect: 'tago', failRate: 1.5 }), /failRate/);
  });

  it('rejects when the broker cannot be reached, within the connect timeout', async () => {
    await assert.rejects(startFleet({ broker: 'mqtt://127.0.0.1:1', dialect: 'tago', reconnectMs: 100 }, 500), /no connection/);
  });

  it('runs groups of several dialects in one fleet and summarises them per group', async () => {
    const image = makeImage(20_000, 4);
    const files = await startFileServer(image);
    const srv = await serverClient(broker.url);
    try {
      await srv.publishAsync('biotz/1/0/c/biotz-1/subscribe/firmware/update', JSON.stringify({ 'firmware-name': 'v2', 'download-url': files.url }), { retain: true, qos: 1 });
      await srv.publishAsync('a/test/u/1.0', Buffer.concat([encodePatch(5, true), image]), { retain: true, qos: 1 });
      const fleet = await startFleet({
        broker: broker.url, customer: 'c', reconnectMs: 50,
        groups: [{ dialect: 'biotz', version: 'v1' }, { dialect: 'sming', count: 2, version: '1.0.0' }],
      });
      const lines = [];
      fleet.on('progress', (p) => lines.push(p));
      await fleet.waitAllUpdated(15_000);
      assert.ok(fleet.devices.every((d) => d.sha256 === sha256(image)));
      assert.deepStrictEqual(fleet.devices.map((d) => d.id), ['biotz-1', 'sming-1', 'sming-2']);
      const summary = fleet.summary();
      assert.deepStrictEqual(summary.map((g) => [g.dialect, g.count, g.updated, g.percent]), [['biotz', 1, 1, 100], ['sming', 2, 2, 100]]);
      assert.ok(lines.length > 0);
      await fleet.stop();
    } finally {
      await srv.publishAsync('biotz/1/0/c/biotz-1/subscribe/firmware/update', '', { retain: true, qos: 1 });
      await srv.publishAsync('a/test/u/1.0', '', { retain: true, qos: 1 });
      await srv.endAsync();
      await files.close();
    }
  });

  it('draws one bar per group: in place on a TTY, plain changed lines otherwise', () => {
    const summary = [
      { group: 0, dialect: 'tago', count: 4, states: { downloading: 2, updated: 2 }, percent: 75, updated: 2, failed: 0 },
      { group: 1, dialect: 'thingsboard', count: 1, states: { failed: 1 }, percent: 10, updated: 0, failed: 1 },
    ];
    const [tago, tb] = renderBars(summary, 20);
    assert.match(tago, /^tago\s+\[#{15}-{5}\]\s+75%\s+2\/4 updated\s+\(downloading 2, updated 2\)$/);
    assert.match(tb, /failed 1/);

    const fake = { summary: () => summary };
    const plain = new PassThrough();
    let out = '';
    plain.on('data', (c) => { out += c; });
    const display = new ProgressDisplay(fake, plain, 1000);
    display.draw();
    display.draw(); // unchanged: nothing more
    assert.strictEqual(out.split('\n').filter(Boolean).length, 2);
    assert.ok(!out.includes('\x1b['));

    const tty = new PassThrough();
    tty.isTTY = true;
    let screen = '';
    tty.on('data', (c) => { screen += c; });
    const live = new ProgressDisplay(fake, tty, 1000);
    live.draw();
    live.draw();
    assert.ok(screen.includes('\x1b[2A\x1b[0J'), 'moves up over the two bars to redraw them');
  });
});
