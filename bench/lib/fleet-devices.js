'use strict';
// Fleet load, run as a forked child: ThingsBoard devices f{from}..f{to-1} connect through the
// gateway (client id = device id), subscribe the way the stock SDK does, and fetch chunk 0 once.
// They stay connected until {cmd:'close'}. Every wait is bounded.
//   {cmd:'connect', urls, perGateway, from, to} -> {ok:'connect', connected, answered, failed, ms}
// Device j connects to urls[floor(j / perGateway)].
const mqtt = require('mqtt');

const clients = [];

function one(url, id) {
  return new Promise((resolve) => {
    let settled = false;
    const finish = (r) => { if (!settled) { settled = true; clearTimeout(timer); resolve(r); } };
    const timer = setTimeout(() => finish('timeout'), 60000);
    const client = mqtt.connect(url, { clientId: id, reconnectPeriod: 0, keepalive: 900, connectTimeout: 60000 });
    clients.push(client);
    client.once('error', () => finish('error'));
    client.once('connect', () => {
      client.subscribe('v2/fw/response/+', { qos: 1 }, (err) => {
        if (err) return finish('error');
        client.publish('v2/fw/request/1/chunk/0', '4096', { qos: 1 });
      });
    });
    client.on('message', (topic, payload) => finish(payload.length === 4096 ? 'answered' : 'error'));
  });
}

process.on('message', async (m) => {
  if (m.cmd === 'connect') {
    const t = Date.now();
    const counts = { answered: 0, error: 0, timeout: 0 };
    for (let i = m.from; i < m.to; i += 200) {
      const batch = [];
      for (let j = i; j < Math.min(m.to, i + 200); j++) batch.push(one(m.urls[Math.min(m.urls.length - 1, Math.floor(j / m.perGateway))], `f${j}`));
      for (const r of await Promise.all(batch)) counts[r]++;
    }
    process.send({ ok: 'connect', connected: clients.filter((c) => c.connected).length, answered: counts.answered, failed: counts.error + counts.timeout, ms: Date.now() - t });
  } else if (m.cmd === 'close') {
    for (const c of clients) c.end(true);
    process.exit(0);
  }
});
process.on('disconnect', () => process.exit(0));
