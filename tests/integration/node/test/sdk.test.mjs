// The JavaScript SDK (clients/js, built by scripts/setup.sh) against a real
// wstrace, with `ws` as its WebSocket: the server drops the subscriber's
// connection (server API disconnect) or a cluster node is killed and
// restarted while messages are published, and the handler must see every
// message exactly once, in order; when history cannot reach back, a `gap`
// event names exactly the positions lost.
import assert from 'node:assert/strict';
import { createHmac } from 'node:crypto';
import { existsSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after } from 'node:test';
import WebSocket from 'ws';
import { IO_TIMEOUT, WstraceServer, freePort, haveRedis, startRedis, startServer, test, withTimeout } from '../lib/harness.mjs';

const SDK = new URL('../../../../clients/js/dist/index.js', import.meta.url);
assert.ok(existsSync(SDK), 'clients/js is not built: run scripts/setup.sh --test (or npm ci && npm run build in clients/js)');
const { Client } = await import(SDK);

const dir = mkdtempSync(join(tmpdir(), 'wstrace-sdk-'));
after(() => rmSync(dir, { recursive: true, force: true }));
const config = (name, text) => {
  const p = join(dir, name);
  writeFileSync(p, text);
  return p;
};
const RULES = config('rules.toml', `
[[channel]]
match = "feed:*"
history_size = 10000
history_ttl = "10m"

[[channel]]
match = "short:*"
history_size = 10
history_ttl = "10m"
`);

const sdkOptions = { WebSocket, minReconnectDelay: 20, maxReconnectDelay: 200, timeout: IO_TIMEOUT };

// Resolves when `pred()` holds, checked after each event of `emitterOn`.
function until(pred, what, subscribeTo) {
  return withTimeout(new Promise((resolve) => {
    if (pred()) return resolve();
    const off = subscribeTo(() => { if (pred()) { off(); resolve(); } });
  }), IO_TIMEOUT, what);
}

// A handler that records, and lets the test await a count.
function recorder() {
  const got = [];
  const listeners = new Set();
  const handler = (m) => { got.push(m); for (const l of listeners) l(); };
  const count = (n) => until(() => got.length >= n, () => `${n} messages (got ${got.length})`,
    (fn) => { listeners.add(fn); return () => listeners.delete(fn); });
  return { got, handler, count };
}

function checkExactlyOnce(got, n, channel) {
  assert.equal(got.length, n, `delivered ${got.length} of ${n}`);
  got.forEach((m, i) => {
    assert.equal(m.channel, channel);
    assert.equal(m.offset, i + 1, `message #${i} has offset ${m.offset}`);
    assert.equal(m.content, `msg-${i + 1}`, `message at offset ${m.offset}`);
  });
}

// Publishes msg-1..msg-N with up to `window` unanswered; `at(k)` runs (and is
// awaited) when k messages have been answered, k in `marks`.
async function publishAll(pub, channel, n, { window = 50, marks = [], at = async () => {} } = {}) {
  let next = 1;
  let answered = 0;
  const todo = new Set(marks);
  while (answered < n) {
    const batch = [];
    while (next <= n && batch.length < window) batch.push(pub.publish(channel, `msg-${next++}`));
    const results = await Promise.all(batch);
    for (const r of results) assert.equal(r.offset, ++answered);
    for (const k of [...todo]) {
      if (answered >= k) {
        todo.delete(k);
        await at(k);
      }
    }
  }
}

// The connection id of the one subscriber of `channel` (waiting, bounded,
// while it is still reconnecting after the previous drop).
async function connectionOf(srv, channel) {
  const deadline = Date.now() + IO_TIMEOUT;
  for (;;) {
    const r = await srv.adminGet(`/api/connections?channel=${encodeURIComponent(channel)}`);
    const list = JSON.parse(r.body).connections;
    if (list.length === 1) return list[0].id;
    assert.ok(list.length === 0, `one subscriber of ${channel}: ${r.body}`);
    if (Date.now() > deadline) throw new Error(`no subscriber of ${channel} within ${IO_TIMEOUT} ms`);
    await new Promise((res) => setTimeout(res, 10));
  }
}

