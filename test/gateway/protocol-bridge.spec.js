'use strict';
const assert = require('assert');
const bridge = require('../../dist/gateway/protocol-bridge');
const { isValidReasonCode, withValidReasonCodes } = require('../../dist/gateway/reason-codes');
const { CONNACK_CODES, NOT_AUTHORIZED_V5 } = require('../../dist/gateway/session');

// The MQTT 5 <-> 3.1.1 translation, one packet at a time, and the rule that no device ever
// hears a reason code its protocol version does not define.

const publish = (extra = {}, properties) => ({ cmd: 'publish', topic: 'ota/d/t', payload: Buffer.from('x'), qos: 1, retain: false, dup: false, messageId: 3, ...extra, ...(properties ? { properties } : {}) });
const connect = (clean, properties, will) => ({ cmd: 'connect', protocolId: 'MQTT', protocolVersion: 5, clientId: 'd:c', clean, keepalive: 30, ...(properties ? { properties } : {}), ...(will ? { will } : {}) });

describe('protocol bridge: MQTT 5 device to MQTT 3.1.1 broker', function () {
  it('maps Clean Start and Session Expiry Interval onto Clean Session, and says when the expiry is not kept', function () {
    const table = [
      // [clean start, session expiry, 3.1.1 clean session, expiry stated in CONNACK]
      [true, undefined, true, undefined],
      [false, undefined, true, undefined], // nothing outlives the connection: resume impossible, allowed
      [false, 3600, false, undefined], // resume and keep: the broker's own expiry applies
      [true, 3600, true, 0], // fresh and keep: 3.1.1 cannot, the device is told 0
      [false, 0xffffffff, false, undefined],
    ];
    for (const [cleanStart, expiry, clean, stated] of table) {
      const up = bridge.connectUp(connect(cleanStart, expiry === undefined ? undefined : { sessionExpiryInterval: expiry }));
      assert.strictEqual(up.packet.clean, clean, `clean start ${cleanStart}, expiry ${expiry}`);
      assert.strictEqual(up.sessionExpiry, stated, `clean start ${cleanStart}, expiry ${expiry}`);
      assert.strictEqual(up.packet.protocolVersion, 4);
      assert.strictEqual(up.packet.properties, undefined);
    }
  });

  it('drops CONNECT and will properties, naming each, and keeps the will itself', function () {
    const up = bridge.connectUp(connect(true, { receiveMaximum: 10, userProperties: { a: 'b' }, topicAliasMaximum: 5, maximumPacketSize: 1000 }, { topic: 'ota/d/gone', payload: Buffer.from('bye'), qos: 1, retain: true, properties: { willDelayInterval: 30, contentType: 'text/plain' } }));
    assert.deepStrictEqual(up.dropped.sort(), ['receiveMaximum', 'userProperties', 'will.contentType', 'will.willDelayInterval']);
    assert.deepStrictEqual(up.packet.will, { topic: 'ota/d/gone', payload: Buffer.from('bye'), qos: 1, retain: true });
  });

  it('drops PUBLISH annotations with a count, and strips every property from the packet', function () {
    const up = bridge.publishUp(publish({}, { userProperties: { k: 'v' }, contentType: 'application/json', payloadFormatIndicator: true, messageExpiryInterval: 10, topicAlias: 2 }));
    assert.deepStrictEqual(up.dropped.sort(), ['contentType', 'messageExpiryInterval', 'payloadFormatIndicator', 'userProperties']);
    assert.strictEqual(up.packet.properties, undefined);
    assert.strictEqual(up.packet.topic, 'ota/d/t');
  });

  it('refuses with 0x83 what dropping would change: a response topic, correlation data, a retained message that expires', function () {
    assert.strictEqual(bridge.publishUp(publish({}, { responseTopic: 'ota/d/r' })).refuse, 0x83);
    assert.strictEqual(bridge.publishUp(publish({}, { correlationData: Buffer.from('1') })).refuse, 0x83);
    assert.strictEqual(bridge.publishUp(publish({ retain: true }, { messageExpiryInterval: 5 })).refuse, 0x83);
    assert.ok(bridge.publishUp(publish({ retain: true })).packet);
  });

  it('vets subscription options per filter', function () {
    const packet = { cmd: 'subscribe', messageId: 1, subscriptions: [] };
    const vet = (sub, held = false, p = packet) => bridge.refuseSubscription({ topic: 't', qos: 1, ...sub }, p, held);
    assert.strictEqual(vet({}), null);
    assert.strictEqual(vet({ rh: 0, nl: false, rap: false }), null);
    assert.strictEqual(vet({ rh: 1 }), null); // a new filter: what 3.1.1 does anyway
    assert.strictEqual(vet({ rh: 1 }, true), 0x83);
    assert.strictEqual(vet({ rh: 2 }), 0x83);
    assert.strictEqual(vet({ nl: true }), 0x83);
    assert.strictEqual(vet({ rap: true }), 0x83);
    assert.strictEqual(vet({ topic: '$share/g/t' }), 0x9e);
    assert.strictEqual(vet({}, false, { ...packet, properties: { subscriptionIdentifier: 4 } }), 0xa1);
    const up = bridge.subscribeUp({ cmd: 'subscribe', messageId: 9, properties: { userProperties: { a: 'b' } }, subscriptions: [{ topic: 't', qos: 2, nl: false, rap: false, rh: 0 }] });
    assert.deepStrictEqual(up, { cmd: 'subscribe', messageId: 9, subscriptions: [{ topic: 't', qos: 2 }] });
  });

  it('strips reason codes from acknowledgements, turns DISCONNECT 0x04 into an abort and AUTH into DISCONNECT 0x82', function () {
    assert.deepStrictEqual(bridge.otherUp({ cmd: 'puback', messageId: 4, reasonCode: 0x10, properties: { reasonString: 'r' } }), { packet: { cmd: 'puback', messageId: 4 } });
    assert.deepStrictEqual(bridge.otherUp({ cmd: 'disconnect', reasonCode: 0, properties: { sessionExpiryInterval: 9 } }), { packet: { cmd: 'disconnect' } });
    assert.ok('abort' in bridge.otherUp({ cmd: 'disconnect', reasonCode: 0x04 }));
    assert.strictEqual(bridge.otherUp({ cmd: 'auth', reasonCode: 0x18 }).disconnect, 0x82);
    assert.deepStrictEqual(bridge.otherUp({ cmd: 'pingreq' }), { packet: { cmd: 'pingreq' } });
  });
});

