'use strict';
// nginx as a second HTTP baseline, when the machine has it (Debian: apt-get install nginx). One
// process (master_process off), so that it competes on the same terms as the single-threaded
// Node servers; sendfile, TCP_NODELAY and keep-alive on, access log off.
const fs = require('fs');
const http = require('http');
const path = require('path');
const { spawn } = require('child_process');
const { freePort } = require('../../scripts/servers');
const { stopChild } = require('./proc');

const CANDIDATES = ['/usr/sbin/nginx', '/usr/bin/nginx', '/usr/local/sbin/nginx', '/usr/local/bin/nginx'];

function findNginx() {
  return CANDIDATES.find((p) => fs.existsSync(p)) || null;
}

/** Serves `file` as /image.bin on 127.0.0.1; resolves with { pid, url, stop } once it answers. */
async function startNginx(file, dir) {
  const bin = findNginx();
  if (!bin) return null;
  const port = await freePort();
  const root = path.join(dir, 'nginx-root');
  fs.mkdirSync(root, { recursive: true });
  fs.copyFileSync(file, path.join(root, 'image.bin'));
  const temp = (name) => `${name} ${path.join(dir, 'nginx-' + name.split('_')[0])};`;
  const conf = path.join(dir, 'nginx.conf');
  fs.writeFileSync(conf, `daemon off;
master_process off;
worker_processes 1;
pid ${path.join(dir, 'nginx.pid')};
error_log ${path.join(dir, 'nginx-error.log')} warn;
events { worker_connections 1024; }
http {
  access_log off;
  sendfile on;
  tcp_nopush on;
  tcp_nodelay on;
  keepalive_requests 1000000;
  keepalive_timeout 60s;
  ${temp('client_body_temp_path')} ${temp('proxy_temp_path')} ${temp('fastcgi_temp_path')} ${temp('uwsgi_temp_path')} ${temp('scgi_temp_path')}
  default_type application/octet-stream;
  server { listen 127.0.0.1:${port}; root ${root}; }
}
`);
  const child = spawn(bin, ['-p', dir, '-c', conf, '-e', path.join(dir, 'nginx-error.log')], { stdio: ['ignore', 'ignore', 'pipe'] });
  let stderr = '';
  child.stderr.on('data', (d) => (stderr = (stderr + d).slice(-2000)));
  const url = `http://127.0.0.1:${port}/image.bin`;
  const deadline = Date.now() + 10000;
  for (;;) {
    if (child.exitCode !== null) throw new Error(`nginx exited (${child.exitCode}): ${stderr.trim()}`);
    const ok = await new Promise((resolve) => {
      http.get(url, (res) => { res.resume(); res.on('end', () => resolve(res.statusCode === 200)); }).on('error', () => resolve(false));
    });
    if (ok) break;
    if (Date.now() > deadline) { await stopChild(child); throw new Error(`nginx did not answer on ${url}: ${stderr.trim()}`); }
    await new Promise((r) => setTimeout(r, 50));
  }
  return { pid: child.pid, url, stop: () => stopChild(child, 5000) };
}

module.exports = { findNginx, startNginx };
