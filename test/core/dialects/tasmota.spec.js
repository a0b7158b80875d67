'use strict';
// The Tasmota wire format, from Tasmota's own source (docs/tasmota.md cites each line).
const assert = require('assert');
const fs = require('fs');
const http = require('http');
const zlib = require('zlib');
const { tasmota } = require('../../../dist/core/dialects');
const { MAX_OTA_URL, parseVersion } = require('../../../dist/core/dialects/tasmota');
const { detectDialect } = require('../../../dist/core/device-updates/detect-dialect');
const { OtaRepository } = require('../../../dist/core/repository');
const { serveDownload } = require('../../../dist/core/firmware/download');
const { signCompact, verifyCompact, signParts } = require('../../../dist/core/firmware/url-signing');
const { minimalUrl } = require('../../../dist/sim/dialects/tasmota');
const { imageOf, tempDir } = require('../../support/images');
const { firmware, device } = require('./helpers');

const plug = device('plug-1', 'tasmota');

describe('tasmota dialect: notice', function () {
  const fw = firmware(Buffer.from('tasmota image'), 'tasmota', '14.3.0');

  it('sends OtaUrl with the compact URL, then Upgrade 1, on cmnd/{topic}/..., QoS 1 and never retained', function () {
    const outs = tasmota.notice({ device: plug, firmware: fw, image: Buffer.from('x'), downloadUrl: () => 'unused', compactDownloadUrl: (file) => `http://nr:1880/ota/dl/fw1/plug-1/k/${file}` });
    assert.deepStrictEqual(outs, [
      { topic: 'cmnd/plug-1/OtaUrl', payload: 'http://nr:1880/ota/dl/fw1/plug-1/k/fw.bin', qos: 1, retain: false },
      { topic: 'cmnd/plug-1/Upgrade', payload: '1', qos: 1, retain: false },
    ]);
    assert.deepStrictEqual(tasmota.clear(plug, fw), []);
  });

  it('names a gzip image fw.bin.gz, so that an ESP8266 does not append .gz on its late attempts', function () {
    const gz = zlib.gzipSync(Buffer.from('image'));
    const [otaUrl] = tasmota.notice({ device: plug, firmware: fw, image: gz, downloadUrl: () => '', compactDownloadUrl: (file) => `http://h/${file}` });
    assert.strictEqual(otaUrl.payload, 'http://h/fw.bin.gz');
  });

  it(`refuses a URL longer than the ${MAX_OTA_URL} characters Tasmota keeps of its OtaUrl, saying what to shorten`, function () {
    const long = (file) => `http://${'h'.repeat(140)}/${file}`;
    assert.throws(() => tasmota.notice({ device: plug, firmware: fw, image: Buffer.from('x'), downloadUrl: () => '', compactDownloadUrl: long }), /Tasmota keeps 150 of its OtaUrl.*public URL/);
  });

  it('warns that only ESP32 builds with USE_WEBCLIENT_HTTPS fetch an https URL', function () {
    const warnings = [];
    tasmota.notice({ device: plug, firmware: fw, image: Buffer.from('x'), downloadUrl: () => '', compactDownloadUrl: (f) => `https://h/${f}`, warn: (t) => warnings.push(t) });
    assert.strictEqual(warnings.length, 1);
    assert.match(warnings[0], /ESP8266 builds download over http/);
    tasmota.notice({ device: plug, firmware: fw, image: Buffer.from('x'), downloadUrl: () => '', compactDownloadUrl: (f) => `http://h/${f}`, warn: (t) => warnings.push(t) });
    assert.strictEqual(warnings.length, 1);
  });

  it('uses the topic templates a custom FullTopic needs', function () {
    const outs = tasmota.notice({ device: plug, firmware: fw, image: Buffer.from('x'), downloadUrl: () => '', compactDownloadUrl: (f) => `http://h/${f}` }, { topics: { otaUrl: 'home/{device}/cmnd/OtaUrl', upgrade: 'home/{device}/cmnd/Upgrade' } });
    assert.deepStrictEqual(outs.map((o) => o.topic), ['home/plug-1/cmnd/OtaUrl', 'home/plug-1/cmnd/Upgrade']);
  });
});