test('the server drops the subscriber five times while 3000 messages are published: each is handled once, in order', async () => {
  const srv = await startServer(['--config', RULES, '--api', '127.0.0.1:0']);
  const sub = new Client(srv.url(), sdkOptions);
  const pub = new Client(srv.url(), sdkOptions);
  try {
    const rec = recorder();
    const gaps = [];
    const s = sub.subscribe('feed:1', rec.handler);
    s.on('gap', (g) => gaps.push(g));
    await withTimeout(s.ready, IO_TIMEOUT, 'Subscribed');
    const N = 3000;
    const marks = [500, 1000, 1500, 2000, 2500];
    await publishAll(pub, 'feed:1', N, {
      marks,
      at: async () => {
        const id = await connectionOf(srv, 'feed:1');
        const r = await srv.api('disconnect', { connection_id: id, code: 4000, reason: 'test kill' });
        assert.equal(r.disconnected, 1);
      },
    });
    await rec.count(N);
    checkExactlyOnce(rec.got, N, 'feed:1');
    assert.deepEqual(gaps, []);
    assert.equal(sub.connects, marks.length + 1, 'one reconnect per drop');
    assert.equal(s.stats.subscribes, marks.length + 1);
    console.log(`# sdk reconnect (server drops): published ${N}, delivered ${rec.got.length}, ` +
      `gaps ${gaps.length}, duplicates dropped ${s.stats.duplicates}, reconnects ${sub.connects - 1}`);
  } finally {
    sub.close();
    pub.close();
    assert.equal(await srv.stop(), 0);
  }
});

test('when the history cannot reach back, the gap event names exactly the positions lost', async () => {
  const srv = await startServer(['--config', RULES, '--api', '127.0.0.1:0']);
  // getToken gates the reconnect (the server has no auth and ignores the token).
  let release;
  let asked;
  let calls = 0;
  const gate = new Promise((r) => { release = r; });
  const askedAgain = new Promise((r) => { asked = r; });
  const getToken = () => {
    if (++calls === 1) return 'first';
    asked();
    return gate.then(() => 'again');
  };
  const sub = new Client(srv.url(), { ...sdkOptions, getToken });
  const pub = new Client(srv.url(), sdkOptions);
  try {
    const rec = recorder();
    const gaps = [];
    const s = sub.subscribe('short:1', rec.handler);
    s.on('gap', (g) => gaps.push(g));
    await withTimeout(s.ready, IO_TIMEOUT, 'Subscribed');
    await publishAll(pub, 'short:1', 5);
    await rec.count(5);
    await srv.api('disconnect', { connection_id: await connectionOf(srv, 'short:1') });
    await withTimeout(askedAgain, IO_TIMEOUT, 'the reconnect to ask getToken');
    for (let i = 6; i <= 55; i++) assert.equal((await pub.publish('short:1', `msg-${i}`)).offset, i);
    const gapSeen = until(() => gaps.length === 1, 'the gap event', (fn) => s.on('gap', fn));
    release();
    await gapSeen;
    assert.deepEqual(gaps[0], { channel: 'short:1', epoch: s.position.epoch, from: 6, to: 55, cause: 'recovery' });
    for (let i = 56; i <= 60; i++) await pub.publish('short:1', `msg-${i}`);
    await rec.count(10);
    assert.deepEqual(rec.got.map((m) => m.offset), [1, 2, 3, 4, 5, 56, 57, 58, 59, 60]);
    assert.equal(s.stats.lost + rec.got.length, 60, 'delivered + reported lost = published');
  } finally {
    sub.close();
    pub.close();
    assert.equal(await srv.stop(), 0);
  }
});

// --- tokens ----------------------------------------------------------------

function hs256(claims, secret) {
  const b64 = (o) => Buffer.from(JSON.stringify(o)).toString('base64url');
  const body = `${b64({ alg: 'HS256', typ: 'JWT' })}.${b64(claims)}`;
  return `${body}.${createHmac('sha256', secret).update(body).digest('base64url')}`;
}

