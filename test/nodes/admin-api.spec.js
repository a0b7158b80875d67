'use strict';
const assert = require('assert');
const fs = require('fs');
const path = require('path');
const { helper, nodes } = require('../support/red');
const { imageOf, sha256, tempDir } = require('../support/images');
const progressParser = require('../../dist/nodes/progress-parser.js');

function flow(dir, dir2) {
  return [
    { id: 'f1', type: 'tab' },
    { id: 'repo', type: 'ota-repository', storageDir: dir, maxImageMB: 1 },
    { id: 'repo2', type: 'ota-repository', storageDir: dir2, maxImageMB: 1 },
    { id: 'pp', z: 'f1', type: 'progress-parser', repository: 'repo', wires: [[], []] },
  ];
}

function listFiles(dir) {
  const out = [];
  for (const e of fs.readdirSync(dir, { withFileTypes: true })) {
    const p = path.join(dir, e.name);
    if (e.isDirectory()) out.push(...listFiles(p));
    else out.push(path.relative(dir, p));
  }
  return out.sort();
}

describe('admin HTTP API (/ota on httpAdmin)', function () {
  let dir, dir2, repo, commands;
  const allNodes = [nodes.repository, progressParser];
  const api = () => helper.request();
  const upload = (query, body) => api().post(`/ota/firmware?${query}`).set('Content-Type', 'application/octet-stream').send(body);

  beforeEach(async () => {
    dir = tempDir();
    dir2 = tempDir();
    await helper.load(allNodes, flow(dir, dir2));
    repo = helper.getNode('repo').repo;
    // Stands in for an ota-assign node: it sends the notices for commands from the repository.
    commands = [];
    repo.on('command', (c) => commands.push({ action: c.action, firmware: c.firmware && c.firmware.id, devices: c.devices }));
  });
  afterEach(async () => {
    await helper.unload();
    fs.rmSync(dir, { recursive: true, force: true });
    fs.rmSync(dir2, { recursive: true, force: true });
  });

  describe('firmware', () => {
    it('stores a raw upload with title and version from the query, idempotently', async () => {
      const image = imageOf(300_000, 3);
      const res = await upload('title=blink&version=1.0.0&tag=stable', image).expect(201);
      assert.strictEqual(res.body.title, 'blink');
      assert.strictEqual(res.body.size, image.length);
      assert.strictEqual(res.body.checksums.sha256, sha256(image));
      assert.ok((await repo.firmware.read(res.body)).equals(image));
      const again = await upload('title=blink&version=1.0.0', image).expect(200);
      assert.strictEqual(again.body.id, res.body.id);
      const list = await api().get('/ota/firmware').expect(200);
      assert.deepStrictEqual(list.body.map((r) => r.id), [res.body.id]);
      const one = await api().get(`/ota/firmware/${res.body.id}`).expect(200);
      assert.strictEqual(one.body.version, '1.0.0');
      const missing = await api().get('/ota/firmware/0123456789abcdef').expect(404);
      assert.strictEqual(missing.body.field, 'firmware');
    });

    it('stores a multipart/form-data upload byte for byte', async () => {
      const image = Buffer.concat([Buffer.from('\r\n--\r\n'), imageOf(200_000, 5)]);
      const res = await api().post('/ota/firmware').field('title', 'sensor').field('version', '2.1.0').attach('file', image, 'sensor.bin').expect(201);
      assert.strictEqual(res.body.title, 'sensor');
      assert.strictEqual(res.body.checksums.sha256, sha256(image));
    });

    it('answers 400 naming the field, and writes nothing', async () => {
      const before = listFiles(dir);
      const cases = [
        [upload('title=blink&version=1.0.0', Buffer.alloc(0)), 'body'],
        [upload('title=blink&version=banana', imageOf(100)), 'version'],
        [upload('version=1.0.0', imageOf(100)), 'title'],
        [upload('title=a&title=b&version=1.0.0', imageOf(100)), 'title'],
        [api().post('/ota/firmware').field('title', 'x').field('version', '1.0.0'), 'file'],
        [api().post('/ota/firmware').set('Content-Type', 'multipart/form-data').send('--x--'), 'body'],
        [api().post('/ota/firmware').set('Content-Type', 'multipart/form-data; boundary=zz').send('--zz\r\nContent-Disposition: form-data; name="file"; filename="a"\r\n\r\ntruncated'), 'body'],
      ];
      for (const [req, field] of cases) {
        const res = await req;
        assert.strictEqual(res.status, 400, `${field}: ${JSON.stringify(res.body)}`);
        assert.strictEqual(res.body.field, field);
        assert.ok(res.body.error);
      }
      assert.deepStrictEqual(listFiles(dir).filter((f) => !f.startsWith('.')), before.filter((f) => !f.startsWith('.')));
      assert.deepStrictEqual(repo.firmware.list(), []);
    });

    it('refuses an image over the repository limit with 413', async () => {
      const res = await upload('title=big&version=1.0.0', imageOf(1024 * 1024 + 1));
      assert.strictEqual(res.status, 413);
      assert.strictEqual(res.body.field, 'body');
      assert.deepStrictEqual(repo.firmware.list(), []);
    });

    it('will not delete firmware that is assigned (409), and deletes it once unassigned', async () => {
      const fw = (await upload('title=blink&version=1.0.0', imageOf(1000))).body;
      await api().post('/ota/devices').send({ id: 'd1', dialect: 'tencent', attributes: { product: 'P1' } }).expect(201);
      await api().post('/ota/assignments').send({ firmware: fw.id, devices: ['d1'] }).expect(200);
      const refused = await api().delete(`/ota/firmware/${fw.id}`).expect(409);
      assert.strictEqual(refused.body.field, 'firmware');
      await api().delete('/ota/assignments').send({ devices: ['d1'] }).expect(200);
      assert.deepStrictEqual(commands.at(-1), { action: 'unassign', firmware: fw.id, devices: ['d1'] });
      await api().delete(`/ota/firmware/${fw.id}`).expect(200);
      await api().get(`/ota/firmware/${fw.id}`).expect(404);
    });
  });

  describe('devices', () => {
    it('registers a device, shows a generated token once, and never the token hash', async () => {
      const res = await api().post('/ota/devices').send({ id: 'tb-1', dialect: 'thingsboard', token: true, tags: ['lab'], attributes: {} }).expect(201);
      assert.ok(typeof res.body.token === 'string' && res.body.token.length >= 16);
      assert.strictEqual(res.body.device.hasToken, true);
      assert.strictEqual(res.body.device.tokenHash, undefined);
      assert.strictEqual(repo.devices.byToken(res.body.token).id, 'tb-1');
      const one = await api().get('/ota/devices/tb-1').expect(200);
      assert.strictEqual(one.body.token, undefined);
      assert.strictEqual(one.body.tokenHash, undefined);
      assert.deepStrictEqual(one.body.tags, ['lab']);
      assert.strictEqual(one.body.rollout, null);
      const list = await api().get('/ota/devices').expect(200);
      assert.deepStrictEqual(list.body.map((d) => d.id), ['tb-1']);
      await api().get('/ota/devices/nope').expect(404);
    });

    it('registers a Tencent device with its device secret, and never shows the secret again', async () => {
      const secret = 'VI04Eh4N8VgM29U/dnu9cQ==';
      const res = await api().post('/ota/devices').send({ id: 'dev001', dialect: 'tencent', attributes: { product: 'P1' }, deviceSecret: secret }).expect(201);
      assert.strictEqual(res.body.device.hasDeviceSecret, true);
      for (const body of [res.body, (await api().get('/ota/devices/dev001').expect(200)).body, (await api().get('/ota/devices').expect(200)).body]) {
        const text = JSON.stringify(body);
        assert.ok(!text.includes(secret) && !text.includes('sealedSecret'), text);
      }
      assert.deepStrictEqual(repo.devices.deviceSecret('dev001'), Buffer.from(secret, 'base64'));
      // Registering again without it keeps it.
      await api().post('/ota/devices').send({ id: 'dev001', dialect: 'tencent', attributes: { product: 'P1' }, tags: ['lab'] }).expect(200);
      assert.deepStrictEqual(repo.devices.deviceSecret('dev001'), Buffer.from(secret, 'base64'));
    });

    it('answers 400 naming the field for bad registrations, and writes nothing', async () => {
      const cases = [
        [{ id: 'a/b', dialect: 'tencent' }, 'id'],
        [{ id: 'ok', dialect: 'mqtt' }, 'dialect'],
        [{ id: 'ok', dialect: 'tencent', token: 42 }, 'token'],
        [{ id: 'ok', dialect: 'tencent', tags: [1] }, 'tags'],
        [{ id: 'ok', dialect: 'tencent', attributes: { product: 'a/#' } }, 'attributes.product'],
        [{ id: 'ok', dialect: 'tencent', deviceSecret: 'not base64!' }, 'deviceSecret'],
        [{ id: 'ok', dialect: 'tencent', deviceSecret: Buffer.alloc(65, 1).toString('base64') }, 'deviceSecret'],
        [{ id: 'ok', dialect: 'thingsboard', deviceSecret: 'c2VjcmV0' }, 'deviceSecret'],
      ];
      for (const [body, field] of cases) {
        const res = await api().post('/ota/devices').send(body).expect(400);
        assert.strictEqual(res.body.field, field, JSON.stringify(res.body));
      }
      const noBody = await api().post('/ota/devices').set('Content-Type', 'application/json').send('[1,2]').expect(400);
      assert.strictEqual(noBody.body.field, 'body');
      assert.deepStrictEqual(repo.devices.list(), []);
      assert.ok(!fs.existsSync(path.join(dir, 'devices.json')));
    });
  });

  describe('assignments', () => {
    let fw;
    beforeEach(async () => {
      fw = (await upload('title=blink&version=1.1.0', imageOf(5000))).body;
      for (const [id, dialect, tags] of [['a', 'tencent', ['lab']], ['b', 'thingsboard', ['lab']], ['c', 'biotz', []]]) {
        await api().post('/ota/devices').send({ id, dialect, tags, attributes: dialect === 'tencent' ? { product: 'P1' } : dialect === 'biotz' ? { customer: 'C' } : {} }).expect(201);
      }
    });

    it('assigns by device list and by tag, and has the flow send the notices', async () => {
      const res = await api().post('/ota/assignments').send({ firmware: fw.id, devices: ['a'] }).expect(200);
      assert.strictEqual(res.body.published, true);
      assert.deepStrictEqual(res.body.devices.map((d) => [d.device, d.state, d.attempts]), [['a', 'notified', 1]]);
      const byTag = await api().post('/ota/assignments').send({ firmware: { title: 'blink', version: '1.1.0' }, tag: 'lab' }).expect(200);
      assert.deepStrictEqual(byTag.body.devices.map((d) => d.device), ['a', 'b']);
      assert.deepStrictEqual(commands, [
        { action: 'assign', firmware: fw.id, devices: ['a'] },
        { action: 'assign', firmware: fw.id, devices: ['a', 'b'] },
      ]);
      const dev = await api().get('/ota/devices/b').expect(200);
      assert.deepStrictEqual([dev.body.rollout.state, dev.body.rollout.target.version], ['notified', '1.1.0']);
      const rollout = await api().get('/ota/rollout').expect(200);
      assert.deepStrictEqual([rollout.body.summary.notified, rollout.body.summary.total], [2, 2]);
    });

    it('says so when no ota-assign node would send the notices', async () => {
      repo.removeAllListeners('command');
      const res = await api().post('/ota/assignments').send({ firmware: fw.id, devices: ['a'] }).expect(200);
      assert.strictEqual(res.body.published, false);
      assert.match(res.body.warning, /ota-assign/);
      assert.strictEqual(res.body.devices[0].state, 'assigned');
    });

    it('answers 400 naming the field, and assigns nobody when any part is wrong', async () => {
      const cases = [
        [{ firmware: fw.id, devices: ['a', 'ghost'] }, 'devices'],
        [{ firmware: fw.id, devices: [] }, 'devices'],
        [{ firmware: fw.id, devices: 'a', tag: 'lab' }, 'tag'],
        [{ firmware: fw.id }, 'devices'],
        [{ firmware: fw.id, tag: 'nobody-has-this' }, 'tag'],
        [{ devices: ['a'] }, 'firmware'],
        [{ firmware: '0123456789abcdef', devices: ['a'] }, 'firmware'],
        [{ firmware: { title: 'blink' }, devices: ['a'] }, 'firmware'],
      ];
      for (const [body, field] of cases) {
        const res = await api().post('/ota/assignments').send(body);
        assert.strictEqual(res.status, 400, JSON.stringify(body));
        assert.strictEqual(res.body.field, field, JSON.stringify(body));
      }
      assert.deepStrictEqual(repo.rollout.list(), []);
      assert.deepStrictEqual(commands, []);
    });

    it('unassigns by query string too', async () => {
      await api().post('/ota/assignments').send({ firmware: fw.id, devices: ['a', 'c'] }).expect(200);
      const res = await api().delete('/ota/assignments?devices=a,c').expect(200);
      assert.deepStrictEqual(res.body.devices.map((d) => [d.device, d.state]), [['a', 'idle'], ['c', 'idle']]);
      assert.strictEqual(repo.rollout.isAssigned(fw.id), false);
    });
  });

  describe('several repositories', () => {
    it('registers the routes once, picks a repository with ?repository=, and refuses an unknown one', async () => {
      const stack = helper._httpAdmin._router.stack.filter((l) => l.route && l.route.path === '/ota/firmware');
      assert.strictEqual(stack.length, 2); // GET and POST, once each
      await upload('title=one&version=1.0.0&repository=repo2', imageOf(100)).expect(201);
      assert.strictEqual(helper.getNode('repo2').repo.firmware.list().length, 1);
      assert.strictEqual(repo.firmware.list().length, 0);
      const res = await api().get('/ota/firmware?repository=nope').expect(400);
      assert.strictEqual(res.body.field, 'repository');
    });

    it('removes the routes when the last repository closes', async () => {
      await api().get('/ota/firmware').expect(200);
      const app = helper._httpAdmin;
      await helper.unload();
      assert.strictEqual(app._router.stack.filter((l) => l.route && String(l.route.path).startsWith('/ota')).length, 0);
      await helper.load(allNodes, flow(dir, dir2));
      repo = helper.getNode('repo').repo;
    });
  });
});
