'use strict';
const assert = require('assert');
const path = require('path');
const { spawn } = require('child_process');
const { startBroker, serverClient, makeImage, sha256, startFileServer } = require('./helpers');

const BIN = path.join(__dirname, '..', '..', 'bin', 'ota-sim.js');

function run(args) {
  return new Promise((resolve) => {
    const child = spawn(process.execPath, [BIN, ...args], { stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (c) => { stdout += c; });
    child.stderr.on('data', (c) => { stderr += c; });
    child.on('close', (code) => resolve({ code, stdout, stderr }));
  });
}

describe('sim: the ota-sim command', function () {
  let broker;
  let files;
  let srv;
  const image = makeImage(12_000, 8);

  before(async () => {
    broker = await startBroker();
    files = await startFileServer(image);
    srv = await serverClient(broker.url);
  });
  after(async () => {
    await srv.endAsync();
    await files.close();
    await broker.close();
  });

  it('updates a fleet and exits 0 with --exit-when-updated, one JSON line per state change', async () => {
    for (const id of ['cli-1', 'cli-2']) {
      await srv.publishAsync(`biotz/1/0/cust/${id}/subscribe/firmware/update`, JSON.stringify({ 'firmware-name': 'v9', 'download-url': files.url }), { retain: true, qos: 1 });
    }
    const { code, stdout } = await run(['--broker', broker.url, '--groups', 'biotz:2', '--id', 'cli-{n}', '--customer', 'cust', '--exit-when-updated', '--timeout', '15', '--json']);
    assert.strictEqual(code, 0);
    const events = stdout.trim().split('\n').map((l) => JSON.parse(l));
    const updated = events.filter((e) => e.state === 'updated');
    assert.deepStrictEqual(updated.map((e) => e.device).sort(), ['cli-1', 'cli-2']);
    assert.ok(updated.every((e) => e.sha256 === sha256(image) && e.version === 'v9'));
  });

  it('prints plain progress lines when stdout is not a terminal', async () => {
    await srv.publishAsync('biotz/1/0/cust/plain-1/subscribe/firmware/update', JSON.stringify({ 'firmware-name': 'v9', 'download-url': files.url }), { retain: true, qos: 1 });
    const { code, stdout } = await run(['--broker', broker.url, '--dialect', 'biotz', '--id', 'plain-{n}', '--customer', 'cust', '--exit-when-updated', '--timeout', '15']);
    assert.strictEqual(code, 0);
    assert.ok(!stdout.includes('\x1b['));
    assert.match(stdout, /biotz\s+\[#+\] 100%\s+1\/1 updated/);
  });

  it('exits 2 with a clear message on bad options', async () => {
    const { code, stderr } = await run(['--dialect', 'lora']);
    assert.strictEqual(code, 2);
    assert.match(stderr, /unknown dialect lora/);
    const bad = await run(['--broker', 'mqtt://127.0.0.1:1', '--dialect', 'thingsboard', '--protocol-version', '3']);
    assert.strictEqual(bad.code, 2);
    assert.match(bad.stderr, /protocol-version must be/);
    const six = await run(['--broker', 'mqtt://127.0.0.1:1', '--dialect', 'thingsboard', '--protocol-version', '6']);
    assert.strictEqual(six.code, 2);
    assert.match(six.stderr, /protocolVersion must be 4 \(MQTT 3\.1\.1\) or 5/);
  });
});
