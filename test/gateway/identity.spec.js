'use strict';
const assert = require('assert');
const mqttPacket = require('mqtt-packet');
const h = require('./helpers');
const { onBothBrokers, gatewayRig, closedWithin } = require('./brokers');

// Who a device is on the broker. Found: upstream client ids were `{deviceId}:{clientId}` and
// device ids may contain `:`, so device `site` with client id `42:site:42` took over device
// `site:42`'s session; and an empty client id with a persistent session was accepted.

onBothBrokers('ota-gateway identity', (startBroker) => {
  const rig = gatewayRig(startBroker, {
    devices: [
      { id: 'site', dialect: 'thingsboard', token: 'site-token' },
      { id: 'site:42', dialect: 'thingsboard', token: 'site42-token' },
    ],
  });
  const { device } = rig;
  /** The device gets a message the server publishes in its namespace. */
  const reaches = async (client, deviceId) => {
    const got = new Promise((resolve) => client.once('message', (topic, payload) => resolve(payload.toString())));
    await rig.server.publishAsync(`ota/${deviceId}/ping`, 'hello', { qos: 1 });
    assert.strictEqual(await got, 'hello');
  };

  it('keeps two devices apart whatever client ids they choose (no session takeover through `:` in ids)', async function () {
    const victim = await device({ username: 'site42-token', clientId: 'site:42', clean: false });
    await victim.subscribeAsync('ping', { qos: 1 });
    let dropped = false;
    victim.on('close', () => (dropped = true));
    const attacker = await device({ username: 'site-token', clientId: '42:site:42', clean: false });
    await attacker.subscribeAsync('ping', { qos: 1 });
    await reaches(attacker, 'site');
    await h.sleep(100);
    assert.strictEqual(dropped, false, "the other device's connection was taken over");
    await reaches(victim, 'site:42');
  });

  it('refuses an empty client id with a persistent session (3.1.1: CONNACK 2, MQTT 5: 0x85)', async function () {
    const raw = h.rawClient(rig.gateway.port, rig.broker.version);
    // mqtt-packet will not write it (nor will mqtt.js): clear the clean-session flag by hand.
    const bytes = mqttPacket.generate({ cmd: 'connect', protocolVersion: rig.broker.version, clientId: '', username: 'site-token', clean: true, keepalive: 60 }, { protocolVersion: rig.broker.version });
    const flags = 2 + 2 + 4 + 1; // fixed header, protocol name "MQTT", level
    assert.strictEqual(bytes[flags] & 0x02, 0x02);
    bytes[flags] &= ~0x02;
    raw.write(bytes);
    const connack = await raw.next('connack');
    assert.strictEqual(rig.v5 ? connack.reasonCode : connack.returnCode, rig.v5 ? 0x85 : 2);
    assert.ok(await closedWithin(raw, 3000));
  });

  it('still gives an empty client id with a clean session one of its own', async function () {
    const raw = h.rawClient(rig.gateway.port, rig.broker.version);
    raw.send({ cmd: 'connect', protocolVersion: rig.broker.version, clientId: '', username: 'site-token', clean: true, keepalive: 60 });
    const connack = await raw.next('connack');
    assert.strictEqual(rig.v5 ? connack.reasonCode : connack.returnCode, 0);
    await raw.end();
  });

  it('passes a client id of 10,000 characters as an id the broker takes', async function () {
    const long = await device({ username: 'site-token', clientId: 'c'.repeat(10_000) });
    await long.subscribeAsync('ping', { qos: 1 });
    await reaches(long, 'site');
  });
});
