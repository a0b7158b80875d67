'use strict';
// Real parts for the simulator specs: aedes on a random loopback port, an MQTT client playing
// the server side of a dialect, and an HTTP file server with Range (what the repository serves).
const http = require('http');
const crypto = require('crypto');
const mqtt = require('mqtt');

const { startAedes } = require('../../scripts/servers');

async function startBroker() {
  const b = await startAedes();
  return { ...b, broker: b.aedes };
}

/** An MQTT client for the fake server; `messages` records everything it receives. */
async function serverClient(url, filters) {
  const client = await mqtt.connectAsync(url, { clientId: 'fake-server-' + crypto.randomBytes(4).toString('hex'), reconnectPeriod: 0 });
  if (filters) await client.subscribeAsync(filters, { qos: 1 });
  return client;
}

/** Deterministic pseudo-random image bytes. */
function makeImage(size, seed = 1) {
  const out = Buffer.alloc(size);
  let x = seed >>> 0 || 1;
  for (let i = 0; i < size; i++) {
    x ^= x << 13; x >>>= 0;
    x ^= x >>> 17;
    x ^= x << 5; x >>>= 0;
    out[i] = x & 0xff;
  }
  return out;
}

const sha256 = (b) => crypto.createHash('sha256').update(b).digest('hex');
const md5 = (b) => crypto.createHash('md5').update(b).digest('hex');

/**
 * Serves `image` at /fw.bin with Range, ETag (its SHA-256, as the repository does), Content-Length.
 * `log` records each request's Range header and status; `maxOpen` the most bodies in flight at once.
 */
async function startFileServer(image, { etag = `"${sha256(image)}"`, slow = true } = {}) {
  const state = { log: [], open: 0, maxOpen: 0 };
  const server = http.createServer((req, res) => {
    req.socket.setNoDelay(true);
    if (req.url !== '/fw.bin') {
      res.statusCode = 404;
      res.end('no such firmware\n');
      state.log.push({ range: req.headers.range, status: 404 });
      return;
    }
    let start = 0;
    let end = image.length - 1;
    const m = /^bytes=(\d+)-$/.exec(req.headers.range || '');
    const ifRange = req.headers['if-range'];
    const useRange = m && (!ifRange || ifRange === etag);
    if (useRange) start = Number(m[1]);
    if (start >= image.length && image.length > 0) {
      res.statusCode = 416;
      res.setHeader('Content-Range', `bytes */${image.length}`);
      res.end();
      state.log.push({ range: req.headers.range, status: 416 });
      return;
    }
    res.statusCode = useRange ? 206 : 200;
    if (useRange) res.setHeader('Content-Range', `bytes ${start}-${end}/${image.length}`);
    res.setHeader('Content-Length', String(end - start + 1));
    res.setHeader('ETag', etag);
    res.setHeader('Accept-Ranges', 'bytes');
    state.log.push({ range: req.headers.range, ifRange, status: res.statusCode });
    state.open++;
    state.maxOpen = Math.max(state.maxOpen, state.open);
    res.on('close', () => state.open--);
    // Written in 4 KiB pieces, one per turn of the event loop, so that a device sees the body
    // arrive in parts and can cut the connection part way.
    let pos = start;
    const pump = () => {
      while (pos <= end) {
        const piece = image.subarray(pos, Math.min(pos + 4096, end + 1));
        pos += piece.length;
        if (!res.write(piece)) {
          res.once('drain', pump);
          return;
        }
        if (slow) {
          setImmediate(pump);
          return;
        }
      }
      res.end();
    };
    pump();
  });
  await new Promise((resolve) => server.listen(0, '127.0.0.1', resolve));
  return {
    url: `http://127.0.0.1:${server.address().port}/fw.bin`,
    base: `http://127.0.0.1:${server.address().port}`,
    state,
    close: () => new Promise((resolve) => { server.closeAllConnections(); server.close(resolve); }),
  };
}

/** Resolves when `predicate()` holds, checked on every event of `emitter`. */
function until(emitter, event, predicate) {
  return new Promise((resolve) => {
    const check = () => {
      if (predicate()) {
        emitter.removeListener(event, check);
        resolve();
      }
    };
    emitter.on(event, check);
    check();
  });
}

module.exports = { startBroker, serverClient, makeImage, sha256, md5, startFileServer, until };
