'use strict';
// Process helpers for the benchmarks: CPU time and memory of other processes read from /proc,
// free loopback ports, and children that report readiness with one JSON line.
const fs = require('fs');
const { spawn } = require('child_process');

/**
 * CPU time a process (all its threads) has used, in microseconds. Sums the scheduler's
 * nanosecond counters of every thread (/proc/<pid>/task/<tid>/schedstat); falls back to the
 * 10 ms ticks of /proc/<pid>/stat. Returns NaN when the process is gone.
 */
function cpuMicros(pid) {
  try {
    let ns = 0;
    for (const tid of fs.readdirSync(`/proc/${pid}/task`)) {
      ns += Number(fs.readFileSync(`/proc/${pid}/task/${tid}/schedstat`, 'utf8').split(' ')[0]);
    }
    return ns / 1000;
  } catch {
    try {
      const stat = fs.readFileSync(`/proc/${pid}/stat`, 'utf8');
      const f = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
      return (Number(f[11]) + Number(f[12])) * 10000; // utime + stime at 100 ticks/s
    } catch {
      return NaN;
    }
  }
}

/** Resident memory of a process in bytes (VmRSS), or NaN. */
function rssBytes(pid) {
  try {
    const m = /VmRSS:\s+(\d+) kB/.exec(fs.readFileSync(`/proc/${pid}/status`, 'utf8'));
    return m ? Number(m[1]) * 1024 : NaN;
  } catch {
    return NaN;
  }
}

/** A free TCP port on 127.0.0.1 (for servers that cannot listen on port 0 and report it). */

/**
 * Spawns `node script args` and resolves with {child, info} once it prints a JSON line on stdout
 * (its "ready" message); rejects if it exits first or takes longer than `ms`.
 */
function spawnReady(script, args = [], { ms = 30000, env = {} } = {}) {
  const child = spawn(process.execPath, [script, ...args], { stdio: ['ignore', 'pipe', 'inherit'], env: { ...process.env, ...env } });
  return new Promise((resolve, reject) => {
    let buf = '';
    const timer = setTimeout(() => { child.kill('SIGKILL'); reject(new Error(`${script} not ready after ${ms} ms`)); }, ms);
    const onExit = (code) => { clearTimeout(timer); reject(new Error(`${script} exited (${code}) before it was ready`)); };
    child.once('exit', onExit);
    child.stdout.on('data', (d) => {
      buf += d;
      const i = buf.indexOf('\n');
      if (i < 0) return;
      clearTimeout(timer);
      child.removeListener('exit', onExit);
      child.stdout.removeAllListeners('data');
      child.stdout.resume();
      try { resolve({ child, info: JSON.parse(buf.slice(0, i)) }); } catch (e) { reject(e); }
    });
  });
}

/** Stops a child we started: SIGTERM, then SIGKILL after `ms`. */
function stopChild(child, ms = 5000) {
  if (!child || child.exitCode !== null || child.signalCode !== null) return Promise.resolve();
  return new Promise((resolve) => {
    const guard = setTimeout(() => child.kill('SIGKILL'), ms);
    child.once('exit', () => { clearTimeout(guard); resolve(); });
    child.kill('SIGTERM');
  });
}

function machine() {
  const cpuinfo = fs.readFileSync('/proc/cpuinfo', 'utf8');
  const model = (/model name\s*:\s*(.*)/.exec(cpuinfo) || [])[1] || 'unknown';
  const os = require('os');
  return { nproc: os.cpus().length, model, memGiB: +(os.totalmem() / 2 ** 30).toFixed(1), node: process.version, kernel: os.release(), loadavg: os.loadavg().map((x) => +x.toFixed(2)) };
}

const { freePort } = require('../../scripts/servers');

module.exports = { cpuMicros, rssBytes, freePort, spawnReady, stopChild, machine };
