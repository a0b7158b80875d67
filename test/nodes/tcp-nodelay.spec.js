'use strict';
// The repository turns Nagle's algorithm off on Node-RED's own MQTT connections (core
// mqtt-broker config nodes), so a chunk served through `mqtt in` -> ... -> `mqtt out` is not held
// ~40 ms behind the broker's delayed ACK. These specs read TCP_NODELAY from the kernel
// (getsockopt on a duplicate of the socket's descriptor), not from timings.
const assert = require('assert');
const fs = require('fs');
const { spawn, spawnSync } = require('child_process');
const { helper, nodes } = require('../support/red');
const { tempDir } = require('../support/images');
const mqttNodes = require('@node-red/nodes/core/network/10-mqtt.js');

const PY_GETSOCKOPT = 'import socket\n'
  + 's = socket.socket(fileno=3)\n'
  + 'print(s.getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY))\n'
  + 's.detach()\n';

let python = null;
function havePython() {
  if (python === null) python = spawnSync('python3', ['-c', 'import socket'], { stdio: 'ignore' }).status === 0;
  return python;
}

/**
 * TCP_NODELAY as the kernel has it for this socket: a child process inherits the descriptor as
 * fd 3 and calls getsockopt. Where python3 is missing, falls back to Node's own record of the
 * last setNoDelay() (an internal symbol; the fallback is the fragile path, the kernel the truth).
 */
// A socket handed to a child as stdio stops being read in this process (Node pauses it): when
// the broker later closes, it never sees the end and would keep mocha alive. Destroyed after
// each spec.
const inspected = new Set();

async function tcpNoDelay(socket) {
  if (havePython()) {
    inspected.add(socket);
    const child = spawn('python3', ['-c', PY_GETSOCKOPT], { stdio: ['ignore', 'pipe', 'pipe', socket] });
    let out = '';
    let err = '';
    child.stdout.on('data', (d) => { out += d; });
    child.stderr.on('data', (d) => { err += d; });
    const code = await new Promise((resolve) => child.on('close', resolve));
    assert.strictEqual(code, 0, `getsockopt failed: ${err}`);
    return Number(out.trim()) !== 0;
  }
  const sym = Object.getOwnPropertySymbols(socket).find((s) => s.description === 'kSetNoDelay');
  assert.ok(sym, 'neither python3 nor Node internals available to read TCP_NODELAY');
  return socket[sym] === true;
}

/** Waits (bounded) for a condition the runtime reaches on its own, such as a CONNACK. */
async function until(what, cond, ms = 10000) {
  const deadline = Date.now() + ms;
  while (!cond()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 20));
  }
}

const { startAedes: embeddedBroker } = require('../../scripts/servers');

// No TCP_NODELAY on the broker's side: only the client side of each connection is under test.
const startAedes = () => embeddedBroker({ noDelay: false });

function flow({ port, dir, repo = {}, broker = {}, dynamic = false }) {
  return [
    { id: 'f1', type: 'tab' },
    { id: 'repo', type: 'ota-repository', storageDir: dir, ...repo },
    {
      id: 'b1', type: 'mqtt-broker', broker: '127.0.0.1', port: String(port), clientid: '',
      autoConnect: true, usetls: false, protocolVersion: '4', keepalive: '60', cleansession: true, ...broker,
    },
    dynamic
      ? { id: 'in', z: 'f1', type: 'mqtt in', topic: '', qos: '1', datatype: 'buffer', broker: 'b1', inputs: 1, wires: [['out']] }
      : { id: 'in', z: 'f1', type: 'mqtt in', topic: 'req/#', qos: '1', datatype: 'buffer', broker: 'b1', inputs: 0, wires: [['out']] },
    { id: 'out', z: 'f1', type: 'mqtt out', topic: '', qos: '', retain: '', broker: 'b1', wires: [] },
  ];
}

describe('TCP_NODELAY on Node-RED MQTT connections (ota-repository)', function () {
  this.timeout(20000);
  let aedes;
  let dir;
  const allNodes = [nodes.repository, mqttNodes];

  before(async () => {
    aedes = await startAedes();
    helper.settings({ mqttReconnectTime: 100 });
  });
  after(async () => {
    helper.settings({});
    await aedes.close();
  });
  beforeEach(() => { dir = tempDir(); });
  afterEach(async () => {
    await helper.unload();
    for (const socket of inspected) socket.destroy();
    inspected.clear();
    fs.rmSync(dir, { recursive: true, force: true });
  });

  const connectedStream = async () => {
    const b = helper.getNode('b1');
    await until('the broker connection', () => b.connected && b.client && b.client.stream && !b.client.stream.connecting);
    return b.client.stream;
  };

  it('turns Nagle off on the broker connection of core mqtt in/out nodes', async () => {
    await helper.load(allNodes, flow({ port: aedes.port, dir }));
    assert.strictEqual(await tcpNoDelay(await connectedStream()), true);
  });

  it('leaves the connection as mqtt.js made it when tcpNoDelay is false', async () => {
    // Also shows the kernel check above can fail: mqtt.js alone leaves Nagle on.
    await helper.load(allNodes, flow({ port: aedes.port, dir, repo: { tcpNoDelay: false } }));
    assert.strictEqual(await tcpNoDelay(await connectedStream()), false);
  });

  it('turns Nagle off again on the new socket after the broker drops the connection', async () => {
    await helper.load(allNodes, flow({ port: aedes.port, dir }));
    const first = await connectedStream();
    aedes.dropAll();
    const b = helper.getNode('b1');
    await until('a reconnect on a new socket', () => b.connected && b.client.stream !== first && !b.client.stream.connecting);
    assert.notStrictEqual(b.client.stream, first);
    assert.strictEqual(await tcpNoDelay(b.client.stream), true);
  });

  it('covers a client created after the flows started (autoConnect off, connect action)', async () => {
    await helper.load(allNodes, flow({ port: aedes.port, dir, dynamic: true, broker: { autoConnect: false } }));
    const b = helper.getNode('b1');
    assert.ok(!b.client, 'no client before the connect action');
    helper.getNode('in').receive({ action: 'connect' });
    assert.strictEqual(await tcpNoDelay(await connectedStream()), true);
  });

  it('covers a broker connection made before a redeploy that only replaced the repository', async () => {
    const f = flow({ port: aedes.port, dir });
    await helper.load(allNodes, f);
    const first = await connectedStream();
    const b = helper.getNode('b1');
    // Switch it off by hand, then redeploy only the repository: it must switch it back on.
    first.setNoDelay(false);
    assert.strictEqual(await tcpNoDelay(first), false);
    const changed = f.map((n) => (n.id === 'repo' ? { ...n, name: 'renamed' } : n));
    await helper.setFlows(changed, 'nodes');
    assert.strictEqual(helper.getNode('b1'), b, 'the broker node survived the deploy');
    assert.strictEqual(b.client.stream, first, 'on the same connection');
    assert.strictEqual(await tcpNoDelay(first), true);
  });

  it('leaves no runtime listeners behind across redeploys', async () => {
    const events = helper._events;
    const count = () => events.listenerCount('node-status') + events.listenerCount('flows:started');
    const f = flow({ port: aedes.port, dir });
    await helper.load(allNodes, f);
    await connectedStream();
    const once = count();
    for (let i = 0; i < 5; i++) {
      await helper.setFlows(f.map((n) => (n.id === 'repo' ? { ...n, name: `r${i}` } : n)), 'nodes');
    }
    assert.strictEqual(count(), once);
    await helper.setFlows([{ id: 'f1', type: 'tab' }], 'full');
    assert.strictEqual(count(), once - 2);
  });
});
