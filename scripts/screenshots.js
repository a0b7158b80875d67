'use strict';
// Takes the README's screenshots: the "Full pipeline" example deployed in stock Node-RED, after a
// simulated fleet updated, in Debian's headless Chromium (apt install chromium); then the OTA
// sidebar's, which its browser spec takes as it goes (test/e2e/sidebar.spec.js, told where to
// save them with OTA_SCREENSHOTS).
//   npm run screenshots   (= node scripts/screenshots.js [outDir=docs/images])
const { execFileSync } = require('child_process');
const fs = require('fs');
const os = require('os');
const path = require('path');
const { startPipeline, fleetPlan, registerDevices, rollOut } = require('./pipeline');
const { startFleet } = require('../dist/sim');

const CHROMIUM = process.env.CHROMIUM || '/usr/bin/chromium';

function shoot(url, file, size = '1400,820') {
  const profile = fs.mkdtempSync(path.join(os.tmpdir(), 'mqtt-ota-chromium-'));
  try {
    execFileSync(CHROMIUM, [
      '--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run',
      '--disable-background-networking', '--disable-component-update', '--disable-sync',
      `--user-data-dir=${profile}`, '--hide-scrollbars', `--window-size=${size}`,
      // The editor builds itself with scripts after load: give it time before the picture.
      '--virtual-time-budget=15000', `--screenshot=${file}`, url,
    ], { stdio: 'ignore', timeout: 60000 });
  } finally {
    fs.rmSync(profile, { recursive: true, force: true });
  }
}

async function main() {
  const out = path.resolve(process.argv[2] || path.join(__dirname, '..', 'docs', 'images'));
  fs.mkdirSync(out, { recursive: true });
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'mqtt-ota-shots-'));
  const pipeline = await startPipeline({ userDir: dir });
  let fleet;
  try {
    const plan = fleetPlan({ count: 2, size: 64 * 1024 });
    await registerDevices(pipeline.api, plan);
    fleet = await startFleet({ broker: pipeline.deviceUrl, groups: plan.groups, retryDelayMs: 300 });
    await rollOut(pipeline.api, plan);
    await fleet.waitAllUpdated(60000);
    await new Promise((r) => setTimeout(r, 2000)); // statuses settle (at most one a second)
    const flows = JSON.parse(fs.readFileSync(path.join(dir, 'flows.json'), 'utf8'));
    const tab = flows.find((n) => n.type === 'tab');
    const gw = flows.find((n) => n.type === 'ota-gateway');
    shoot(`${pipeline.red.url}/#flow/${tab.id}`, path.join(out, 'full-pipeline.png'), '1760,760');
    shoot(`${pipeline.red.url}/#node/${gw.id}/edit`, path.join(out, 'gateway-settings.png'), '1400,820');
    execFileSync(process.execPath, [require.resolve('mocha/bin/mocha.js'), '--no-config', '--timeout', '90000', path.join(__dirname, '..', 'test', 'e2e', 'sidebar.spec.js')], {
      stdio: 'inherit',
      env: { ...process.env, OTA_SCREENSHOTS: out },
    });
    console.log(`written to ${out}`);
  } finally {
    if (fleet) await fleet.stop();
    await pipeline.stop();
    fs.rmSync(dir, { recursive: true, force: true });
  }
}

main().catch((err) => {
  console.error(err);
  process.exit(1);
});