describe('protocol bridge: MQTT 3.1.1 broker to MQTT 5 device', function () {
  it('maps CONNACK return codes 1-5 to their MQTT 5 reason codes, anything else to 0x80', function () {
    const expected = { 0: 0x00, 1: 0x84, 2: 0x85, 3: 0x88, 4: 0x86, 5: 0x87 };
    for (let code = 0; code < 256; code++) {
      const out = bridge.connackDown({ cmd: 'connack', sessionPresent: false, returnCode: code });
      assert.strictEqual(out.reasonCode, expected[code] ?? 0x80, `return code ${code}`);
      assert.ok(isValidReasonCode('connack', out.reasonCode, 5));
    }
  });

  it('states what a 3.1.1 broker offers, and the session expiry it really keeps', function () {
    const out = bridge.connackDown({ cmd: 'connack', sessionPresent: true, returnCode: 0 }, 0);
    assert.deepStrictEqual(out, {
      cmd: 'connack',
      sessionPresent: true,
      reasonCode: 0,
      properties: { retainAvailable: true, wildcardSubscriptionAvailable: true, sharedSubscriptionAvailable: false, subscriptionIdentifiersAvailable: false, sessionExpiryInterval: 0 },
    });
    assert.strictEqual(bridge.connackDown({ cmd: 'connack', sessionPresent: false, returnCode: 0 }).properties.sessionExpiryInterval, undefined);
  });

  it('gives an UNSUBACK one 0x00 per filter the device named', function () {
    assert.deepStrictEqual(bridge.unsubackDown({ cmd: 'unsuback', messageId: 2 }, 3), { cmd: 'unsuback', messageId: 2, granted: [0, 0, 0] });
  });

  it('measures a PUBLISH against the device\'s maximum packet size', function () {
    const p = { cmd: 'publish', topic: 'abc', payload: Buffer.alloc(90), qos: 0, retain: false, dup: false };
    assert.strictEqual(bridge.exceedsPacketSize(p, undefined), false);
    assert.strictEqual(bridge.exceedsPacketSize(p, 200), false);
    assert.strictEqual(bridge.exceedsPacketSize(p, 95), true); // 90 bytes of payload fit, the packet does not
  });
});

