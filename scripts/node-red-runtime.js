'use strict';
// Starts a stock Node-RED 4 in a child process, with this package installed in its user
// directory the way `npm install <path>` does (a link), a flows file, and loopback-only ports.
// Used by `npm start`, the end-to-end tests and the benchmarks, so all three run the real thing.
const { spawn } = require('child_process');
const fs = require('fs');
const path = require('path');

const ROOT = path.join(__dirname, '..');
const RED_JS = require.resolve('node-red/red.js');

function writeSettings(userDir, extra) {
  const settings = {
    uiHost: '127.0.0.1',
    flowFile: 'flows.json',
    credentialSecret: 'mqtt-ota-demo',
    logging: { console: { level: 'info', metrics: false, audit: false } },
    editorTheme: { tours: false, projects: { enabled: false } },
    // This machine reaches no update server; do not ask the user about it.
    telemetry: { enabled: false },
    ...extra,
  };
  const text = `module.exports = ${JSON.stringify(settings, null, 2)};\n`;
  fs.writeFileSync(path.join(userDir, 'settings.js'), text);
}

/** Links the package into userDir/node_modules (what `npm install /path/to/repo` would do). */
function linkPackage(userDir) {
  const modules = path.join(userDir, 'node_modules');
  fs.mkdirSync(modules, { recursive: true });
  const link = path.join(modules, 'node-red-contrib-mqtt-ota');
  fs.rmSync(link, { recursive: true, force: true });
  fs.symlinkSync(ROOT, link, 'dir');
}

/**
 * @param {object} o
 * @param {string} o.userDir
 * @param {object[]} [o.flows]      written to flows.json when given
 * @param {number} [o.port]         0 for any free port
 * @param {object} [o.settings]     extra settings.js entries (JSON-able)
 * @param {boolean} [o.link=true]   link this package into the user directory
 * @param {(line: string) => void} [o.onLog]
 */
async function startNodeRed({ userDir, flows, port = 0, settings = {}, link = true, onLog, env = {} }) {
  fs.mkdirSync(userDir, { recursive: true });
  if (link) linkPackage(userDir);
  writeSettings(userDir, { uiPort: port, ...settings });
  if (flows) fs.writeFileSync(path.join(userDir, 'flows.json'), JSON.stringify(flows, null, 2));
  // NODE_RED_NODE_ARGS: extra node flags for Node-RED, e.g. "--cpu-prof --cpu-prof-dir=/tmp/prof"
  // to profile it under a benchmark (NODE_OPTIONS refuses --cpu-prof).
  const nodeArgs = (process.env.NODE_RED_NODE_ARGS || '').split(' ').filter(Boolean);
  const child = spawn(process.execPath, [...nodeArgs, RED_JS, '--userDir', userDir, '--settings', path.join(userDir, 'settings.js')], {
    cwd: userDir,
    env: { ...process.env, NODE_RED_ENABLE_PROJECTS: 'false', ...env },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  const logs = [];
  let url = null;
  let flowsStarted = false;
  const started = new Promise((resolve, reject) => {
    // Ready once the HTTP server listens and the flows have started, in whichever order Node-RED
    // logs them (a flow with nothing to connect starts before the server line).
    const onLine = (line) => {
      logs.push(line);
      if (onLog) onLog(line);
      const m = /Server now running at (http:\/\/[^\s]+?)\/?$/.exec(line);
      if (m) url = m[1];
      if (/Started flows/.test(line)) flowsStarted = true;
      if (flowsStarted && url) resolve();
    };
    let buffer = '';
    const feed = (data) => {
      buffer += data.toString();
      let i;
      while ((i = buffer.indexOf('\n')) >= 0) {
        onLine(buffer.slice(0, i));
        buffer = buffer.slice(i + 1);
      }
    };
    child.stdout.on('data', feed);
    child.stderr.on('data', feed);
    child.once('exit', (code) => reject(new Error(`Node-RED exited (${code}) before starting:\n${logs.slice(-30).join('\n')}`)));
  });
  const timeout = setTimeout(() => child.kill('SIGTERM'), 60000);
  try {
    await started;
  } finally {
    clearTimeout(timeout);
  }
  const exited = new Promise((resolve) => child.once('exit', resolve));
  return {
    url,
    port: Number(new URL(url).port),
    child,
    logs,
    async stop() {
      if (child.exitCode === null && child.signalCode === null) {
        child.kill('SIGINT');
        const guard = setTimeout(() => child.kill('SIGKILL'), 15000);
        await exited;
        clearTimeout(guard);
      }
    },
  };
}

module.exports = { startNodeRed, linkPackage, ROOT };
