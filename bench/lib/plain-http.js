'use strict';
// The HTTP baseline: a plain Node server streaming one file from disk for every GET
// (fs.createReadStream, Content-Length, TCP_NODELAY), nothing else.
// Usage: node plain-http.js <file>; prints {"port":N} when listening on 127.0.0.1.
const fs = require('fs');
const http = require('http');

const file = process.argv[2];
const size = fs.statSync(file).size;
const server = http.createServer((req, res) => {
  res.writeHead(200, { 'Content-Type': 'application/octet-stream', 'Content-Length': size });
  fs.createReadStream(file).pipe(res);
});
server.on('connection', (s) => s.setNoDelay(true));
server.keepAliveTimeout = 60000;
server.listen(0, '127.0.0.1', () => process.stdout.write(JSON.stringify({ port: server.address().port }) + '\n'));
const stop = () => { server.close(() => process.exit(0)); server.closeAllConnections(); setTimeout(() => process.exit(0), 2000).unref(); };
process.on('SIGTERM', stop);
process.on('SIGINT', stop);
