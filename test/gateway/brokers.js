'use strict';
const h = require('./helpers');

/**
 * Declares `suite(startBroker)` twice: on aedes in-process (MQTT 3.1.1) and on a mosquitto of its
 * own (MQTT 5), which is skipped where mosquitto is not installed. `startBroker(mochaContext, extraConfig)`.
 */
function onBothBrokers(title, suite) {
  describe(`${title}, on aedes`, function () {
    suite(() => h.startAedes());
  });
  describe(`${title}, on mosquitto`, function () {
    suite(async (ctx, extraConfig = []) => {
      if (!h.hasMosquitto()) {
        console.log(`      skipped: ${h.MOSQUITTO} is not installed (apt-get install mosquitto)`);
        ctx.skip();
      }
      return h.startMosquitto(extraConfig);
    });
  });
}

/**
 * What most gateway suites start in `before` and close in `after`: a broker from `startBroker`,
 * a repository holding `devices`, a gateway over it and, unless `server` is false, a "server
 * side" client on the broker. The gateway is `h.startGateway` with `options`, or with `cli` (extra
 * arguments) the command line gateway over the repository's directory (`h.runCli`, with `env`).
 * The rig's broker, v5, store, gateway and server are set once `before` ran; device(options)
 * connects a device through the gateway in the broker's MQTT version, and every client pushed to
 * `clients` is ended in `after`.
 */
function gatewayRig(startBroker, { devices = [], options, server = true, cli, env } = {}) {
  const rig = { clients: [] };
  before(async function () {
    rig.broker = await startBroker(this);
    rig.v5 = rig.broker.version === 5;
    rig.store = h.makeRepository();
    for (const device of devices) await rig.store.repo.devices.register(device);
    if (cli) {
      await rig.store.repo.flush();
      rig.gateway = await h.runCli(['--dir', rig.store.dir, '--listen', '127.0.0.1:0', '--upstream', rig.broker.url, ...cli], env);
    } else {
      rig.gateway = await h.startGateway(rig.store.repo, rig.broker.url, options);
    }
    if (server) {
      rig.server = await h.connect(rig.broker.url, { protocolVersion: rig.broker.version, clientId: 'server-side' });
      rig.clients.push(rig.server);
    }
  });
  after(async function () {
    await h.endAll(rig.clients);
    if (rig.gateway) await (cli ? rig.gateway.stop() : rig.gateway.close());
    if (rig.broker) await rig.broker.close();
    if (rig.store) await rig.store.close();
  });
  rig.device = async (options) => {
    const client = await h.connect(rig.gateway.url, { protocolVersion: rig.broker.version, ...options });
    rig.clients.push(client);
    return client;
  };
  return rig;
}

/** Resolves true once the socket closed, false if it is still open after `ms` (a bound, not a measurement). */
function closedWithin(raw, ms) {
  return Promise.race([raw.closed.then(() => true), h.sleep(ms).then(() => false)]);
}

module.exports = { onBothBrokers, gatewayRig, closedWithin };
