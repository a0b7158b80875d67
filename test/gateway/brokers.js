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

/** Resolves true once the socket closed, false if it is still open after `ms` (a bound, not a measurement). */
function closedWithin(raw, ms) {
  return Promise.race([raw.closed.then(() => true), h.sleep(ms).then(() => false)]);
}

module.exports = { onBothBrokers, closedWithin };
