'use strict';
// HTTP load generator, run as a forked child: `connections` keep-alive connections, each in a
// loop downloading a whole image and discarding it. Driven over IPC:
//   {cmd:'run', urls, connections, warmup, seconds, size, pid} -> {ok:'run', result}
// Bounded by the run's duration; a request still running at the end is abandoned.
const http = require('http');
const { performance } = require('perf_hooks');
const { cpuMicros } = require('./proc');
const { percentile } = require('./stats');

function run({ urls, connections, warmup, seconds, size, pid }) {
  const agent = new http.Agent({ keepAlive: true, maxSockets: connections });
  const lat = [];
  let requests = 0;
  let bytes = 0;
  let errors = 0;
  let measuring = false;
  let stopped = false;
  const inflight = new Set();

  const loop = (i) => {
    if (stopped) return;
    const t = performance.now();
    let got = 0;
    const req = http.get(urls[i % urls.length], { agent }, (res) => {
      if (res.statusCode !== 200) errors++;
      res.on('data', (d) => {
        got += d.length;
        if (measuring) bytes += d.length;
      });
      res.on('end', () => {
        inflight.delete(req);
        if (measuring && got === size) {
          requests++;
          lat.push(performance.now() - t);
        } else if (got !== size) errors++;
        loop(i);
      });
    });
    inflight.add(req);
    req.on('error', () => { inflight.delete(req); if (!stopped) { errors++; setTimeout(() => loop(i), 10); } });
  };
  for (let i = 0; i < connections; i++) loop(i);

  return new Promise((resolve) => {
    setTimeout(() => {
      const c0 = { server: cpuMicros(pid), self: process.cpuUsage() };
      const t0 = performance.now();
      measuring = true;
      setTimeout(() => {
        measuring = false;
        const secs = (performance.now() - t0) / 1000;
        const c1 = { server: cpuMicros(pid), self: process.cpuUsage() };
        stopped = true;
        for (const r of inflight) r.destroy();
        agent.destroy();
        const mib = bytes / 1048576;
        resolve({
          requests, seconds: secs, requestsPerSec: requests / secs, mibPerSec: mib / secs,
          p50ms: percentile(lat, 50), p99ms: percentile(lat, 99),
          cpuUsPerMiB: { server: (c1.server - c0.server) / mib, loadgen: ((c1.self.user + c1.self.system) - (c0.self.user + c0.self.system)) / mib },
          errors,
        });
      }, seconds * 1000);
    }, warmup * 1000);
  });
}

process.on('message', async (m) => {
  try {
    if (m.cmd === 'run') process.send({ ok: 'run', result: await run(m) });
    else if (m.cmd === 'close') process.exit(0);
  } catch (err) {
    process.send({ error: String(err && err.stack || err) });
  }
});
process.on('disconnect', () => process.exit(0));
