'use strict';
// The editor's OTA sidebar in the real editor of a stock Node-RED (adminAuth on: an admin and a
// read-only user), in headless Chromium, with a simulated fleet behind the gateway. What a user
// sees: the sentence before any repository is deployed, the repository selector, an upload by
// file picker and by drag and drop, a device registered with its token shown once and rotated,
// devices assigned from a filtered selection and watched to 100 %, a rollout paused and resumed,
// a read-only user who sees everything and can change nothing, and no console error throughout.
const assert = require('assert');
const fs = require('fs');
const { startPipeline, fleetPlan, registerDevices, demoImage, AdminApi } = require('../../scripts/pipeline');
const { startFleet } = require('../../dist/sim');
const { tempDir } = require('../support/images');
const { eventually } = require('../support/eventually');
const { skipUnlessBrowser, launch } = require('../support/browser');

// Dialects whose devices report their version (Biotz and Sming report nothing: presence.spec).
const REPORTING = new Set(['thingsboard', 'tago', 'tencent']);
const USERS = [
  // bcrypt of "ota-admin-pw" and "ota-viewer-pw" (Node-RED's adminAuth keeps hashes only).
  { username: 'admin', password: '$2b$08$K64G0UXNYVHb/4KCsEq.MulAC9AO7ZnVK/wZyIiLq1IoPM4XB22ry', permissions: '*' },
  { username: 'viewer', password: '$2b$08$.ot8lDE94EBsjLsaES15nubBArp4yXk8kVDRQG1vRx0X8tEtZv2b2', permissions: 'read' },
];
const SETTINGS = {
  adminAuth: { type: 'credentials', users: USERS },
  // No palette catalogue: this machine reaches no internet, and its failure is not ours to count.
  // ACE rather than Monaco: the same editor, a quarter of the script to load.
  editorTheme: { tours: false, projects: { enabled: false }, palette: { catalogues: [] }, codeEditor: { lib: 'ace' } },
};

async function login(url, username, password) {
  const res = await fetch(`${url}/auth/token`, {
    method: 'POST',
    headers: { 'Content-Type': 'application/json' },
    body: JSON.stringify({ client_id: 'node-red-editor', grant_type: 'password', scope: '', username, password }),
  });
  assert.strictEqual(res.status, 200, `login of ${username}`);
  return res.json();
}

/** The admin API of the pipeline, as a logged-in user. */
function apiAs(url, token) {
  const api = new AdminApi(url);
  const call = api.call.bind(api);
  api.call = (method, route, body, headers = {}) => call(method, route, body, { Authorization: `Bearer ${token.access_token}`, ...headers });
  return api;
}

async function deploy(url, token, flows) {
  const res = await fetch(`${url}/flows`, {
    method: 'POST',
    headers: { 'Content-Type': 'application/json', Authorization: `Bearer ${token.access_token}`, 'Node-RED-Deployment-Type': 'full' },
    body: JSON.stringify(flows),
  });
  assert.strictEqual(res.status, 204, `deploy: ${await res.text()}`);
}

/** Opens the editor and the OTA tab (once the editor has loaded its plugins), on Node-RED 4 and 5. */
async function openSidebar(page, url) {
  await page.goto(url, { waitUntil: 'domcontentloaded' });
  // Loaded: the header's toolbar shows and the loading bar has gone (the editor then shows its
  // first sidebar tab, so ours is shown after that).
  await page.waitForFunction(() => window.$ && $('.red-ui-header-toolbar').is(':visible') && !$('#red-ui-loading-progress').is(':visible'), null, { timeout: 30000, polling: 100 });
  // Once its flows have loaded the editor shows its first tab (info), sometimes after the toolbar
  // appeared: show ours until it has stayed for 3 s.
  await page.waitForFunction(() => {
    let shown = false;
    try {
      shown = $('.ota-sb').is(':visible');
      if (!shown) RED.sidebar.show('ota-sidebar');
    } catch {
      // not registered yet
    }
    if (!shown) {
      window.otaShownSince = 0;
      return false;
    }
    window.otaShownSince = window.otaShownSince || Date.now();
    return Date.now() - window.otaShownSince > 3000;
  }, null, { timeout: 40000, polling: 200 });
  // A wider sidebar, as a user would drag it (Node-RED 4's separator; 5 lays the sidebar out itself).
  const separator = page.locator('#red-ui-sidebar-separator');
  const sep = (await separator.count()) ? await separator.boundingBox() : null;
  if (sep) {
    await page.mouse.move(sep.x + 3, sep.y + 200);
    await page.mouse.down();
    await page.mouse.move(sep.x - 420, sep.y + 200, { steps: 5 });
    await page.mouse.up();
  }
}

