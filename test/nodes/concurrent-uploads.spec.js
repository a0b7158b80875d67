'use strict';
const assert = require('assert');
const fs = require('fs');
const path = require('path');
const { helper, nodes } = require('../support/red');
const { imageOf, sha256, tempDir } = require('../support/images');

// One writer per catalogue record: two uploads of one title and version with different bytes,
// at the same time, both got 201 and left the first one's blob with no record (10 of 10 rounds).

function blobsIn(dir) {
  const root = path.join(dir, 'blobs');
  if (!fs.existsSync(root)) return [];
  return fs.readdirSync(root).flatMap((sub) => fs.readdirSync(path.join(root, sub))).filter((f) => !f.startsWith('.')).sort();
}

describe('concurrent firmware uploads of one version', function () {
  let dir, repo;
  const api = () => helper.request();
  const upload = (version, image) => api().post(`/ota/firmware?title=race&version=${version}`).set('Content-Type', 'application/octet-stream').send(image);

  beforeEach(async () => {
    dir = tempDir();
    await helper.load([nodes.repository, nodes.firmwareStore], [
      { id: 'f1', type: 'tab' },
      { id: 'repo', type: 'ota-repository', storageDir: dir, maxImageMB: 1 },
      { id: 'store', z: 'f1', type: 'firmware-store', repository: 'repo', wires: [['out']] },
      { id: 'out', z: 'f1', type: 'helper' },
    ]);
    repo = helper.getNode('repo').repo;
  });
  afterEach(async () => {
    await helper.unload();
    fs.rmSync(dir, { recursive: true, force: true });
  });

  it('over HTTP give one 201 and one 409, and leave no orphan blob (10 rounds)', async function () {
    for (let round = 0; round < 10; round++) {
      const images = [imageOf(200_000, `a${round}`), imageOf(200_000, `b${round}`)];
      const answers = await Promise.all(images.map((image) => upload(`1.0.${round}`, image)));
      assert.deepStrictEqual(answers.map((r) => r.status).sort(), [201, 409], `round ${round}: ${answers.map((r) => r.text.slice(0, 120)).join(' | ')}`);
      const won = answers.find((r) => r.status === 201).body;
      const lost = answers.find((r) => r.status === 409).body;
      assert.deepStrictEqual([lost.code, lost.field], ['version_conflict', 'version']);
      const winner = images.find((image) => sha256(image) === won.checksums.sha256);
      assert.ok((await repo.firmware.read(repo.firmware.find('race', `1.0.${round}`))).equals(winner));
    }
    assert.deepStrictEqual(blobsIn(dir), repo.firmware.list().map((r) => r.checksums.sha256).sort(), 'one blob per record, none without');
    assert.strictEqual(repo.firmware.list().length, 10);
  });

  it('between the firmware-store node and HTTP give one record, and the other a conflict', async function () {
    const fromFlow = imageOf(100_000, 'flow');
    const fromHttp = imageOf(100_000, 'http');
    const stored = new Promise((resolve) => {
      helper.getNode('out').once('input', (msg) => resolve({ ok: msg }));
      helper.getNode('store').once('call:error', (call) => resolve({ err: call.args[0] }));
    });
    helper.getNode('store').receive({ payload: fromFlow, firmware: { title: 'race', version: '2.0.0' } });
    const [http, flow] = await Promise.all([upload('2.0.0', fromHttp), stored]);
    const httpOutcome = { 201: 'created', 409: 'conflict' }[http.status] ?? http.status;
    const flowOutcome = flow.ok ? (flow.ok.created ? 'created' : 'repeat') : flow.err.code === 'version_conflict' ? 'conflict' : flow.err.code;
    assert.deepStrictEqual([httpOutcome, flowOutcome].sort(), ['conflict', 'created']);
    assert.deepStrictEqual(blobsIn(dir), [repo.firmware.find('race', '2.0.0').checksums.sha256]);
  });
});