describe('protocol bridge: what the broker speaks', function () {
  const make = (mode) => {
    const notices = [];
    let now = 0;
    const protocol = new bridge.BrokerProtocol(mode, 'h:1', (n) => notices.push(n), () => now);
    return { protocol, notices, tick: (ms) => (now += ms) };
  };

  it('auto: tries 5 until the broker answers 1, then bridges; 3.1.1 devices always go as 3.1.1', function () {
    const { protocol, notices } = make('auto');
    assert.strictEqual(protocol.upstreamVersion(4), 4);
    assert.strictEqual(protocol.upstreamVersion(3), 3);
    assert.strictEqual(protocol.upstreamVersion(5), 5);
    assert.ok(protocol.probing);
    protocol.answeredV5(1);
    assert.ok(!protocol.probing);
    assert.strictEqual(protocol.upstreamVersion(5), 4);
    assert.deepStrictEqual(notices.map((n) => n.kind), ['bridging']);
  });

  it('auto: a broker that answers an MQTT 5 CONNECT (even refusing it for a bad login) speaks 5', function () {
    const { protocol, notices } = make('auto');
    protocol.answeredV5(0x86);
    assert.strictEqual(protocol.upstreamVersion(5), 5);
    protocol.closedV5ThenAnswered(); // a close proves less than an answer
    assert.strictEqual(protocol.upstreamVersion(5), 5);
    assert.deepStrictEqual(notices, []);
  });

  it('forced modes never probe; a refused 5 says what to configure, once a minute', function () {
    assert.strictEqual(make('3.1.1').protocol.upstreamVersion(5), 4);
    const { protocol, notices, tick } = make('5');
    assert.ok(!protocol.probing);
    for (let i = 0; i < 10; i++) protocol.answeredV5(1);
    assert.strictEqual(protocol.upstreamVersion(5), 5);
    assert.strictEqual(notices.length, 1);
    assert.match(notices[0].message, /auto or 3\.1\.1.*--upstream-protocol/);
    tick(61_000);
    protocol.answeredV5(1);
    assert.strictEqual(notices.length, 2);
  });
});

describe('reason codes: the gateway never sends one the device\'s version does not define', function () {
  const PACKETS = ['connack', 'puback', 'pubrec', 'pubrel', 'pubcomp', 'suback', 'unsuback', 'disconnect'];

  it('every code the gateway writes itself is valid where it writes it', function () {
    for (const { v4, v5 } of Object.values(CONNACK_CODES)) {
      assert.ok(isValidReasonCode('connack', v4, 4), `CONNACK ${v4} (3.1.1)`);
      assert.ok(isValidReasonCode('connack', v5, 5), `CONNACK 0x${v5.toString(16)} (5)`);
    }
    for (const cmd of ['puback', 'pubrec', 'suback']) assert.ok(isValidReasonCode(cmd, NOT_AUTHORIZED_V5, 5), cmd);
    assert.ok(isValidReasonCode('suback', 0x80, 4));
    for (const cmd of ['puback', 'pubrec']) assert.ok(isValidReasonCode(cmd, bridge.RC.implementationSpecific, 5));
    for (const code of [0x83, 0x9e, 0xa1]) assert.ok(isValidReasonCode('suback', code, 5));
    assert.ok(isValidReasonCode('unsuback', bridge.RC.success, 5));
    assert.ok(isValidReasonCode('disconnect', bridge.RC.protocolError, 5));
    assert.ok(isValidReasonCode('connack', bridge.RC.badAuthenticationMethod, 5));
    assert.ok(isValidReasonCode('connack', bridge.RC.unsupportedProtocolVersion, 5));
  });

  it('replaces any other code, from any source, with the packet\'s generic failure', function () {
    for (const version of [4, 5]) {
      for (const cmd of PACKETS) {
        for (let code = 0; code < 256; code++) {
          let packet;
          if (cmd === 'connack') packet = version === 5 ? { cmd, sessionPresent: false, reasonCode: code } : { cmd, sessionPresent: false, returnCode: code };
          else if (cmd === 'suback' || cmd === 'unsuback') packet = { cmd, messageId: 1, granted: [0, code] };
          else packet = { cmd, messageId: 1, reasonCode: code };
          const { packet: out, invalid } = withValidReasonCodes(packet, version);
          const codes = cmd === 'connack' ? [version === 5 ? out.reasonCode : out.returnCode] : cmd.endsWith('suback') ? out.granted : [out.reasonCode];
          if (version === 4 && !['connack', 'suback'].includes(cmd)) {
            assert.strictEqual(out, packet); // 3.1.1 acknowledgements carry no code at all
            continue;
          }
          for (const c of codes) assert.ok(isValidReasonCode(cmd, c, version), `${cmd} ${code} -> ${c} (v${version})`);
          assert.strictEqual(invalid.length === 0, isValidReasonCode(cmd, code, version));
        }
      }
    }
    // The bug this prevents: aedes' 3.1.1 refusal read as an MQTT 5 CONNACK.
    assert.strictEqual(withValidReasonCodes({ cmd: 'connack', sessionPresent: false, reasonCode: 1 }, 5).packet.reasonCode, 0x80);
  });
});
