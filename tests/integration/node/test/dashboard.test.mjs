// The admin dashboard in headless Chromium against a real wstrace after a
// scripted workload (users with tokens in a room, traced publishes): the
// page loads with no console error, the overview's totals match
// /api/stats, a known trace renders one waterfall bar per span, the
// connections filter finds a user and opens its page, the channels page
// lists the room; in a two-node cluster over a real redis-server, one
// node's waterfall shows the other node's fan-out span under its own
// broadcast. Screenshots go to $WSTRACE_ARTIFACTS when it is set.
import assert from 'node:assert/strict';
import { createHmac } from 'node:crypto';
import { existsSync, mkdirSync } from 'node:fs';
import http from 'node:http';
import { join } from 'node:path';
import { gunzipSync } from 'node:zlib';
import { after, before } from 'node:test';
import { chromium } from 'playwright-core';
import { Client, IO_TIMEOUT, haveRedis, startRedis, startServer, test, withTimeout } from '../lib/harness.mjs';

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

async function open(path, errors, port = srv.adminPort) {
  const page = await browser.newPage({ viewport: { width: 1400, height: 900 } });
  page.setDefaultTimeout(IO_TIMEOUT);
  page.on('pageerror', (e) => errors.push(e.message));
  page.on('console', (m) => { if (m.type() === 'error') errors.push(m.text()); });
  await page.goto(`http://127.0.0.1:${port}/${path}`);
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

test('in a cluster, the waterfall shows the other nodes\' fan-out spans of a broadcast',
  { skip: !haveRedis && 'redis-server is not installed' }, async () => {
    const redis = await startRedis();
    const common = ['--redis', redis.url, '--redis-prefix', `dash${process.pid}`, '--heartbeat-interval', '0'];
    const n1 = await startServer([...common, '--node-id', 'n1']);
    const n2 = await startServer([...common, '--node-id', 'n2']);
    const sub = await Client.connect(n2.url());
    const pub = await Client.connect(n1.url());
    try {
      assert.equal((await sub.request({ type: 'Subscribe', channel: 'feed', id: 1 })).type, 'Subscribed');
      await n1.waitStats((s) => s.cluster.link_up, 'n1 linked');
      await n2.waitStats((s) => s.cluster.link_up && s.cluster.redis_subscriptions >= 1, 'n2 subscribed in Redis');
      const traceId = 'c1a5c1a5c1a5c1a5c1a5c1a5c1a5c1a5';
      pub.send({ type: 'Message', channel: 'feed', content: 'x', traceparent: `00-${traceId}-00f067aa0ba902b7-01` });
      let m;
      do m = await sub.json(IO_TIMEOUT, 'the message on n2'); while (m.type !== 'Message');
      // n2's fan-out span is in n1's answer once n2 has ended it.
      const deadline = Date.now() + IO_TIMEOUT;
      let doc;
      for (;;) {
        doc = JSON.parse((await n1.adminGet(`/api/traces?trace_id=${traceId}`)).body);
        if (doc.spans.some((s) => s.node === 'n2' && s.name === 'websocket.fanout')) break;
        assert.ok(Date.now() < deadline, `n2's fan-out span in n1's answer: ${JSON.stringify(doc)}`);
        await new Promise((r) => setTimeout(r, 20));
      }
      const errors = [];
      const page = await open(`#/traces/${traceId}`, errors, n1.adminPort);
      await page.waitForSelector('body[data-ready="trace"]');
      assert.match(await page.textContent('#trace-nodes'), /from 2 nodes \(n1, n2\)/);
      const rows = await page.$$eval('#waterfall [data-span-id]', (rs) => rs.map((r) => ({
        id: r.dataset.spanId, name: r.querySelector('.span-name').firstChild.textContent,
        node: r.querySelector('.span-node')?.textContent, indent: parseFloat(r.querySelector('.span-name').style.paddingLeft),
      })));
      assert.deepEqual(rows.map((r) => r.id).sort(), doc.spans.map((s) => s.span_id).sort());
      const broadcast = rows.findIndex((r) => r.name === 'websocket.broadcast' && r.node === 'n1');
      const remote = rows.findIndex((r) => r.name === 'websocket.fanout' && r.node === 'n2');
      assert.ok(broadcast >= 0 && remote > broadcast, JSON.stringify(rows));
      assert.ok(rows[remote].indent > rows[broadcast].indent, 'n2\'s fan-out nested under n1\'s broadcast');
      await shot(page, 'trace-cluster');
      await page.close();
      assert.deepEqual(errors, []);
    } finally {
      await sub.close().catch(() => {});
      await pub.close().catch(() => {});
      await n2.stop();
      await n1.stop();
      redis.proc.kill('SIGKILL');
    }
  });

function get(port, path, headers = {}) {
  return new Promise((resolve, reject) => {
    const req = http.get({ host: '127.0.0.1', port, path, headers, agent: false }, (res) => {
      const chunks = [];
      res.on('data', (c) => chunks.push(c));
      res.on('end', () => resolve({ status: res.statusCode, headers: res.headers, body: Buffer.concat(chunks) }));
    });
    req.setTimeout(IO_TIMEOUT, () => req.destroy(new Error(`GET ${path} timed out`)));
    req.on('error', reject);
  });
}

test('the page\'s files come gzip-compressed to a browser and revalidate with 304', async () => {
  const port = srv.adminPort;
  for (const path of ['/', '/app.js', '/style.css', '/chart.js']) {
    const plain = await get(port, path);
    assert.equal(plain.status, 200);
    assert.equal(plain.headers['content-encoding'], undefined, path);
    const gz = await get(port, path, { 'accept-encoding': 'gzip, deflate, br' });
    assert.equal(gz.headers['content-encoding'], 'gzip', path);
    assert.equal(gz.headers.vary, 'Accept-Encoding');
    assert.deepEqual(gunzipSync(gz.body), plain.body, path);
    assert.equal(gz.headers.etag, plain.headers.etag);
    const again = await get(port, path, { 'if-none-match': plain.headers.etag, 'accept-encoding': 'gzip' });
    assert.equal(again.status, 304, path);
    assert.equal(again.body.length, 0);
    const refused = await get(port, path, { 'accept-encoding': 'gzip;q=0, identity' });
    assert.equal(refused.headers['content-encoding'], undefined, path);
  }
  // What Chromium loads: the page's weight on the wire, and on a reload.
  const errors = [];
  const page = await open('', errors);
  await page.waitForSelector('body[data-ready="overview"]');
  const weight = () => page.evaluate(() => performance.getEntriesByType('navigation').concat(
    performance.getEntriesByType('resource').filter((r) => !r.name.includes('/api/')))
    .reduce((a, r) => ({ wire: a.wire + r.encodedBodySize, decoded: a.decoded + r.decodedBodySize }), { wire: 0, decoded: 0 }));
  const first = await weight();
  assert.ok(first.wire < first.decoded / 2, JSON.stringify(first));
  console.log(`# dashboard page weight: ${(first.wire / 1024).toFixed(1)} KB on the wire (gzip), ` +
    `${(first.decoded / 1024).toFixed(1)} KB uncompressed`);
  await page.close();
  assert.deepEqual(errors, []);
});
