'use strict';
// Several Node-REDs serving one fleet: chunk-servers with a share group subscribe as
// $share/{group}/..., and the broker gives each request to one of them. On mosquitto (aedes has
// no shared subscriptions). Two broker connections stand for two Node-RED instances.
const assert = require('assert');
const fs = require('fs');
const { helper, image, NODES } = require('../fixtures/setup');
const { repository, broker } = require('../fixtures/flows');
const { startMosquitto, haveMosquitto } = require('../../scripts/servers');
const devices = require('../fixtures/devices');
const { tempDir } = require('../support/images');

const REQUEST = /^ota\/d1\/v2\/fw\/request\/(\d+)\/chunk\/0$/;

describe('chunk-server: a shared subscription spreads requests over instances (mosquitto)', function () {
  this.timeout(30000);
  let mosquitto;
  let dir;
  before(async function () {
    if (!haveMosquitto()) {
      console.log('      (skipped: mosquitto is not installed)');
      this.skip();
    }
    mosquitto = await startMosquitto();
  });
  after(async () => mosquitto?.close());
  beforeEach(() => (dir = tempDir('ota-share-')));
  afterEach(async () => {
    await helper.unload();
    fs.rmSync(dir, { recursive: true, force: true });
  });

  /** Counts, per broker connection, the chunk requests it was given. */
  function countRequests(ids) {
    const counts = Object.fromEntries(ids.map((id) => [id, 0]));
    for (const id of ids) {
      helper.getNode(id).client.on('message', (topic) => {
        if (REQUEST.test(topic)) counts[id] += 1;
      });
    }
    return counts;
  }

  async function fleet() {
    const repo = helper.getNode('repo').repo;
    const fw = (await repo.firmware.store({ image: image(5000), title: 'app', version: '1.0.0' })).record;
    await repo.devices.register({ id: 'd1', dialect: 'thingsboard' });
    repo.rollout.assign('d1', 'thingsboard', fw);
    const client = await devices.connect(mosquitto.url, 'raw');
    const replies = new Map();
    client.on('message', (topic) => {
      const id = /response\/(\d+)\/chunk/.exec(topic)?.[1];
      if (id) replies.set(id, (replies.get(id) ?? 0) + 1);
    });
    await client.subscribeAsync('ota/d1/v2/fw/response/#', { qos: 1 });
    return { client, replies };
  }

  /** Sends `n` requests, one at a time, each waiting for its reply. */
  async function ask(client, replies, from, n) {
    for (let i = from; i < from + n; i++) {
      await client.publishAsync(`ota/d1/v2/fw/request/${i}/chunk/0`, '100', { qos: 1 });
      const until = Date.now() + 5000;
      while (!replies.has(String(i))) {
        if (Date.now() > until) assert.fail(`no reply to request ${i}`);
        await new Promise((r) => setTimeout(r, 2));
      }
    }
  }

  async function spread(ids) {
    const counts = countRequests(ids);
    const { client, replies } = await fleet();
    // Until every instance has subscribed: each request is answered by someone meanwhile.
    let sent = 0;
    while (ids.some((id) => counts[id] === 0) && sent < 200) {
      await ask(client, replies, sent, 1);
      sent += 1;
    }
    for (const id of ids) counts[id] = 0;
    await ask(client, replies, 1000, 100);
    await new Promise((r) => setTimeout(r, 200));
    await client.endAsync();
    for (const [id, n] of replies) assert.strictEqual(n, 1, `request ${id} answered ${n} times`);
    return counts;
  }

  it('two chunk-servers replying directly with one share group each serve about half of the requests, each once', async () => {
    await helper.load(NODES, [
      repository(dir),
      { ...broker(mosquitto.port), id: 'b1' },
      { ...broker(mosquitto.port), id: 'b2' },
      ...['1', '2'].map((n) => ({ id: `c${n}`, type: 'chunk-server', repository: 'repo', dialect: 'thingsboard', prefix: 'ota/{device}/', broker: `b${n}`, shareGroup: 'ota', maxChunkSize: 65536, cacheMB: 16, wires: [[], []] })),
    ], { repo: { secret: 'a-test-secret-of-at-least-32-characters!' } });
    const counts = await spread(['b1', 'b2']);
    assert.strictEqual(counts.b1 + counts.b2, 100, JSON.stringify(counts));
    assert.ok(counts.b1 >= 40 && counts.b2 >= 40, `spread: ${JSON.stringify(counts)}`);
  });

  it("spreads what the examples' mqtt in receives when its topic is a $share filter", async () => {
    const wired = (n) => [
      { ...broker(mosquitto.port), id: `b${n}` },
      { id: `in${n}`, type: 'mqtt in', broker: `b${n}`, topic: '$share/ota/ota/+/v2/fw/request/+/chunk/+', qos: '1', datatype: 'buffer', nl: false, rap: true, rh: 0, inputs: 0, wires: [[`c${n}`]] },
      { id: `c${n}`, type: 'chunk-server', repository: 'repo', dialect: 'thingsboard', prefix: 'ota/{device}/', maxChunkSize: 65536, cacheMB: 16, wires: [[`out${n}`], []] },
      { id: `out${n}`, type: 'mqtt out', broker: `b${n}`, topic: '', qos: '', retain: '', wires: [] },
    ];
    await helper.load(NODES, [repository(dir), ...wired('1'), ...wired('2')], { repo: { secret: 'a-test-secret-of-at-least-32-characters!' } });
    const counts = await spread(['b1', 'b2']);
    assert.ok(counts.b1 >= 40 && counts.b2 >= 40, `spread: ${JSON.stringify(counts)}`);
  });

  it('refuses a share group MQTT would misread, and subscribes to nothing', async () => {
    await helper.load(NODES, [
      repository(dir),
      { ...broker(mosquitto.port), id: 'b1' },
      { id: 'c1', type: 'chunk-server', repository: 'repo', dialect: 'thingsboard', prefix: 'ota/{device}/', broker: 'b1', shareGroup: 'a/#', wires: [[], []] },
    ], { repo: { secret: 'a-test-secret-of-at-least-32-characters!' } });
    const c1 = helper.getNode('c1');
    assert.ok(c1.error.calledWithMatch(/Share group "a\/#"/) || c1.error.args.some((a) => /badShareGroup|Share group/.test(String(a[0]))), 'an error names the group');
    assert.strictEqual(c1.brokerConn, undefined, 'not linked to the broker');
  });
});