describe('tasmota dialect: uplinks', function () {
  const parse = (topic, payload) => tasmota.parseUplink(topic, Buffer.from(typeof payload === 'string' ? payload : JSON.stringify(payload)));
  const event = (u) => {
    assert.strictEqual(u.kind, 'progress', JSON.stringify(u));
    const { at, ...rest } = u.events[0];
    assert.ok(at);
    return rest;
  };

  it('reads the Upgrade answer on RESULT (taken, refused) and UPGRADE (flashed, failed), and nothing else on RESULT', function () {
    assert.deepStrictEqual(event(parse('stat/plug-1/RESULT', { Upgrade: 'Version 14.2.0(tasmota) from http://h/fw.bin' })), { device: 'plug-1', dialect: 'tasmota', state: 'notified' });
    assert.deepStrictEqual(event(parse('stat/plug-1/UPGRADE', { Upgrade: 'Successful. Restarting' })), { device: 'plug-1', dialect: 'tasmota', state: 'updating' });
    const failed = event(parse('stat/plug-1/UPGRADE', { Upgrade: 'Failed Not Enough space' }));
    assert.strictEqual(failed.state, 'failed');
    assert.match(failed.error.message, /Not Enough space/);
    assert.strictEqual(event(parse('stat/plug-1/RESULT', { Upgrade: '1 or >14.2.0 to upgrade' })).error.code, 'upgrade_refused');
    assert.strictEqual(parse('stat/plug-1/RESULT', { POWER: 'ON' }).kind, 'ignored');
    assert.strictEqual(parse('stat/plug-1/RESULT', { OtaUrl: 'http://h/fw.bin' }).kind, 'ignored');
  });

  it('takes the version from INFO1 (both forms) and STATUS2, without the image name', function () {
    assert.deepStrictEqual(event(parse('tele/plug-1/INFO1', { Info1: { Module: 'Sonoff Basic', Version: '14.3.0(release-tasmota)', FallbackTopic: 'cmnd/DVES_ABC123_fb/', GroupTopic: 'cmnd/tasmotas/' } })), { device: 'plug-1', dialect: 'tasmota', state: 'notified', version: '14.3.0' });
    assert.strictEqual(event(parse('tele/plug-1/INFO1', { Module: 'Generic', Version: '9.5.0(tasmota)' })).version, '9.5.0');
    assert.strictEqual(event(parse('stat/plug-1/STATUS2', { StatusFWR: { Version: '14.3.0.1(tasmota)', Hardware: 'ESP8266EX' } })).version, '14.3.0.1');
    assert.deepStrictEqual(parseVersion('14.3.0(release-tasmota)'), { version: '14.3.0', image: 'release-tasmota' });
  });

  it('takes a minimal build for the middle of the two-step upgrade, never for the version it carries', function () {
    assert.deepStrictEqual(event(parse('tele/plug-1/INFO1', { Info1: { Version: '14.3.0(minimal)' } })), { device: 'plug-1', dialect: 'tasmota', state: 'updating' });
  });

  it('ignores the LWT, leaves foreign topics to other dialects, and says what is wrong with a bad payload', function () {
    assert.strictEqual(parse('tele/plug-1/LWT', 'Online').kind, 'ignored');
    assert.strictEqual(parse('$ota/report/P/d', {}).foreign, true);
    assert.strictEqual(parse('stat/plug-1/POWER', 'ON').foreign, true);
    assert.match(parse('tele/plug-1/INFO1', '{').error, /malformed JSON/);
    assert.match(parse('stat/plug-1/UPGRADE', { Upgrade: 42 }).error, /expected a text/);
    assert.match(parse('stat/plug-1/STATUS2', { Status: {} }).error, /StatusFWR/);
  });

  it('lets no namespaced device speak for a plug: ota/{id}/stat/plug-1/UPGRADE is no Tasmota uplink', function () {
    assert.strictEqual(parse('ota/tb-1/stat/plug-1/UPGRADE', { Upgrade: 'Successful. Restarting' }).foreign, true);
    assert.strictEqual(parse('ota/tb-1/tele/plug-1/INFO1', { Info1: { Version: '14.3.0(tasmota)' } }).foreign, true);
    assert.strictEqual(detectDialect('ota/tb-1/tele/plug-1/INFO1'), undefined);
  });

  it('is detected from its topics, and subscribes to the four it reads', function () {
    for (const t of ['stat/p/RESULT', 'stat/p/UPGRADE', 'stat/p/STATUS2', 'tele/p/INFO1', 'tele/p/LWT']) assert.strictEqual(detectDialect(t), 'tasmota', t);
    assert.strictEqual(detectDialect('stat/p/POWER'), undefined);
    assert.deepStrictEqual(tasmota.uplinkFilters(), ['stat/+/RESULT', 'stat/+/UPGRADE', 'stat/+/STATUS2', 'tele/+/INFO1']);
  });
});

