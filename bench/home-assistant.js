#!/usr/bin/env node
'use strict';
// The Home Assistant bridge at fleet scale: a real repository with 10,000 registered devices and
// HomeAssistantBridge.flush() driven tick by tick (the clock is the bridge's own `now`, so the
// figures are CPU per tick, not waiting). Prints one JSON line:
//   initial        messages and ticks to publish every config, availability and state, CPU per tick
//   sweep          ticks and worst tick CPU to re-check every unchanged device (0 messages expected)
//   storm          messages published per tick while every device reports 10 percents a second
//
//   npm run build && node bench/home-assistant.js [--devices 10000]
const fs = require('fs');
const os = require('os');
const path = require('path');
const { OtaRepository } = require('../dist/core/repository');
const { trackerFor } = require('../dist/core/device-updates/tracker');
const { HomeAssistantBridge, haSettings, DEFAULT_LIMITS } = require('../dist/core/homeassistant');

const arg = process.argv.indexOf('--devices');
const N = arg > 0 ? Number(process.argv[arg + 1]) : 10000;
const at = () => new Date().toISOString();
const ms = (t) => Number(process.hrtime.bigint() - t) / 1e6;

async function main() {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'ha-bench-'));
  try {
    const repo = new OtaRepository({ dir });
    await repo.firmware.store({ image: Buffer.alloc(1000, 1), title: 'app', version: '1.1.0' });
    await Promise.all(Array.from({ length: N }, (_, i) => repo.devices.register({ id: `d-${i}`, dialect: 'thingsboard' })));
    const tracker = trackerFor(repo);
    for (let i = 0; i < N; i++) tracker.record({ device: `d-${i}`, dialect: 'thingsboard', state: 'notified', version: '1.0.0', title: 'app', at: at() });
    let sent = 0;
    let now = 0;
    const bridge = new HomeAssistantBridge(repo, haSettings({}), { publish: () => (sent++, true), install() {}, log() {}, now: () => now }, { tickMs: 1e9, sweepMs: 1e9 });
    bridge.start();
    const run = () => {
      let ticks = 0;
      let worst = 0;
      let total = 0;
      while (bridge.pending) {
        const t = process.hrtime.bigint();
        now += DEFAULT_LIMITS.tickMs;
        bridge.flush();
        const d = ms(t);
        ticks++;
        total += d;
        worst = Math.max(worst, d);
      }
      return { ticks, meanMs: +(total / ticks).toFixed(2), worstMs: +worst.toFixed(1) };
    };
    const initial = { messages: sent, ...run() };
    initial.messages = sent - initial.messages;
    const before = sent;
    bridge.sweepNow();
    const sweep = { ...run(), messages: sent - before };
    tracker.assign(repo.firmware.find('app', '1.1.0'), repo.devices.list());
    run();
    const s0 = sent;
    let perTickMax = 0;
    for (let k = 0; k < 10; k++) {
      for (let i = 0; i < N; i++) tracker.record({ device: `d-${i}`, dialect: 'thingsboard', state: 'downloading', percent: k * 10, at: at() });
      const s = sent;
      now += 100;
      bridge.flush();
      perTickMax = Math.max(perTickMax, sent - s);
    }
    const storm = { events: N * 10, messagesInThatSecond: sent - s0, perTickMax, limitPerTick: DEFAULT_LIMITS.perTick };
    bridge.stop();
    await repo.flush();
    console.log(JSON.stringify({ devices: N, initial, sweep, storm }));
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
}

main().catch((err) => {
  console.error(err);
  process.exit(1);
});
