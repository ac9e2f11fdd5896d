// permessage-deflate negotiated by the ws client (RFC 7692).
import assert from 'node:assert/strict';
import crypto from 'node:crypto';
import { Client, Positions, startServer, test } from '../lib/harness.mjs';

function bigText(n, seed = 0) {
  const words = ['lorem', 'ipsum', 'dolor', 'sit', 'amet', 'consectetur', 'adipiscing'];
  let s = '';
  for (let i = seed; s.length < n; i++) s += `${words[(i * 5 + (i >> 2)) % words.length]}${i % 89} `;
  return s.slice(0, n);
}

function params(header) {
  assert.ok(header, 'no Sec-WebSocket-Extensions in the response');
  const [name, ...rest] = header.split(',')[0].split(';').map((s) => s.trim());
  assert.equal(name, 'permessage-deflate');
  return Object.fromEntries(rest.map((p) => { const [k, v] = p.split('='); return [k.trim(), v ?? true]; }));
}

test('ws negotiates permessage-deflate; large messages arrive intact and compressed', async () => {
  const srv = await startServer(['--compression', 'on'], { threads: 2 });
  try {
    const sub = await Client.connect(srv.url(), { perMessageDeflate: true });
    const pub = await Client.connect(srv.url(), { perMessageDeflate: true });
    for (const c of [sub, pub]) {
      assert.match(c.ws.extensions, /permessage-deflate/);
      params(c.response.headers['sec-websocket-extensions']);
    }
    const pos = new Positions('the subscriber');
    pos.subscribed(await sub.subscribe('z'));
    const s0 = await srv.stats();
    const contents = Array.from({ length: 8 }, (_, i) => bigText(60000, i));
    contents.push(crypto.randomBytes(30000).toString('base64'));
    for (const c of contents) pub.send({ type: 'Message', channel: 'z', content: c });
    for (const c of contents) pos.message(await sub.json(), 'z', c);
    const s1 = await srv.stats();
    const text = 8 * 60000;
    const sent = s1.bytes.sent_total - s0.bytes.sent_total;
    const received = s1.bytes.received_total - s0.bytes.received_total;
    assert.ok(sent < text / 2 + 40000, `bytes sent ${sent} for ${text} of text: not compressed`);
    assert.ok(received < text / 2 + 40000, `bytes received ${received}: client compression ignored`);
    await sub.close();
    await pub.close();
  } finally {
    assert.equal(await srv.stop(), 0, srv.stderr());
  }
});

test('ws offering clientNoContextTakeover and serverMaxWindowBits', async () => {
  const srv = await startServer(['--compression', 'on'], { threads: 2 });
  try {
    const c = await Client.connect(srv.url(), {
      perMessageDeflate: { clientNoContextTakeover: true, serverMaxWindowBits: 10, threshold: 0 },
    });
    const p = params(c.response.headers['sec-websocket-extensions']);
    assert.ok('client_no_context_takeover' in p, JSON.stringify(p));
    assert.ok(Number(p.server_max_window_bits) <= 10, JSON.stringify(p));
    const pos = new Positions();
    pos.subscribed(await c.subscribe('w'));
    for (let i = 0; i < 5; i++) {
      const content = bigText(20000, i);
      c.send({ type: 'Message', channel: 'w', content });
      pos.message(await c.json(), 'w', content);
    }
    await c.close();
  } finally {
    assert.equal(await srv.stop(), 0, srv.stderr());
  }
});

test('ws offering serverNoContextTakeover; compression off declines', async () => {
  const on = await startServer(['--compression', 'on'], { threads: 1 });
  const off = await startServer(['--compression', 'off'], { threads: 1 });
  try {
    const c = await Client.connect(on.url(), { perMessageDeflate: { serverNoContextTakeover: true } });
    assert.ok('server_no_context_takeover' in params(c.response.headers['sec-websocket-extensions']));
    const pos = new Positions();
    pos.subscribed(await c.subscribe('n'));
    for (let i = 0; i < 3; i++) {
      c.send({ type: 'Message', channel: 'n', content: bigText(5000, 7) });
      pos.message(await c.json(), 'n', bigText(5000, 7));
    }
    await c.close();
    const d = await Client.connect(off.url(), { perMessageDeflate: true });
    assert.equal(d.ws.extensions, '');
    assert.equal(d.response.headers['sec-websocket-extensions'], undefined);
    assert.deepEqual(await d.request({ type: 'Ping' }), { type: 'Pong' });
    await d.close();
  } finally {
    assert.equal(await on.stop(), 0, on.stderr());
    assert.equal(await off.stop(), 0, off.stderr());
  }
});
