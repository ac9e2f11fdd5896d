// The admin dashboard in headless Chromium against a real wstrace after a
// scripted workload (users with tokens in a room, traced publishes): the
// page loads with no console error, the overview's totals match
// /api/stats, a known trace renders one waterfall bar per span, the
// connections filter finds a user and opens its page, the channels page
// lists the room. Screenshots go to $WSTRACE_ARTIFACTS when it is set.
import assert from 'node:assert/strict';
import { createHmac } from 'node:crypto';
import { existsSync, mkdirSync } from 'node:fs';
import { join } from 'node:path';
import { after, before } from 'node:test';
import { chromium } from 'playwright-core';
import { Client, IO_TIMEOUT, startServer, test, withTimeout } from '../lib/harness.mjs';

const CHROMIUM = process.env.WSTRACE_CHROMIUM || '/usr/bin/chromium';
const artifacts = process.env.WSTRACE_ARTIFACTS;
const SECRET = 'dashboard-secret';

function token(sub) {
  const b64 = (o) => Buffer.from(JSON.stringify(o)).toString('base64url');
  const body = `${b64({ alg: 'HS256', typ: 'JWT' })}.${b64({ sub, exp: Math.floor(Date.now() / 1000) + 3600 })}`;
  return `${body}.${createHmac('sha256', SECRET).update(body).digest('base64url')}`;
}

let browser;
let srv;
const clients = [];
const TRACE_ID = 'da5b0a4dda5b0a4dda5b0a4dda5b0a4d';

before(async () => {
  assert.ok(existsSync(CHROMIUM), `no Chromium at ${CHROMIUM}: run scripts/setup.sh --test (or set WSTRACE_CHROMIUM)`);
  srv = await startServer(['--auth-secret', SECRET, '--trace-buffer', '4096', '--heartbeat-interval', '0']);
  for (const user of ['alice', 'bob', 'carol']) {
    const c = await Client.connect(srv.url(`/ws?token=${token(user)}`));
    const r = await c.request({ type: 'Subscribe', channel: 'room:1', id: 1 });
    assert.equal(r.type, 'Subscribed');
    clients.push(c);
  }
  // 20 publishes by alice, the first with a traceparent we know.
  for (let i = 0; i < 20; i++) {
    const m = { type: 'Message', channel: 'room:1', content: `m${i}`, id: 100 + i };
    if (i === 0) m.traceparent = `00-${TRACE_ID}-00f067aa0ba902b7-01`;
    clients[0].send(m);
  }
  for (const c of clients) {
    let seen = 0;
    while (seen < 20) {
      const m = await c.json(IO_TIMEOUT, 'the room messages');
      if (m.type === 'Message') seen++;
    }
  }
  browser = await withTimeout(chromium.launch({ executablePath: CHROMIUM, headless: true, args: ['--no-sandbox'] }),
    IO_TIMEOUT, 'Chromium to start');
});
after(async () => {
  if (browser) await browser.close();
  for (const c of clients) await c.close().catch(() => {});
  if (srv) await srv.stop();
});

async function open(path, errors) {
  const page = await browser.newPage({ viewport: { width: 1400, height: 900 } });
  page.setDefaultTimeout(IO_TIMEOUT);
  page.on('pageerror', (e) => errors.push(e.message));
  page.on('console', (m) => { if (m.type() === 'error') errors.push(m.text()); });
  await page.goto(`http://127.0.0.1:${srv.adminPort}/${path}`);
  return page;
}

const shot = async (page, name) => {
  if (!artifacts) return;
  mkdirSync(artifacts, { recursive: true });
  await page.screenshot({ path: join(artifacts, `dashboard-${name}.png`), fullPage: true });
};

