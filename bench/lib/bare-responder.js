'use strict';
// The baseline: a bare mqtt.js client holding the image in memory and answering ThingsBoard
// chunk requests ({prefix}{device}/v2/fw/request/{id}/chunk/{n}, payload = chunk size as text)
// with the raw bytes on {prefix}{device}/v2/fw/response/{id}/chunk/{n}, at the request's QoS.
// One connection per broker. Usage: node bare-responder.js <image file> <prefix> <broker url>...
// `serve` is also loaded into Node-RED by the `bare-in-red` target (targets.js), to tell the cost
// of the process apart from the cost of its flows.
const fs = require('fs');
const mqtt = require('mqtt');

/** Connects to `url` and answers requests under `prefix` from `image`; resolves with the client. */
function serve(url, prefix, image) {
  return new Promise((resolve, reject) => {
    const client = mqtt.connect(url, { clientId: `bench-bare-${process.pid}-${Math.random().toString(16).slice(2, 8)}`, reconnectPeriod: 1000, keepalive: 60 });
    client.on('connect', () => {
      if (client.stream.setNoDelay) client.stream.setNoDelay(true);
      client.subscribe(`${prefix}+/v2/fw/request/+/chunk/+`, { qos: 1 }, (err) => (err ? reject(err) : resolve(client)));
    });
    client.on('error', reject);
    client.on('message', (topic, payload, packet) => {
      const size = Number(payload.toString()) || image.length;
      const start = Number(topic.slice(topic.lastIndexOf('/') + 1)) * size;
      const bytes = start >= image.length ? Buffer.alloc(0) : image.subarray(start, Math.min(image.length, start + size));
      client.publish(topic.replace('/request/', '/response/'), bytes, { qos: packet.qos });
    });
  });
}

if (require.main === module) {
  const [imageFile, prefix, ...urls] = process.argv.slice(2);
  const image = fs.readFileSync(imageFile);
  Promise.all(urls.map((url) => serve(url, prefix, image))).then((clients) => {
    process.stdout.write(JSON.stringify({ ready: true }) + '\n');
    const stop = () => {
      let left = clients.length;
      for (const c of clients) c.end(false, () => { if (--left === 0) process.exit(0); });
      setTimeout(() => process.exit(0), 2000).unref();
    };
    process.on('SIGTERM', stop);
    process.on('SIGINT', stop);
  }, (err) => {
    console.error(err);
    process.exit(1);
  });
}

module.exports = { serve };
