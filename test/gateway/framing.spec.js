'use strict';
const assert = require('assert');
const net = require('net');
const { EventEmitter } = require('events');
const mqttPacket = require('mqtt-packet');
const { PacketFramer, PacketTooLarge, PacedReader } = require('../../dist/gateway/framing');

// The gateway's reader, on a real socket pair: whole packets only, sizes checked on the header,
// and no reading while the writes a turn made have nowhere to go (a device that does not read its
// acknowledgements). On the real gateway the kernel's socket buffers (up to 32 MB on loopback
// here) would have to fill first, which takes too long for a spec; this drives the same code.

const publish = (i) => mqttPacket.generate({ cmd: 'publish', topic: 't', payload: String(i), qos: 0, retain: false, dup: false });
const connect = () => mqttPacket.generate({ cmd: 'connect', protocolVersion: 4, clientId: 'c', clean: true, keepalive: 60 });

describe('ota-gateway framing', function () {
  it('hands out whole packets however the bytes are cut', function () {
    const framer = new PacketFramer(1024);
    const bytes = Buffer.concat([connect(), publish(1), publish(2)]);
    const out = [];
    for (const b of bytes) {
      framer.push(Buffer.from([b]));
      for (let p = framer.next(); p; p = framer.next()) out.push(p);
    }
    assert.deepStrictEqual(out.map((p) => p[0] >> 4), [1, 3, 3]);
    assert.strictEqual(Buffer.concat(out).compare(bytes), 0);
  });

  it('refuses a packet over the limit on its header alone, and a first packet that is not a CONNECT', function () {
    const framer = new PacketFramer(1000);
    framer.push(Buffer.from([0x10, 0xe9, 0x07])); // CONNECT, remaining length 1001
    assert.throws(() => framer.next(), PacketTooLarge);
    const other = new PacketFramer(1000);
    other.push(Buffer.from([0x30]));
    assert.throws(() => other.next(), /expected CONNECT/);
  });

  describe('paced reading', function () {
    let server, device, gatewaySide;
    beforeEach(async function () {
      server = net.createServer();
      await new Promise((r) => server.listen(0, '127.0.0.1', r));
      const accepted = new Promise((r) => server.once('connection', r));
      device = net.connect(server.address().port, '127.0.0.1');
      gatewaySide = await accepted;
    });
    afterEach(async function () {
      device.destroy();
      gatewaySide.destroy();
      await new Promise((r) => server.close(r));
    });

    it('stops reading while a write queue is full and carries on when it drains', async function () {
      const full = new EventEmitter();
      let blocked = true;
      const got = [];
      const reader = new PacedReader(gatewaySide, 1024, 4, {
        packet: (bytes) => got.push(bytes),
        error: (err) => assert.fail(err),
        turnStart: () => {},
        turnEnd: () => (blocked ? [full] : []),
      });
      device.write(Buffer.concat([connect(), ...Array.from({ length: 99 }, (_, i) => publish(i))]));
      await new Promise((r) => setTimeout(r, 200));
      assert.strictEqual(got.length, 4, 'read on although the write queue was full');
      blocked = false;
      full.emit('drain');
      await new Promise((r) => setTimeout(r, 200));
      assert.strictEqual(got.length, 100);
      reader.stop();
    });
  });
});