test('the overview loads without an error and its totals match /api/stats', async () => {
  // A sample that ends after the workload holds all of it.
  const quietAt = Date.now();
  await srv.waitStats(() => true);
  const deadline = Date.now() + IO_TIMEOUT;
  for (;;) {
    const j = JSON.parse((await srv.adminGet('/api/samples')).body);
    if (j.samples.length && j.samples.at(-1).t > quietAt + 50) break;
    assert.ok(Date.now() < deadline, 'a sample after the workload');
    await new Promise((r) => setTimeout(r, 50));
  }
  const stats = await srv.stats();
  const errors = [];
  const page = await open('', errors);
  await page.waitForSelector('body[data-ready="overview"]');
  await page.waitForSelector('#live.up');
  const num = (n) => n.toLocaleString('en-US');
  await page.waitForFunction(([out, inn]) => document.querySelector('[data-stat="messages_out"]')?.textContent === out
    && document.querySelector('[data-stat="messages_in"]')?.textContent === inn,
  [num(stats.messages.sent_total), num(stats.messages.received_total)]);
  assert.equal(await page.textContent('[data-stat="connections"]'), String(stats.connections.active));
  assert.equal(await page.textContent('[data-stat="drops"]'), '0');
  assert.equal(await page.locator('[data-chart] canvas').count(), 8);
  // Live: new samples arrive over the event stream and are appended.
  const n0 = await page.evaluate(() => window.dashboard.samples());
  await page.waitForFunction((n) => window.dashboard.samples() >= n + 2, n0);
  await shot(page, 'overview');
  await page.close();
  assert.deepEqual(errors, []);
});

test('a known trace renders one waterfall bar per span, the fan-out included', async () => {
  const spans = JSON.parse((await srv.adminGet(`/api/traces?trace_id=${TRACE_ID}&limit=1000`)).body).spans;
  const names = spans.map((s) => s.name);
  for (const n of ['websocket.message.handle', 'websocket.broadcast', 'websocket.fanout']) assert.ok(names.includes(n), `${n} in ${names}`);
  const errors = [];
  const page = await open(`#/traces/${TRACE_ID}`, errors);
  await page.waitForSelector('body[data-ready="trace"]');
  const bars = await page.$$eval('#waterfall [data-span-id]', (rows) => rows.map((r) => r.dataset.spanId));
  assert.deepEqual(bars.sort(), spans.map((s) => s.span_id).sort());
  // Parents before children: the handle span's row comes before its broadcast's.
  const order = await page.$$eval('#waterfall [data-span-id] .span-name', (n) => n.map((x) => x.textContent));
  assert.ok(order.indexOf('websocket.message.handle') < order.indexOf('websocket.broadcast'));
  const fanout = spans.find((s) => s.name === 'websocket.fanout');
  await page.click(`[data-span-id="${fanout.span_id}"]`);
  const detail = await page.textContent(`[data-span-id="${fanout.span_id}"] .span-detail`);
  assert.match(detail, /websocket\.fanout\.recipients = 3/);
  await shot(page, 'trace');
  // The traces list has it, and filtering by channel keeps it.
  await page.goto(`http://127.0.0.1:${srv.adminPort}/#/traces?channel=room:1`);
  await page.waitForSelector(`body[data-ready="traces"] [data-trace="${TRACE_ID}"]`);
  await page.close();
  assert.deepEqual(errors, []);
});

test('the connections filter finds a user and opens the connection with its trace link', async () => {
  const errors = [];
  const page = await open('#/connections', errors);
  await page.waitForSelector('body[data-ready="connections"]');
  assert.equal(await page.locator('#connections tbody tr').count(), 3);
  await page.fill('input[name=user]', 'bob');
  await page.press('input[name=user]', 'Enter');
  await page.waitForFunction(() => document.body.dataset.ready === 'connections' && location.hash.includes('user=bob'));
  const rows = await page.$$eval('#connections tbody tr', (trs) => trs.map((tr) => tr.children[1].textContent));
  assert.deepEqual(rows, ['bob']);
  const { connections } = JSON.parse((await srv.adminGet('/api/connections?user=bob')).body);
  await page.click('#connections tbody tr');
  await page.waitForSelector('body[data-ready="connection"]');
  assert.equal(await page.getAttribute('#conn-trace', 'href'), `#/traces/${connections[0].trace_id}`);
  await shot(page, 'connection');
  await page.goto(`http://127.0.0.1:${srv.adminPort}/#/channels`);
  await page.waitForSelector('body[data-ready="channels"] [data-channel="room:1"]');
  assert.equal(await page.textContent('[data-channel="room:1"] td:nth-child(2)'), '3');
  await page.close();
  assert.deepEqual(errors, []);
});