test("the server's Refresh is answered with getToken's token and the connection stays", async () => {
  const secret = 'sdk-secret';
  const srv = await startServer(['--config', RULES, '--auth-secret', secret, '--auth-refresh-before', '3s',
    '--auth-leeway', '0s']);
  const now = () => Math.floor(Date.now() / 1000);
  const issued = [];
  // The first token expires in 4 s: the server asks for a new one after about 1 s.
  const getToken = async () => {
    const t = hs256({ sub: 'ann', exp: now() + (issued.length ? 600 : 4) }, secret);
    issued.push(t);
    return t;
  };
  const client = new Client(srv.url(), { ...sdkOptions, getToken });
  try {
    const rec = recorder();
    const s = client.subscribe('feed:tok', rec.handler);
    await withTimeout(s.ready, IO_TIMEOUT, 'Subscribed with the first token');
    const refreshed = await withTimeout(new Promise((r) => client.once('refreshed', r)), IO_TIMEOUT, 'Refreshed');
    assert.ok(refreshed > now() + 500, `the new expiry (${refreshed}) is the second token's`);
    assert.equal(issued.length, 2);
    // Past the first token's expiry the same connection still works.
    await until(() => now() > JSON.parse(Buffer.from(issued[0].split('.')[1], 'base64url')).exp, 'the first token to expire',
      (fn) => { const t = setInterval(fn, 100); return () => clearInterval(t); });
    assert.equal((await client.publish('feed:tok', 'msg-1')).offset, 1);
    await rec.count(1);
    assert.equal(client.connects, 1, 'no reconnect');
    assert.equal(client.state, 'connected');
  } finally {
    client.close();
    assert.equal(await srv.stop(), 0);
  }
});

// --- a cluster node restarted ------------------------------------------


test('a cluster node killed and restarted under its subscriber: every message once, in order, from Redis history',
  { skip: !haveRedis && 'redis-server is not installed' }, async () => {
    const redis = await startRedis();
    const portB = await freePort();
    const common = ['--config', RULES, '--redis', redis.url, '--redis-prefix', `sdk${process.pid}`];
    const a = await startServer([...common, '--node-id', 'a']);
    const argsB = [...common, '--node-id', 'b', '--listen', `127.0.0.1:${portB}`];
    let b = await new WstraceServer(argsB).start();
    const sub = new Client(`ws://127.0.0.1:${portB}/ws`, sdkOptions);
    const pub = new Client(a.url(), sdkOptions);
    try {
      const rec = recorder();
      const gaps = [];
      const s = sub.subscribe('feed:c', rec.handler);
      s.on('gap', (g) => gaps.push(g));
      await withTimeout(s.ready, IO_TIMEOUT, 'Subscribed');
      const N = 2000;
      // Publishing goes on through node A while B is down and starting again.
      let restarting;
      let publishedWhileDown = 0;
      await publishAll(pub, 'feed:c', N, {
        marks: [700],
        at: async () => {
          b.signal('SIGKILL');
          restarting = (async () => {
            await b.waitExit(IO_TIMEOUT);
            const fresh = await new WstraceServer(argsB).start();
            b = fresh;
            publishedWhileDown = rec.got.length ? (await pub.history('feed:c', { limit: 1 })).offset - 700 : 0;
          })();
        },
      });
      await withTimeout(restarting, IO_TIMEOUT * 2, 'node B to restart');
      await rec.count(N);
      checkExactlyOnce(rec.got, N, 'feed:c');
      assert.deepEqual(gaps, []);
      assert.ok(sub.connects >= 2, 'the subscriber reconnected');
      console.log(`# sdk reconnect (node restart): published ${N}, delivered ${rec.got.length}, ` +
        `gaps ${gaps.length}, duplicates dropped ${s.stats.duplicates}, connection attempts ${sub.connects}, ` +
        `published while B was down ~${publishedWhileDown}`);
    } finally {
      sub.close();
      pub.close();
      await b.stop();
      await a.stop();
      redis.proc.kill('SIGKILL');
    }
  });