describe('compact signed URL (Tasmota)', function () {
  const secret = Buffer.from('s3cret');
  const parts = { firmware: 'abcdef0123456789', device: 'plug-1', expires: 1800000000 };

  it('cannot be moved to another firmware or device, nor its expiry changed, nor replayed once expired', function () {
    const key = signCompact(secret, parts);
    assert.deepStrictEqual(verifyCompact(secret, parts.firmware, parts.device, key, 1700000000), { ok: true, expires: parts.expires });
    assert.strictEqual(verifyCompact(secret, 'abcdef0123456788', parts.device, key, 1700000000).status, 403);
    assert.strictEqual(verifyCompact(secret, parts.firmware, 'plug-2', key, 1700000000).status, 403);
    const later = (parts.expires + 3600).toString(36) + key.slice(-22);
    assert.strictEqual(verifyCompact(secret, parts.firmware, parts.device, later, 1700000000).status, 403);
    assert.strictEqual(verifyCompact(secret, parts.firmware, parts.device, '0' + key, 1700000000).status, 403, 'a leading zero is another key');
    assert.strictEqual(verifyCompact(secret, parts.firmware, parts.device, key, parts.expires + 1).status, 410);
    assert.strictEqual(verifyCompact(Buffer.from('other'), parts.firmware, parts.device, key, 1700000000).status, 403);
  });

  it('is no long-form signature, and a long-form signature is no compact key', function () {
    const long = signParts(secret, parts);
    assert.strictEqual(verifyCompact(secret, parts.firmware, parts.device, parts.expires.toString(36) + long.slice(0, 22), 1700000000).status, 403);
  });
});

