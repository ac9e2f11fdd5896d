// wss:// from headless Chromium (Debian's, driven by playwright-core): the
// browser's own WebSocket and TLS stacks against the server. A certificate
// made at test time with the openssl command line is trusted by its public
// key only (--ignore-certificate-errors-spki-list), so the handshake is real
// TLS with a certificate Chromium checks. What a browser can see is checked
// from the page: pub/sub with offsets and a Published reply, and the Close
// 1008 reason of a refused token (a browser cannot read the status of a
// refused upgrade, so the reason is all it has).
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { existsSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before } from 'node:test';
import { chromium } from 'playwright-core';
import { IO_TIMEOUT, startServer, test, withTimeout } from '../lib/harness.mjs';

const CHROMIUM = process.env.WSTRACE_CHROMIUM || '/usr/bin/chromium';
const dir = mkdtempSync(join(tmpdir(), 'wstrace-browser-'));
const run = (...args) => execFileSync('openssl', args, { cwd: dir, stdio: 'pipe' });
run('req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256', '-nodes',
  '-keyout', 'server.key', '-out', 'server.pem', '-days', '2', '-subj', '/CN=localhost',
  '-addext', 'subjectAltName=DNS:localhost,IP:127.0.0.1');
// base64(SHA-256(SubjectPublicKeyInfo)): what Chromium's SPKI list matches.
const spkiDer = execFileSync('openssl', ['pkey', '-pubout', '-outform', 'DER', '-in',
  join(dir, 'server.key')]);
const spki = execFileSync('openssl', ['dgst', '-sha256', '-binary'], { input: spkiDer })
  .toString('base64');
const tlsArgs = ['--tls-cert', join(dir, 'server.pem'), '--tls-key', join(dir, 'server.key')];

let browser;
before(async () => {
  assert.ok(existsSync(CHROMIUM),
    `no Chromium at ${CHROMIUM}: run scripts/setup.sh --test (or set WSTRACE_CHROMIUM)`);
  browser = await withTimeout(chromium.launch({
    executablePath: CHROMIUM,
    headless: true,
    args: ['--no-sandbox', `--ignore-certificate-errors-spki-list=${spki}`],
  }), IO_TIMEOUT, 'Chromium to start');
});
after(async () => {
  if (browser) await browser.close();
  rmSync(dir, { recursive: true, force: true });
});

// Runs `fn(url, ioTimeout)` in a fresh page and returns what it resolves to.
async function inPage(fn, url) {
  const page = await browser.newPage();
  try {
    return await withTimeout(page.evaluate(fn, [url, IO_TIMEOUT]), IO_TIMEOUT * 2,
      'the page script');
  } finally {
    await page.close();
  }
}

// Page side: a socket whose messages can be awaited one by one.
const pagePubSub = async ([url, ioTimeout]) => {
  const open = (u) => new Promise((resolve, reject) => {
    const ws = new WebSocket(u);
    const queue = [];
    const waiting = [];
    ws.onmessage = (e) => {
      const m = JSON.parse(e.data);
      if (waiting.length) waiting.shift()(m); else queue.push(m);
    };
    ws.next = () => queue.length ? Promise.resolve(queue.shift()) : new Promise((res, rej) => {
      waiting.push(res);
      setTimeout(() => rej(new Error('no message within the bound')), ioTimeout);
    });
    ws.onopen = () => resolve(ws);
    ws.onerror = () => reject(new Error(`could not open ${u}`));
  });
  const sub = await open(url);
  const pub = await open(url);
  sub.send(JSON.stringify({ type: 'Subscribe', channel: 'browser-room', id: 1 }));
  const subscribed = await sub.next();
  const got = [];
  const published = [];
  for (let i = 0; i < 20; i++) {
    pub.send(JSON.stringify({ type: 'Message', channel: 'browser-room', content: `m${i}`,
      id: `p${i}` }));
  }
  for (let i = 0; i < 20; i++) published.push(await pub.next());
  for (let i = 0; i < 20; i++) got.push(await sub.next());
  const closed = new Promise((res) => { sub.onclose = (e) => res(e.code); });
  sub.close(1000);
  pub.close(1000);
  return { subscribed, got, published, closeCode: await closed };
};

test('pub/sub over wss from Chromium', async () => {
  const srv = await startServer(tlsArgs, { threads: 2 });
  try {
    const r = await inPage(pagePubSub, `wss://localhost:${srv.port}/ws`);
    assert.equal(r.subscribed.type, 'Subscribed', JSON.stringify(r.subscribed));
    assert.equal(r.subscribed.channel, 'browser-room');
    assert.equal(r.subscribed.id, 1);
    const start = r.subscribed.offset;
    r.got.forEach((m, i) => {
      assert.deepEqual([m.type, m.channel, m.content, m.offset],
        ['Message', 'browser-room', `m${i}`, start + 1 + i]);
    });
    r.published.forEach((p, i) => {
      assert.deepEqual([p.type, p.id, p.epoch, p.offset],
        ['Published', `p${i}`, r.subscribed.epoch, start + 1 + i]);
    });
    assert.equal(r.closeCode, 1000);
    // Both of the page's sockets were TLS handshakes the server completed.
    assert.equal(await srv.metric('websocket_tls_handshakes_total', { outcome: 'ok' }), 2);
  } finally {
    assert.equal(await srv.stop(), 0, srv.stderr());
  }
});

test('a refused token is a Close 1008 whose reason the page can read', async () => {
  const srv = await startServer([...tlsArgs, '--auth-secret', 'browser-test-secret']);
  try {
    const r = await inPage(([url, ioTimeout]) => new Promise((resolve, reject) => {
      const ws = new WebSocket(url);
      const timer = setTimeout(() => reject(new Error('no close within the bound')), ioTimeout);
      ws.onclose = (e) => { clearTimeout(timer); resolve({ code: e.code, reason: e.reason }); };
    }), `wss://localhost:${srv.port}/ws?token=not.a.token`);
    assert.equal(r.code, 1008, JSON.stringify(r));
    assert.match(r.reason, /^token refused: /);
    assert.equal(await srv.metric('websocket_auth_failures_total', { reason: 'malformed' }), 1);
  } finally {
    assert.equal(await srv.stop(), 0, srv.stderr());
  }
});
