// Holds a dashboard page (the overview unless --hash says, e.g.
// '#/connections') open in headless Chromium (for
// dashboard-cost.sh): prints "READY" once the live stream is up, then keeps
// the page until SIGTERM or --seconds pass, and prints the samples it got.
//
//   node bench/scripts/dashboard-page.mjs --url http://127.0.0.1:9464/ [--hash '#/channels'] [--seconds 60]
import { createRequire } from 'node:module';

const require = createRequire(new URL('../../tests/integration/node/package.json', import.meta.url));
const { chromium } = require('playwright-core');

const arg = (name, dflt) => {
  const i = process.argv.indexOf(`--${name}`);
  return i > 0 ? process.argv[i + 1] : dflt;
};
const url = arg('url');
const seconds = Number(arg('seconds', '60'));
if (!url) {
  console.error('usage: dashboard-page.mjs --url http://HOST:ADMIN_PORT/ [--seconds N]');
  process.exit(2);
}
const browser = await chromium.launch({
  executablePath: process.env.WSTRACE_CHROMIUM || '/usr/bin/chromium', headless: true, args: ['--no-sandbox'],
});
const page = await browser.newPage({ viewport: { width: 1400, height: 900 } });
page.setDefaultTimeout(20000);
await page.goto(url + arg('hash', ''));
await page.waitForSelector('#live.up');
console.log('READY');
const done = async () => {
  const n = await page.evaluate(() => window.dashboard.samples()).catch(() => -1);
  console.log(`samples ${n}`);
  await browser.close();
  process.exit(0);
};
process.on('SIGTERM', done);
setTimeout(done, seconds * 1000);
