'use strict';
// A TCP load balancer for specs, as a deployment puts one in front of several Node-REDs' HTTP
// ports (the download route): each connection goes to the next backend in turn, and to the one
// after when a backend refuses (a killed instance). Loopback only.
const net = require('net');

async function startBalancer(ports) {
  let next = 0;
  const sockets = new Set();
  const connect = (client, tries) => {
    const port = ports[next++ % ports.length];
    const upstream = net.connect(port, '127.0.0.1');
    sockets.add(upstream);
    upstream.once('close', () => sockets.delete(upstream));
    let connected = false;
    upstream.once('connect', () => {
      connected = true;
      upstream.on('error', () => client.destroy());
      client.on('error', () => upstream.destroy());
      client.pipe(upstream).pipe(client);
      client.resume();
    });
    upstream.once('error', (err) => {
      if (connected) return;
      if (tries + 1 < ports.length) connect(client, tries + 1);
      else client.destroy(err);
    });
  };
  const server = net.createServer({ pauseOnConnect: true }, (client) => {
    sockets.add(client);
    client.once('close', () => sockets.delete(client));
    connect(client, 0);
  });
  await new Promise((resolve, reject) => {
    server.once('error', reject);
    server.listen(0, '127.0.0.1', resolve);
  });
  return {
    url: `http://127.0.0.1:${server.address().port}`,
    async close() {
      for (const s of sockets) s.destroy();
      await new Promise((r) => server.close(r));
    },
  };
}

module.exports = { startBalancer };
