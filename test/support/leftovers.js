'use strict';
// Root hook (.mocharc.json `require`): after the last spec, says what the specs left running and
// ends it. A spec that fails half-way can leave a Node-RED, a broker or a simulated device behind;
// mocha then never exits and CI waits until its own limit (it did: 90 minutes for a 5-minute run).
// `exit: true` in .mocharc.json ends mocha itself; this names the leak so it can be fixed, and
// kills the child processes a spec started (they would keep CI's output pipe open after mocha).
const fs = require('fs');

/** Child processes of this process still alive: [{ pid, command }] (Linux /proc; [] elsewhere). */
function children() {
  let entries;
  try {
    entries = fs.readdirSync('/proc').filter((d) => /^\d+$/.test(d));
  } catch {
    return [];
  }
  const found = [];
  for (const pid of entries) {
    try {
      const stat = fs.readFileSync(`/proc/${pid}/stat`, 'utf8');
      // "pid (comm) state ppid ...": comm may hold spaces and parentheses, so split after the last ')'.
      const ppid = Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[1]);
      if (ppid !== process.pid) continue;
      const command = fs.readFileSync(`/proc/${pid}/cmdline`, 'utf8').split('\0').join(' ').trim().slice(0, 200);
      found.push({ pid: Number(pid), command });
    } catch {
      /* gone meanwhile */
    }
  }
  return found;
}

// What every mocha run holds open at the end and is no leak.
const EXPECTED = new Set(['TTYWrap', 'PipeWrap', 'FSReqCallback', 'Timeout', 'SignalWrap', 'ProcessWrap', 'FSEventWrap']);

exports.mochaHooks = {
  afterAll() {
    const left = children();
    for (const c of left) {
      console.log(`      (left running by a spec, now killed: pid ${c.pid} ${c.command})`);
      try {
        process.kill(c.pid, 'SIGKILL');
      } catch {
        /* already exited */
      }
    }
    const handles = process.getActiveResourcesInfo().filter((r) => !EXPECTED.has(r));
    if (handles.length) {
      const counts = {};
      for (const h of handles) counts[h] = (counts[h] ?? 0) + 1;
      console.log(`      (open at the end of the run: ${Object.entries(counts).map(([k, n]) => `${n} ${k}`).join(', ')})`);
    }
  },
};

module.exports.children = children;