describe('compact download route: the names Tasmota itself asks for', function () {
  let dir, repo, server, full, minimal, gz;
  const image = imageOf(50000, 7);
  const small = imageOf(20000, 8);
  const zipped = zlib.gzipSync(imageOf(30000, 9));
  const get = (url) => new Promise((resolve, reject) => {
    http.get(url, (res) => {
      const chunks = [];
      res.on('data', (c) => chunks.push(c));
      res.on('end', () => resolve({ status: res.statusCode, headers: res.headers, body: Buffer.concat(chunks) }));
    }).on('error', reject);
  });

  before(async () => {
    dir = tempDir();
    repo = new OtaRepository({ dir, now: () => new Date('2026-11-29T12:00:00Z') });
    ({ record: full } = await repo.firmware.store({ image, title: 'tasmota', version: '14.3.0' }));
    ({ record: minimal } = await repo.firmware.store({ image: small, title: 'tasmota-minimal', version: '14.3.0' }));
    ({ record: gz } = await repo.firmware.store({ image: zipped, title: 'tasmota-gz', version: '14.3.0' }));
    server = http.createServer((req, res) => {
      const m = /^\/ota\/dl\/([^/]+)\/([^/]+)\/([^/]+)\/([^/]+)$/.exec(new URL(req.url, 'http://x').pathname);
      if (!m) { res.statusCode = 404; return res.end(); }
      serveDownload(repo, { firmware: m[1], device: m[2], expires: undefined, signature: undefined, compact: { key: m[3], file: m[4] } }, req, res);
    });
    await new Promise((r) => server.listen(0, '127.0.0.1', r));
    repo.publicUrl = `http://127.0.0.1:${server.address().port}`;
  });
  after(async () => {
    await new Promise((r) => server.close(r));
    await repo.flush();
    fs.rmSync(dir, { recursive: true, force: true });
  });

  it('serves fw.bin, and fw-minimal.bin (Tasmota\'s own rewrite of it) as the {title}-minimal companion, with x-MD5', async function () {
    const events = [];
    repo.on('download', (e) => events.push(e));
    const url = repo.compactDownloadUrl(full, 'plug-1', 'fw.bin');
    assert.ok(url.length <= MAX_OTA_URL, `${url.length} characters`);
    assert.ok(!url.includes('%'), 'Tasmota formats an OtaUrl holding %d');
    const a = await get(url);
    assert.strictEqual(a.status, 200);
    assert.ok(a.body.equals(image));
    assert.strictEqual(a.headers['x-md5'], full.checksums.md5);
    const b = await get(minimalUrl(url));
    assert.ok(minimalUrl(url).endsWith('/fw-minimal.bin'));
    assert.strictEqual(b.status, 200);
    assert.ok(b.body.equals(small));
    assert.strictEqual(b.headers['x-md5'], minimal.checksums.md5);
    // The download progress the rollout reads: the full image's under its own id (the assigned
    // firmware), the minimal companion's under its id (a detour the record does not count).
    await new Promise((r) => setImmediate(r));
    const done = events.filter((e) => e.complete).map((e) => [e.device, e.firmware, e.size]);
    assert.deepStrictEqual(done, [['plug-1', full.id, image.length], ['plug-1', minimal.id, small.length]]);
  });

  it('answers a .gz name only for a gzip image, and nothing but the four names', async function () {
    assert.strictEqual((await get(repo.compactDownloadUrl(full, 'plug-1', 'fw.bin') + '.gz')).status, 404);
    const z = await get(repo.compactDownloadUrl(gz, 'plug-1', 'fw.bin.gz'));
    assert.strictEqual(z.status, 200);
    assert.ok(z.body.equals(zipped));
    assert.strictEqual((await get(repo.compactDownloadUrl(full, 'plug-1', 'fw.bin').replace(/fw\.bin$/, 'other.bin'))).status, 404);
    assert.strictEqual((await get(repo.compactDownloadUrl(gz, 'plug-1', 'fw-minimal.bin'))).status, 404, 'no tasmota-gz-minimal registered');
  });

  it('refuses the URL of another device, and a key past its expiry', async function () {
    const url = repo.compactDownloadUrl(full, 'plug-1', 'fw.bin');
    assert.strictEqual((await get(url.replace('/plug-1/', '/plug-2/'))).status, 403);
    const old = new OtaRepository({ dir, secret: undefined, now: () => new Date('2026-11-01T00:00:00Z'), urlTtlSeconds: 60 });
    old.publicUrl = repo.publicUrl;
    assert.strictEqual((await get(old.compactDownloadUrl(full, 'plug-1', 'fw.bin'))).status, 410);
  });

  it('refuses to build a compact URL for a device id that would need escaping', function () {
    assert.throws(() => repo.compactDownloadUrl(full, 'plug 1', 'fw.bin'), /needs escaping/);
  });
});
