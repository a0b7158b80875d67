'use strict';
const assert = require('assert');
const fs = require('fs');
const net = require('net');
const { helper, nodes } = require('../support/red');
const { tempDir } = require('../support/images');
const h = require('./helpers');
const { closedWithin } = require('./brokers');

const gatewayNode = require('../../dist/nodes/ota-gateway.js');

// The limits as the editor sets them: text fields, blank for the default.

describe('ota-gateway node limits', function () {
  this.timeout(15000);
  let broker, dir, port;

  before(async () => {
    broker = await h.startAedes();
  });
  after(async () => {
    await broker.close();
  });
  afterEach(async () => {
    await helper.unload();
    fs.rmSync(dir, { recursive: true, force: true });
  });

  const load = async (limits) => {
    dir = tempDir();
    port = await h.freePort();
    await helper.load([nodes.repository, gatewayNode], [
      { id: 'f1', type: 'tab' },
      { id: 'repo', type: 'ota-repository', storageDir: dir },
      { id: 'gw', z: 'f1', type: 'ota-gateway', repository: 'repo', host: '127.0.0.1', port, broker: broker.url, namespace: 'ota', identity: 'auto', maxPacketBytes: '', ...limits, wires: [[]] },
    ]);
    return helper.getNode('gw');
  };

  it('applies the limits it is given, blanks taking the defaults', async function () {
    await load({ maxConnectBytes: '256', refusedWindow: '' });
    await h.waitForPort(port);
    const small = h.rawClient(port);
    small.send({ cmd: 'connect', protocolVersion: 4, clientId: 'x'.repeat(100), clean: true, keepalive: 60 });
    assert.strictEqual((await small.next('connack')).returnCode, 5, 'a CONNECT under the limit is read (and refused: unknown device)');
    const big = h.rawClient(port);
    big.send({ cmd: 'connect', protocolVersion: 4, clientId: 'x'.repeat(300), clean: true, keepalive: 60 });
    assert.ok(await closedWithin(big, 3000));
    assert.deepStrictEqual(big.packets, [], 'closed on its header, unanswered');
  });

  it('says which limit is wrong and does not start', async function () {
    await load({ maxPacketBytes: '12abc' });
    const errors = helper.log().getCalls().map((c) => c.args[0]).filter((m) => m && m.id === 'gw' && m.level === 20).map((m) => String(m.msg));
    assert.ok(errors.some((m) => /maxPacketBytes must be a whole number/.test(m)), errors.join('\n'));
    const refused = await new Promise((resolve) => {
      const s = net.connect(port, '127.0.0.1');
      s.once('connect', () => { s.destroy(); resolve(false); });
      s.once('error', () => resolve(true));
    });
    assert.ok(refused, 'it listens although a limit is wrong');
  });
});
