'use strict';
// The embedded MQTT broker (aedes 1.x, MQTT 3.1.1) on a loopback port: `npm start`, the tests
// and the benchmarks all start it here. TCP_NODELAY on every connection unless told otherwise
// (a spec that checks the client side's own setting turns it off).
const net = require('net');

/**
 * @param {object} [o]
 * @param {number} [o.port=0]         0: any free port
 * @param {boolean} [o.noDelay=true]  TCP_NODELAY on the broker's side of each connection
 */
async function startAedes({ port = 0, noDelay = true } = {}) {
  const { Aedes } = require('aedes');
  const aedes = await Aedes.createBroker();
  const sockets = new Set();
  const subscribed = new Set();
  aedes.on('subscribe', (subs) => subs.forEach((s) => subscribed.add(s.topic)));
  const server = net.createServer((socket) => {
    if (noDelay) socket.setNoDelay(true);
    sockets.add(socket);
    socket.on('close', () => sockets.delete(socket));
    aedes.handle(socket);
  });
  await new Promise((resolve, reject) => {
    server.once('error', reject);
    server.listen(port, '127.0.0.1', resolve);
  });
  const actual = server.address().port;
  return {
    aedes,
    port: actual,
    url: `mqtt://127.0.0.1:${actual}`,
    /** Every filter any client subscribed to so far. */
    subscribed,
    /** Resolves once some client subscribed to every filter given. */
    async waitForSubscriptions(filters) {
      while (!filters.every((f) => subscribed.has(f))) await new Promise((r) => setTimeout(r, 10));
    },
    /** Clients connected right now. */
    clients: () => aedes.connectedClients,
    /** Cuts every connection (clients see the broker drop them). */
    dropAll() {
      for (const s of sockets) s.destroy();
    },
    async close() {
      for (const s of sockets) s.destroy();
      await new Promise((r) => aedes.close(r));
      await new Promise((r) => server.close(r));
    },
  };
}

module.exports = { startAedes };
