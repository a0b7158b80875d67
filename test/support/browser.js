'use strict';
// Headless Chromium (Debian's `chromium` package) driven by playwright-core, for the specs that
// use the real Node-RED editor. Where no Chromium exists the specs say so and are skipped, never
// passed: `skipUnlessBrowser(this)` in a `before`.
const fs = require('fs');
const path = require('path');

const CHROMIUM = process.env.CHROMIUM || '/usr/bin/chromium';
const ARGS = ['--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run',
  '--disable-background-networking', '--disable-component-update', '--disable-sync'];
/** Where the specs save what they saw (git-ignored); `npm run screenshots` points it at docs/images. */
const SHOTS = path.resolve(process.env.OTA_SCREENSHOTS || path.join(__dirname, '..', '..', '.screenshots'));

function missing() {
  if (!fs.existsSync(CHROMIUM)) return `no Chromium at ${CHROMIUM} (apt-get install -y chromium, or set CHROMIUM)`;
  try {
    require.resolve('playwright-core');
  } catch {
    return 'playwright-core is not installed (npm ci installs it)';
  }
  return undefined;
}

/** In a mocha `before` (function, not arrow): skips the suite, saying why, when no browser can run. */
function skipUnlessBrowser(ctx) {
  const why = missing();
  if (!why) return;
  console.log(`      SKIPPED (browser specs): ${why}`);
  ctx.skip();
}

/**
 * Chromium with a fresh profile. Every console error and page error
 * of every page is kept in `errors` (a spec asserts there are none).
 */
async function launch({ width = 1500, height = 900 } = {}) {
  const { chromium } = require('playwright-core');
  const errors = [];
  // playwright starts Chromium with a fresh --user-data-dir of its own (and removes it on close);
  // each context below is a separate profile in it (its own localStorage: its own login).
  const browser = await chromium.launch({ executablePath: CHROMIUM, headless: true, args: ARGS });
  const contexts = [];
  return {
    errors,
    async page({ token, countErrors = true } = {}) {
      const context = await browser.newContext({ viewport: { width, height } });
      contexts.push(context);
      if (token) {
        // What the editor's login keeps in localStorage: the same token, no login dialog.
        await context.addInitScript((t) => localStorage.setItem('auth-tokens', JSON.stringify(t)), token);
      }
      const page = await context.newPage();
      if (countErrors) {
        page.on('console', (m) => { if (m.type() === 'error') errors.push(`${m.text()} (${m.location().url || ''})`); });
        page.on('pageerror', (e) => errors.push(`page error: ${e.message}`));
      }
      return page;
    },
    async shot(page, name, locator) {
      fs.mkdirSync(SHOTS, { recursive: true });
      const file = path.join(SHOTS, name);
      if (locator) await locator.screenshot({ path: file });
      else await page.screenshot({ path: file });
      return file;
    },
    async close() {
      for (const c of contexts) await c.close().catch(() => {});
      await browser.close().catch(() => {});
    },
  };
}

module.exports = { skipUnlessBrowser, launch, SHOTS, CHROMIUM };
