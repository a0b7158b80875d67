'use strict';
// The "Register firmware" example, deployed as a user would import it, in a real Node-RED.
const assert = require('assert');
const fs = require('fs');
const path = require('path');
const { startNodeRed, ROOT } = require('../../scripts/node-red-runtime');
const { imageOf, espImage, sha256, tempDir } = require('../support/images');

describe('example: Register firmware', function () {
  this.timeout(60000);
  let dir, red;
  before(async () => {
    dir = tempDir('mqtt-ota-example-');
    const flows = JSON.parse(fs.readFileSync(path.join(ROOT, 'examples', 'Register firmware.json'), 'utf8'));
    red = await startNodeRed({ userDir: dir, flows });
  });
  after(async () => {
    if (red) await red.stop();
    fs.rmSync(dir, { recursive: true, force: true });
  });

  // The example used to serve POST /firmware on httpNode, where Node-RED asks for no credentials
  // unless httpNodeAuth is set: anyone reaching the server stored an image. Uploads now go to the
  // admin API, which adminAuth guards (admin-api-auth.spec covers the guard).
  const upload = (query, body) =>
    fetch(`${red.url}/ota/firmware?${query}`, { method: 'POST', headers: { 'Content-Type': 'application/octet-stream' }, body });

  it('deploys without errors', () => {
    assert.deepStrictEqual(red.logs.filter((l) => /\[error\]/.test(l)), []);
  });

  it('opens no upload route on the public HTTP server', async () => {
    const res = await fetch(`${red.url}/firmware?title=blink&version=9.9.9`, { method: 'POST', headers: { 'Content-Type': 'application/octet-stream' }, body: imageOf(100) });
    assert.strictEqual(res.status, 404);
    const list = await (await fetch(`${red.url}/ota/firmware`)).json();
    assert.ok(!list.some((r) => r.version === '9.9.9'), 'nothing stored');
  });

  it('registers an image uploaded to the admin API and answers with its record', async () => {
    const image = imageOf(300000, 5);
    const res = await upload('title=blink&version=1.4.0', image);
    assert.strictEqual(res.status, 201);
    const record = await res.json();
    assert.strictEqual(record.title, 'blink');
    assert.strictEqual(record.size, image.length);
    assert.strictEqual(record.checksums.sha256, sha256(image));
    const blob = path.join(dir, 'mqtt-ota', 'blobs', record.checksums.sha256.slice(0, 2), record.checksums.sha256);
    assert.deepStrictEqual(fs.readFileSync(blob), image);
  });

  it('reads title and version from an uploaded ESP-IDF image', async () => {
    const res = await upload('', espImage({ projectName: 'door-sensor', version: '0.3.0' }));
    assert.strictEqual(res.status, 201);
    assert.strictEqual((await res.json()).title, 'door-sensor');
  });

  it('answers 400 with the reason for a bad version, and keeps serving', async () => {
    const bad = await upload('title=blink&version=latest', imageOf(10));
    assert.strictEqual(bad.status, 400);
    assert.match((await bad.json()).error, /not a semantic version/);
    const good = await upload('title=blink&version=1.4.1', imageOf(10));
    assert.strictEqual(good.status, 201);
  });
});