/** Switches to one of the sidebar's views (showing the OTA tab again if the editor moved away). */
async function view(page, name) {
  await page.evaluate(() => RED.sidebar.show('ota-sidebar'));
  await page.click(`.ota-sb-tabs [data-view="${name}"]`);
}

/** What the table shows for one device: its state and percent (data attributes of the cell). */
async function rowState(page, id) {
  const cell = page.locator(`.ota-sb-row[data-device="${id}"] .ota-sb-c-state`);
  if (!(await cell.count())) return null;
  const error = await page.locator(`.ota-sb-row[data-device="${id}"] .ota-sb-c-error`).innerText();
  return { state: await cell.getAttribute('data-state'), percent: Number(await cell.getAttribute('data-percent')), ...(error ? { error } : {}) };
}

describe('editor: the OTA sidebar in a real browser', function () {
  this.timeout(60000);
  let dir, pipeline, browser, admin, viewer, api, fleet, page, ro, flows;
  const plan = fleetPlan({ count: 2, size: 24 * 1024 });
  plan.groups = plan.groups.filter((g) => REPORTING.has(g.dialect));
  plan.devices = plan.devices.filter((d) => REPORTING.has(d.dialect));

  before(async function () {
    skipUnlessBrowser(this);
    this.timeout(90000);
    dir = tempDir('mqtt-ota-sidebar-');
    pipeline = await startPipeline({ userDir: dir, settings: SETTINGS });
    admin = await login(pipeline.red.url, 'admin', 'ota-admin-pw');
    viewer = await login(pipeline.red.url, 'viewer', 'ota-viewer-pw');
    api = apiAs(pipeline.red.url, admin);
    // Nothing deployed at first: the sidebar must say what to do.
    flows = JSON.parse(fs.readFileSync(`${dir}/flows.json`, 'utf8'));
    await deploy(pipeline.red.url, admin, []);
    browser = await launch();
  });
  after(async () => {
    if (browser) await browser.close();
    if (fleet) await fleet.stop();
    if (pipeline) await pipeline.stop();
    if (dir) fs.rmSync(dir, { recursive: true, force: true });
  });

  it('shows nothing before login: the routes refuse and the live feed says nothing', async () => {
    for (const route of ['/ota/sidebar/repositories', '/ota/devices', '/ota/firmware', '/ota/rollouts']) {
      assert.strictEqual((await fetch(`${pipeline.red.url}${route}`)).status, 401, route);
    }
    // The editor's websocket, unauthenticated: it may subscribe, and hears none of our topics
    // (Node-RED's comms sends nothing before an auth message; the runtime publishes meanwhile).
    const WebSocket = require('ws');
    const ws = new WebSocket(`${pipeline.red.url.replace('http', 'ws')}/comms`);
    const heard = [];
    ws.on('message', (m) => heard.push(String(m)));
    await new Promise((resolve, reject) => ws.once('open', resolve).once('error', reject));
    ws.send(JSON.stringify({ subscribe: 'ota-sidebar/#' }));
    await deploy(pipeline.red.url, admin, flows); // the feed publishes the repositories (retained)
    await new Promise((r) => setTimeout(r, 1500));
    ws.close();
    assert.ok(!heard.some((m) => m.includes('ota-sidebar')), heard.join('\n'));
    await deploy(pipeline.red.url, admin, []);
  });

  it('says what to do while no repository is deployed, and opens the one deployed', async () => {
    page = await browser.page({ token: admin });
    await openSidebar(page, pipeline.red.url);
    await page.locator('.ota-sb-empty').waitFor({ state: 'visible' });
    assert.match(await page.locator('.ota-sb-empty').innerText(), /No OTA repository is deployed.*deploy/);

    // Deploy the pipeline, with a second repository: the open sidebar follows, with a selector.
    // The second one holds 10,000 devices (written as its files, before it opens them).
    fs.mkdirSync(`${dir}/mqtt-ota-lab`, { recursive: true, mode: 0o700 });
    const many = Array.from({ length: 10000 }, (_, n) => ({ id: `lab-${String(n).padStart(5, '0')}`, dialect: 'tago', attributes: {}, tags: [n % 2 ? 'odd' : 'even'], createdAt: '2026-11-29T00:00:00.000Z' }));
    fs.writeFileSync(`${dir}/mqtt-ota-lab/devices.json`, JSON.stringify(many), { mode: 0o600 });
    flows.push({ id: 'f0ta00000000lab1', type: 'ota-repository', name: 'lab bench', storageDir: 'mqtt-ota-lab', downloadPath: '/ota/dl-lab' });
    await deploy(pipeline.red.url, admin, flows);
    await page.locator('.ota-sb-repo').waitFor({ state: 'visible', timeout: 20000 });
    assert.deepStrictEqual(await page.locator('.ota-sb-repo option').allInnerTexts(), ['OTA repository', 'lab bench']);
    assert.ok(!(await page.locator('.ota-sb-empty').isVisible()));
  });

  it('draws only the rows on screen at 10,000 devices, and filters and scrolls them', async () => {
    await page.selectOption('.ota-sb-repo', { label: 'lab bench' });
    await eventually(async () => /· 10000 of 10000$/.test(await page.locator('.ota-sb-selcount').innerText()) || page.locator('.ota-sb-selcount').innerText(), 20000, 'all 10,000 loaded');
    const drawn = await page.locator('.ota-sb-spacer .ota-sb-row').count();
    assert.ok(drawn > 0 && drawn < 80, `${drawn} rows in the page`);
    await page.locator('.ota-sb-scroll').evaluate((e) => { e.scrollTop = e.scrollHeight; });
    await page.locator('.ota-sb-row[data-device="lab-09999"]').waitFor();
    assert.ok((await page.locator('.ota-sb-spacer .ota-sb-row').count()) < 80);
    await page.fill('.ota-sb-f-text', 'lab-0420');
    await eventually(async () => /· 10 of 10000$/.test(await page.locator('.ota-sb-selcount').innerText()) || 'filtering', 5000, 'lab-04200..lab-04209');
    await page.fill('.ota-sb-f-text', '');
    await page.selectOption('.ota-sb-repo', { label: 'OTA repository' });
    await eventually(async () => {
      const text = await page.locator('.ota-sb-selcount').innerText();
      return /· 0 of 0$/.test(text) || text;
    }, 10000, 'back on the first repository');
  });

  it('uploads firmware by file picker and by drag and drop, with a progress bar', async () => {
    await view(page, 'firmware');
    await page.fill('.ota-sb-up-title', 'demo-app');
    await page.fill('.ota-sb-up-version', '1.1.0');
    await page.setInputFiles('.ota-sb-up-file', { name: 'demo-app-1.1.0.bin', mimeType: 'application/octet-stream', buffer: plan.firmware[0].image });
    await page.locator('.ota-sb-fw[data-firmware]').first().waitFor();
    assert.match(await page.locator('.ota-sb-fw').first().innerText(), /demo-app 1\.1\.0[\s\S]*24\.0 KiB[\s\S]*sha256/);
    assert.strictEqual(await page.locator('.ota-sb-up-progress > span').evaluate((e) => e.style.width), '100%');

    // Drag and drop: the file as the browser hands it over from the desktop.
    await page.fill('.ota-sb-up-version', '1.2.0');
    const bytes = [...demoImage('demo-app', '1.2.0', 24 * 1024)];
    const dt = await page.evaluateHandle((b) => {
      const d = new DataTransfer();
      d.items.add(new File([new Uint8Array(b)], 'demo-app-1.2.0.bin'));
      return d;
    }, bytes);
    await page.dispatchEvent('.ota-sb-upload', 'dragover', { dataTransfer: dt });
    await page.dispatchEvent('.ota-sb-upload', 'drop', { dataTransfer: dt });
    await eventually(async () => (await page.locator('.ota-sb-fw').count()) === 2 || (await page.locator('.ota-sb-fw').allInnerTexts()), 10000, 'two firmware listed');
    const stored = await api.call('GET', '/ota/firmware');
    assert.deepStrictEqual(stored.map((f) => f.version).sort(), ['1.1.0', '1.2.0']);
  });

  it('registers a device with its token shown once, and rotates it', async () => {
    await view(page, 'devices');
    await page.click('.ota-sb-register');
    await page.fill('.ota-sb-reg-id', 'bench-1');
    await page.selectOption('.ota-sb-reg-dialect', 'thingsboard');
    await page.fill('.ota-sb-reg-tags', 'bench');
    await page.click('.ota-sb-reg-ok');
    const first = (await page.locator('.ota-sb-token-value').innerText()).trim();
    assert.match(first, /^[A-Za-z0-9_-]{20}$/);
    await page.locator('.ota-sb-row[data-device="bench-1"]').waitFor();
    // The API never shows it again.
    const record = await api.device('bench-1');
    assert.ok(record.hasToken && !JSON.stringify(record).includes(first));
    await page.click('.ota-sb-token button');
    assert.strictEqual(await page.locator('.ota-sb-token-value').count(), 0, 'gone once hidden');

    await page.check('.ota-sb-row[data-device="bench-1"] input[type=checkbox]');
    await page.click('.ota-sb-rotate');
    await page.locator('.ota-sb-token-value').waitFor();
    const second = (await page.locator('.ota-sb-token-value').innerText()).trim();
    assert.notStrictEqual(second, first);
    await page.click('.ota-sb-token button');
    await page.uncheck('.ota-sb-row[data-device="bench-1"] input[type=checkbox]');
  });

  it('assigns firmware to a filtered selection and shows the simulated fleet reach 100 %', async () => {
    await registerDevices(api, plan);
    fleet = await startFleet({ broker: pipeline.deviceUrl, groups: plan.groups, retryDelayMs: 300 });
    await eventually(async () => (await page.locator('.ota-sb-spacer .ota-sb-row').count()) === plan.devices.length + 1 || 'rows', 10000, 'every device listed');
    await page.fill('.ota-sb-f-tag', 'demo');
    await eventually(async () => (await page.locator('.ota-sb-spacer .ota-sb-row').count()) === plan.devices.length || 'filtered', 5000, 'bench-1 filtered out');
    await page.check('.ota-sb-select-all');
    await page.selectOption('.ota-sb-assign-fw', { label: 'demo-app 1.1.0' });
    await page.click('.ota-sb-assign');
    await eventually(async () => {
      const states = await Promise.all(plan.devices.map((d) => rowState(page, d.id)));
      return states.every((s) => s && s.state === 'updated' && s.percent === 100 && !s.error) || states;
    }, 45000, 'every row updated at 100 %');
    await eventually(async () => /6 of 6 assigned devices updated \(100 %\)/.test(await page.locator('.ota-sb-summary-text').innerText()) || 'summary', 5000, 'summary at 100 %');
    assert.match(await page.locator('.ota-sb-row[data-device="tb-1"] .ota-sb-c-version').innerText(), /1\.1\.0/);
    await browser.shot(page, 'sidebar-devices.png', page.locator('#red-ui-sidebar'));
    // Firmware view: who runs what, and a refused delete with its reason.
    await view(page, 'firmware');
    const fw = page.locator('.ota-sb-fw', { hasText: 'demo-app 1.1.0' });
    assert.match(await fw.locator('.ota-sb-fw-use').innerText(), /^6 devices run it, 0 await it$/);
    await fw.locator('.ota-sb-delete').click();
    await fw.locator('.ota-sb-fw-why').waitFor();
    assert.match(await fw.locator('.ota-sb-fw-why').innerText(), /^demo-app 1\.1\.0 is assigned to 6 devices: unassign it first/);
    assert.ok(await api.call('GET', `/ota/firmware/${await fw.getAttribute('data-firmware')}`), 'still in the catalogue');
    await browser.shot(page, 'sidebar-firmware.png', page.locator('#red-ui-sidebar'));
  });

  it('pauses and resumes a rollout, with its groups and thresholds', async () => {
    const created = await api.call('POST', '/ota/rollouts', {
      name: 'to 1.2.0', firmware: { title: 'demo-app', version: '1.2.0' }, targets: { tag: 'demo' },
      plan: { groups: 2, rate: { perMinute: 1 } }, start: true,
    });
    await view(page, 'rollouts');
    const item = page.locator(`.ota-sb-rollout[data-rollout="${created.id}"]`);
    await item.waitFor();
    assert.strictEqual(await item.locator('.ota-sb-group').count(), 2);
    assert.match(await item.locator('.ota-sb-threshold').first().innerText(), /next at 100 % succeeded/);
    await item.locator('.ota-sb-pause').click();
    await page.locator(`.ota-sb-rollout[data-rollout="${created.id}"][data-state="paused"]`).waitFor();
    assert.strictEqual((await api.call('GET', `/ota/rollouts/${created.id}`)).state, 'paused');
    await item.locator('.ota-sb-resume').click();
    await page.locator(`.ota-sb-rollout[data-rollout="${created.id}"][data-state="running"]`).waitFor();
    await browser.shot(page, 'sidebar-rollouts.png', page.locator('#red-ui-sidebar'));
  });

  it('lets a read-only user see everything and change nothing', async () => {
    ro = await browser.page({ token: viewer });
    await openSidebar(ro, pipeline.red.url);
    await view(ro, 'devices');
    await ro.locator('.ota-sb-readonly').waitFor();
    await eventually(async () => (await ro.locator('.ota-sb-spacer .ota-sb-row').count()) === plan.devices.length + 1 || 'rows', 10000, 'devices shown');
    for (const sel of ['.ota-sb-register', '.ota-sb-assign', '.ota-sb-rotate']) assert.ok(await ro.locator(sel).isDisabled(), `${sel} disabled`);
    await view(ro, 'firmware');
    assert.ok(await ro.locator('.ota-sb-up-file').isDisabled(), 'no upload');
    assert.ok(await ro.locator('.ota-sb-delete').first().isDisabled(), 'no delete');
    await view(ro, 'rollouts');
    assert.ok(await ro.locator('.ota-sb-rollout .ota-sb-pause').first().isDisabled(), 'no pause');
    assert.ok(await ro.locator('.ota-sb-rollout .ota-sb-abort').first().isDisabled(), 'no abort');
    // And the API refuses what the buttons would do.
    const res = await fetch(`${pipeline.red.url}/ota/devices`, {
      method: 'POST',
      headers: { 'Content-Type': 'application/json', Authorization: `Bearer ${viewer.access_token}` },
      body: JSON.stringify({ id: 'sneaky', dialect: 'thingsboard', token: true }),
    });
    assert.strictEqual(res.status, 401);
  });

  it('node dialogs show only the fields of the chosen dialect, from one table', async () => {
    // In the read-only user's editor, opened after the pipeline was deployed (the admin's still
    // holds the flows it loaded first): a read-only user may open a dialog, not deploy it.
    const page = ro;
    const rows = () => page.evaluate(() => ['app', 'smingEncoding', 'product', 'customer', 'tagoChunkSize', 'checksumAlgorithm', 'tag']
      .filter((f) => $(`#node-input-${f}`).closest('.form-row').is(':visible')));
    await page.evaluate(() => RED.editor.edit(RED.nodes.filterNodes({ type: 'ota-assign' })[0]));
    await page.locator('#node-input-dialect').waitFor();
    assert.deepStrictEqual(await page.locator('#node-input-dialect option').evaluateAll((o) => o.map((x) => x.value)), ['', 'biotz', 'sming', 'tago', 'tasmota', 'tencent', 'thingsboard']);
    assert.deepStrictEqual(await rows(), ['app', 'smingEncoding', 'product', 'customer', 'tagoChunkSize', 'checksumAlgorithm', 'tag'], 'each device\'s own dialect: every field');
    await page.selectOption('#node-input-dialect', 'sming');
    assert.deepStrictEqual(await rows(), ['app', 'smingEncoding', 'tag']);
    await page.selectOption('#node-input-dialect', 'tencent');
    assert.deepStrictEqual(await rows(), ['product', 'tag']);
    await page.selectOption('#node-input-dialect', 'tasmota');
    assert.deepStrictEqual(await rows(), ['tag']);
    await page.click('#node-dialog-cancel');
    await page.locator('#node-input-dialect').waitFor({ state: 'detached' });
    // chunk-server offers the dialects whose devices fetch chunks over MQTT, and nothing else.
    await page.evaluate(() => RED.editor.edit(RED.nodes.filterNodes({ type: 'chunk-server' })[0]));
    await page.locator('#node-input-dialect').waitFor();
    assert.deepStrictEqual(await page.locator('#node-input-dialect option').evaluateAll((o) => o.map((x) => x.value)), ['', 'tago', 'thingsboard']);
    assert.strictEqual(await page.locator('#node-input-dialect').inputValue(), 'thingsboard', 'the saved value survives the table filling the select');
    await page.click('#node-dialog-cancel');
    await page.locator('#node-input-dialect').waitFor({ state: 'detached' });
  });

  it('logs no console error in any page', () => {
    assert.deepStrictEqual(browser.errors, []);
  });
});
