'use strict';
// What a user gets from `npm install node-red-contrib-mqtt-ota`: the packed tarball installed
// into a fresh Node-RED user directory, and stock Node-RED 4.1 started there.
const assert = require('assert');
const { execFileSync } = require('child_process');
const fs = require('fs');
const path = require('path');
const { startNodeRed, ROOT } = require('../../scripts/node-red-runtime');
const { tempDir } = require('../support/images');

const pkg = require('../../package.json');

describe('installing the packed tarball into a fresh Node-RED', function () {
  this.timeout(240000);
  let work, red;

  before(async () => {
    work = tempDir('mqtt-ota-install-');
    // npm pack would run prepack (a full build); `npm test` has just built, so pack what is there.
    const out = execFileSync('npm', ['pack', '--ignore-scripts', '--json', '--pack-destination', work], { cwd: ROOT, encoding: 'utf8', stdio: ['ignore', 'pipe', 'ignore'] });
    const tarball = path.join(work, JSON.parse(out)[0].filename);
    const userDir = path.join(work, 'user');
    fs.mkdirSync(userDir);
    fs.writeFileSync(path.join(userDir, 'package.json'), JSON.stringify({ name: 'node-red-project', private: true }));
    execFileSync('npm', ['install', '--no-audit', '--no-fund', '--prefer-offline', '--omit=dev', tarball], { cwd: userDir, stdio: 'ignore' });
    red = await startNodeRed({ userDir, link: false, flows: [] });
  });
  after(async () => {
    if (red) await red.stop();
    if (work) fs.rmSync(work, { recursive: true, force: true });
  });

  it('registers every node type of the package without load errors', async () => {
    const res = await fetch(`${red.url}/nodes`, { headers: { Accept: 'application/json' } });
    const sets = (await res.json()).filter((s) => s.module === pkg.name);
    const types = sets.flatMap((s) => s.types).sort();
    assert.deepStrictEqual(types, Object.keys(pkg['node-red'].nodes).sort());
    for (const set of sets) assert.ok(!set.err, `${set.id} failed to load: ${set.err}`);
    assert.deepStrictEqual(red.logs.filter((l) => /\[error\]/.test(l)), []);
  });

  it('gives programs a documented entry with types, and ships no development-only parts', () => {
    const installed = path.join(work, 'user', 'node_modules', pkg.name);
    const probe = `const m = require(${JSON.stringify(pkg.name)});
      const ok = typeof m.OtaRepository === 'function' && typeof m.gateway.OtaGateway === 'function' && typeof m.sim.startFleet === 'function';
      process.stdout.write(JSON.stringify({ ok, dialects: m.DIALECTS }));`;
    const out = JSON.parse(execFileSync(process.execPath, ['-e', probe], { cwd: path.join(work, 'user'), encoding: 'utf8' }));
    assert.deepStrictEqual(out, { ok: true, dialects: ['biotz', 'sming', 'tago', 'tasmota', 'tencent', 'thingsboard'] });
    assert.ok(fs.existsSync(path.join(installed, pkg.types)), `${pkg.types} is shipped`);
    for (const file of ['LICENSE', 'CHANGELOG.md', 'README.md']) assert.ok(fs.existsSync(path.join(installed, file)), `${file} is shipped`);
    // aedes is the demo's and the tests' broker: it must not land in the user's Node-RED.
    assert.strictEqual(fs.existsSync(path.join(work, 'user', 'node_modules', 'aedes')), false, 'aedes is not installed');
    const js = [];
    const walk = (dir) => {
      for (const e of fs.readdirSync(dir, { withFileTypes: true })) {
        if (e.isDirectory()) walk(path.join(dir, e.name));
        else if (e.name.endsWith('.js')) js.push(path.join(dir, e.name));
      }
    };
    walk(path.join(installed, 'dist'));
    const dangling = js.filter((f) => /sourceMappingURL/.test(fs.readFileSync(f, 'utf8')));
    assert.deepStrictEqual(dangling, [], 'no source map links to files that are not shipped');
  });

  it('serves each node\'s editor and help, and the icon', async () => {
    const res = await fetch(`${red.url}/nodes`, { headers: { Accept: 'text/html' } });
    const html = await res.text();
    for (const type of Object.keys(pkg['node-red'].nodes)) {
      assert.ok(html.includes(`data-template-name="${type}"`), `editor template for ${type}`);
      assert.ok(html.includes(`data-help-name="${type}"`), `help for ${type}`);
    }
    const icon = await fetch(`${red.url}/icons/${pkg.name}/ota.svg`);
    assert.strictEqual(icon.status, 200);
  });

  it('lists the examples in the Import menu, each loading as a flow of known node types', async () => {
    const get = async (p) => (await fetch(`${red.url}/library/examples/flows/${p}`, { headers: { Accept: 'application/json' } })).json();
    assert.ok((await get('')).includes(pkg.name), 'the package is in Import > Examples');
    const entries = await get(pkg.name);
    // Folders are strings in the listing: Dashboard 2, whose example needs that palette too.
    assert.deepStrictEqual(entries.filter((e) => typeof e === 'string'), ['Dashboard 2']);
    const names = entries.filter((e) => typeof e !== 'string').map((e) => e.fn).sort();
    const expected = fs.readdirSync(path.join(ROOT, 'examples')).filter((f) => f.endsWith('.json')).map((f) => f.replace(/\.json$/, '')).sort();
    assert.deepStrictEqual(names, expected);
    const nodeSets = await (await fetch(`${red.url}/nodes`, { headers: { Accept: 'application/json' } })).json();
    const known = new Set(nodeSets.flatMap((s) => s.types).concat(['tab', 'group', 'subflow', 'comment']));
    for (const name of names) {
      const flow = await get(`${pkg.name}/${encodeURIComponent(name)}`);
      assert.ok(Array.isArray(flow) && flow.length > 0, `${name} is a flow`);
      for (const n of flow) assert.ok(known.has(n.type), `${name}: node type ${n.type} is installed`);
    }
    // The Dashboard 2 example: our nodes and core's, and @flowfuse/node-red-dashboard's ui-* only.
    const dashboard = await get(`${pkg.name}/Dashboard%202/OTA%20rollouts`);
    const needs = [...new Set(dashboard.filter((n) => !known.has(n.type)).map((n) => n.type))].sort();
    assert.deepStrictEqual(needs, ['ui-base', 'ui-group', 'ui-page', 'ui-template', 'ui-theme']);
  });
});
