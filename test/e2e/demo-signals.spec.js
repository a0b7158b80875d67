'use strict';
// `npm start` as a user runs it, stopped as a service manager or `kill` would stop it: SIGTERM to
// the npm process must stop Node-RED, the broker and the gateway and free their ports.
const assert = require('assert');
const net = require('net');
const { spawn } = require('child_process');
const { freePort } = require('../../scripts/servers');
const { ROOT } = require('../../scripts/node-red-runtime');

function portOpen(port) {
  return new Promise((resolve) => {
    const s = net.connect({ host: '127.0.0.1', port }, () => {
      s.destroy();
      resolve(true);
    });
    s.on('error', () => resolve(false));
  });
}

describe('npm start: public URL and signals', function () {
  this.timeout(120000);

  it('signs download URLs for OTA_PUBLIC_URL, and stops everything and frees the ports on SIGTERM', async () => {
    const [redPort, devicePort] = [await freePort(), await freePort()];
    const child = spawn('npm', ['start', '--', '--no-fleet'], {
      cwd: ROOT,
      env: { ...process.env, NODE_RED_PORT: String(redPort), OTA_MQTT_PORT: String(devicePort), OTA_PUBLIC_URL: 'http://ota.example.test:8080/' },
      stdio: ['ignore', 'pipe', 'pipe'],
      // Its own process group: whatever npm leaves behind can be cleaned up after a failure.
      detached: true,
    });
    let out = '';
    child.stdout.on('data', (d) => (out += d));
    child.stderr.on('data', (d) => (out += d));
    const exited = new Promise((resolve) => child.on('exit', (code, signal) => resolve({ code, signal })));
    try {
      await new Promise((resolve, reject) => {
        const timer = setTimeout(() => reject(new Error(`npm start did not get ready:\n${out}`)), 90000);
        child.stdout.on('data', () => {
          if (out.includes('Press Ctrl-C to stop.')) {
            clearTimeout(timer);
            resolve();
          }
        });
        child.on('exit', () => reject(new Error(`npm start ended early:\n${out}`)));
      });
      assert.ok(await portOpen(redPort), 'Node-RED listens');
      assert.ok(await portOpen(devicePort), 'the gateway listens');
      assert.match(out, /Download URLs: +http:\/\/ota\.example\.test:8080\/ota\/dl\//);
      assert.match(out, /OTA_BIND=0\.0\.0\.0 OTA_PUBLIC_URL=/, 'says how to open the demo to the network');
      const flows = await (await fetch(`http://127.0.0.1:${redPort}/flows`)).json();
      const repo = flows.find((n) => n.type === 'ota-repository');
      assert.strictEqual(repo.publicUrl, 'http://ota.example.test:8080', 'the repository signs URLs for the public address');

      child.kill('SIGTERM');
      await Promise.race([exited, new Promise((_r, reject) => setTimeout(() => reject(new Error('npm start still running 20 s after SIGTERM')), 20000))]);
      assert.strictEqual(await portOpen(redPort), false, 'Node-RED stopped');
      assert.strictEqual(await portOpen(devicePort), false, 'the gateway stopped');
    } finally {
      try {
        process.kill(-child.pid, 'SIGKILL');
      } catch {
        // the group is gone: nothing was left behind
      }
    }
  });
});
