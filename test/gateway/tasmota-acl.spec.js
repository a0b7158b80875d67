'use strict';
const assert = require('assert');
const h = require('./helpers');
const { onBothBrokers, gatewayRig } = require('./brokers');

// A Tasmota device reaches only cmnd/stat/tele of its own topic: it takes commands on its own
// cmnd topic and never sends any (the server alone commands it), answers on its own stat and tele.
// Its group and fallback topics are refused: through them any device could command a whole group.

onBothBrokers('ota-gateway: Tasmota ACL', function (startBroker) {
  const rig = gatewayRig(startBroker, {
    devices: [
      { id: 'plug-a', dialect: 'tasmota', token: 'plug-a-token' },
      { id: 'plug-b', dialect: 'tasmota', token: 'plug-b-token' },
    ],
  });
  beforeEach(function () {
    this.timeout(15000);
  });
  const failure = () => (rig.v5 ? 0x87 : 0x80);
  const subscribe = (client, filters) =>
    client.subscribeAsync(Object.fromEntries(filters.map((f) => [f, { qos: 1 }]))).then(
      (granted) => granted.map((g) => g.qos),
      (err) => err.packet.granted,
    );
  /** MQTT 5 devices hear "not authorized" on a refused QoS 1 publish; MQTT 3.1.1 has no way to say it. */
  const publish = (client, topic, payload) => client.publishAsync(topic, payload, { qos: 1 }).catch((err) => err);

  it('grants its own command topic only: not the group topic, the fallback topic, another plug\'s commands, nor stat/tele of anyone', async function () {
    const a = await rig.device({ username: 'plug-a-token', clientId: 'DVES_00A1B2' });
    const granted = await subscribe(a, ['cmnd/plug-a/#', 'cmnd/tasmotas/#', 'cmnd/DVES_00A1B2_fb/#', 'cmnd/plug-b/#', 'cmnd/+/Upgrade', 'stat/plug-b/#', 'tele/+/LWT', '#']);
    assert.deepStrictEqual(granted, [1, failure(), failure(), failure(), failure(), failure(), failure(), failure()]);
  });

  it('delivers the server\'s commands to the plug and never another plug\'s', async function () {
    const a = await rig.device({ username: 'plug-a-token', clientId: 'DVES_00A1B2' });
    const seen = [];
    a.on('message', (topic, payload) => seen.push(`${topic} ${payload}`));
    await a.subscribeAsync('cmnd/plug-a/#', { qos: 1 });
    await rig.server.publishAsync('cmnd/plug-b/Upgrade', '1', { qos: 1 });
    await rig.server.publishAsync('cmnd/plug-a/OtaUrl', 'http://h/fw.bin', { qos: 1 });
    await rig.server.publishAsync('cmnd/plug-a/Upgrade', '1', { qos: 1 });
    await h.until(() => seen.length >= 2);
    assert.deepStrictEqual(seen, ['cmnd/plug-a/OtaUrl http://h/fw.bin', 'cmnd/plug-a/Upgrade 1']);
  });

  it('passes its answers on its own stat and tele topics, and drops its commands to itself or any plug, and answers in another\'s name', async function () {
    const heard = [];
    await rig.server.subscribeAsync(['cmnd/#', 'stat/#', 'tele/#'], { qos: 1 });
    rig.server.on('message', (topic, payload) => heard.push(`${topic} ${payload}`));
    const a = await rig.device({ username: 'plug-a-token', clientId: 'DVES_00A1B2' });
    await publish(a, 'cmnd/plug-b/Upgrade', '1');
    await publish(a, 'cmnd/plug-a/Upgrade', '1');
    await publish(a, 'cmnd/tasmotas/Upgrade', '1');
    await publish(a, 'stat/plug-b/UPGRADE', '{"Upgrade":"Successful. Restarting"}');
    await publish(a, 'tele/plug-b/INFO1', '{"Info1":{"Version":"99.0.0(tasmota)"}}');
    await publish(a, 'stat/plug-a/RESULT', '{"Upgrade":"Version 14.2.0(tasmota) from http://h/fw.bin"}');
    await publish(a, 'tele/plug-a/INFO1', '{"Info1":{"Version":"14.3.0(tasmota)"}}');
    await h.until(() => heard.some((l) => l.startsWith('tele/plug-a/INFO1')));
    assert.deepStrictEqual(heard, [
      'stat/plug-a/RESULT {"Upgrade":"Version 14.2.0(tasmota) from http://h/fw.bin"}',
      'tele/plug-a/INFO1 {"Info1":{"Version":"14.3.0(tasmota)"}}',
    ]);
    assert.ok(rig.gateway.counters.deniedPublish >= 5);
  });

  it('keeps its LWT on its own tele topic: a will in another plug\'s name is dropped', async function () {
    const lwt = [];
    await rig.server.subscribeAsync('tele/+/LWT', { qos: 1 });
    rig.server.on('message', (topic, payload) => { if (topic.endsWith('/LWT')) lwt.push(`${topic} ${payload}`); });
    const own = await rig.device({ username: 'plug-a-token', clientId: 'DVES_00A1B3', will: { topic: 'tele/plug-a/LWT', payload: Buffer.from('Offline'), qos: 1, retain: false } });
    const forged = await rig.device({ username: 'plug-a-token', clientId: 'DVES_00A1B4', will: { topic: 'tele/plug-b/LWT', payload: Buffer.from('Offline'), qos: 1, retain: false } });
    own.stream.destroy();
    forged.stream.destroy();
    await h.until(() => lwt.length >= 1);
    await rig.server.publishAsync('tele/marker/x', 'm', { qos: 1 });
    await h.sleep(200);
    // Overlapping server subscriptions may deliver it twice (mosquitto): what matters is whose it is.
    assert.deepStrictEqual([...new Set(lwt)], ['tele/plug-a/LWT Offline']);
  });
});
