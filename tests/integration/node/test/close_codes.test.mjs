// Close codes of the client protocol (docs/PROTOCOL.md) as the ws client reports them.
import assert from 'node:assert/strict';
import { Client, IO_TIMEOUT, Positions, startServer, test } from '../lib/harness.mjs';

// A client silent for --client-timeout 400ms (Pings every 100 ms) is closed
// after about 4 Pings: 10 s without the Close means it is not coming.
const HEARTBEAT_CLOSE_WAIT = 10000;
// The slow-consumer flood: far more than --max-backpressure plus the socket
// buffers, in count (5000 x 4 KB) and in time.
const FLOOD_TIME = 30000;

test('1000: a client close is echoed', async () => {
  const srv = await startServer([], { threads: 1 });
  try {
    const c = await Client.connect(srv.url());
    const { code } = await c.close(1000);
    assert.equal(code, 1000);
  } finally {
    assert.equal(await srv.stop(), 0, srv.stderr());
  }
});

test('1001: SIGTERM closes every ws client, exit 0', async () => {
  const srv = await startServer([], { threads: 2 });
  const clients = await Promise.all(Array.from({ length: 10 }, () => Client.connect(srv.url())));
  await srv.waitStats((s) => s.connections.active === 10);
  srv.signal('SIGTERM');
  const codes = await Promise.all(clients.map((c) => c.waitClose()));
  assert.deepEqual(codes.map((x) => x.code), Array(10).fill(1001));
  assert.equal(await srv.waitExit(IO_TIMEOUT), 0, srv.stderr());
});

test('1002, 1007, 1009 for what the client sent', async () => {
  const srv = await startServer(['--max-message-size', '4KiB'], { threads: 2 });
  try {
    // 1009: a message over --max-message-size.
    let c = await Client.connect(srv.url());
    c.send('x'.repeat(5000));
    assert.equal((await c.waitClose()).code, 1009);
    // 1007: a text frame that is not UTF-8 (ws sends a Buffer as given).
    c = await Client.connect(srv.url());
    c.ws.send(Buffer.from([0x7b, 0xff, 0x7d]), { binary: false });
    assert.equal((await c.waitClose()).code, 1007);
    // 1002: an unmasked frame, written under ws on its socket.
    c = await Client.connect(srv.url());
    c.ws._socket.write(Buffer.from([0x81, 0x02, 0x7b, 0x7d]));
    assert.equal((await c.waitClose()).code, 1002);
  } finally {
    assert.equal(await srv.stop(), 0, srv.stderr());
  }
});

test('1008: a bad token gets 101 then Close 1008', async () => {
  const srv = await startServer(['--auth-secret', 'k'], { threads: 1 });
  try {
    const c = await Client.connect(srv.url('/ws?token=not-a-jwt'));
    assert.equal((await c.waitClose()).code, 1008);
  } finally {
    assert.equal(await srv.stop(), 0, srv.stderr());
  }
});

test('4408: a ws client that does not answer Pings (autoPong: false)', async () => {
  const srv = await startServer(['--heartbeat-interval', '100ms', '--client-timeout', '400ms'], { threads: 1 });
  try {
    const good = await Client.connect(srv.url());
    const silent = await Client.connect(srv.url(), { autoPong: false });
    let pings = 0;
    silent.ws.on('ping', () => { pings++; });
    const { code } = await silent.waitClose(HEARTBEAT_CLOSE_WAIT,
      () => `the Close 4408 (${pings} Pings so far): is --client-timeout enforced?`);
    assert.equal(code, 4408);
    assert.ok(pings >= 1);
    // The one answering Pings (ws does by default) is still there.
    assert.deepEqual(await good.request({ type: 'Ping', id: 1 }), { type: 'Pong', id: 1 });
    await good.close();
    assert.equal((await srv.stats()).heartbeat_timeouts_total, 1);
  } finally {
    assert.equal(await srv.stop(), 0, srv.stderr());
  }
});

test('4429: a ws client that stops reading; the other subscriber gets everything', async () => {
  // A long --close-timeout: the Close 4429 waits behind what is already
  // written until the client reads again, however late the test resumes it.
  const srv = await startServer(['--max-backpressure', '64KiB', '--close-timeout', '60s'], { threads: 2 });
  try {
    const slow = await Client.connect(srv.url());
    const normal = await Client.connect(srv.url());
    const pub = await Client.connect(srv.url());
    const slowPos = new Positions('the slow consumer');
    const normalPos = new Positions('the normal subscriber');
    slowPos.subscribed(await slow.subscribe('flood'));
    normalPos.subscribed(await normal.subscribe('flood', { epoch: slowPos.epoch.get('flood'), offset: slowPos.last.get('flood') }));
    slow.ws.pause(); // stops reading its socket
    const content = 'f'.repeat(4000);
    let sent = 0;
    // Batches the normal subscriber drains before the next; until the slow
    // one is dropped; bounded in count and time.
    const floodEnd = Date.now() + FLOOD_TIME;
    while (sent < 5000 && Date.now() < floodEnd) {
      for (let i = 0; i < 10; i++, sent++) pub.send({ type: 'Message', channel: 'flood', content: `${sent}:${content}` });
      for (let i = sent - 10; i < sent; i++) assert.equal(normalPos.message(await normal.json(), 'flood').content.split(':')[0], String(i));
      if ((await srv.stats()).slow_consumer_disconnects_total >= 1) break;
    }
    assert.equal((await srv.stats()).slow_consumer_disconnects_total, 1,
      `not dropped after ${sent} messages of 4 KB to a client that stopped reading: is --max-backpressure enforced?`);
    for (let i = sent; i < sent + 20; i++) {
      pub.send({ type: 'Message', channel: 'flood', content: `${i}:tail` });
      normalPos.message(await normal.json(), 'flood', `${i}:tail`);
    }
    slow.ws.resume();
    const { code } = await slow.waitClose();
    // Everything already written, then the Close 4429 (not a bare TCP close: 1006).
    assert.equal(code, 4429, `slow consumer closed with ${code}`);
    // What reached it is a gapless prefix, at contiguous offsets.
    const msgs = slow.queue.map((m) => JSON.parse(m.data.toString()));
    const seqs = msgs.map((m) => Number(slowPos.message(m, 'flood').content.split(':')[0]));
    assert.deepEqual(seqs, seqs.map((_, i) => i));
    await normal.close();
    await pub.close();
  } finally {
    assert.equal(await srv.stop(), 0, srv.stderr());
  }
});

test('HTTP rejections as ws sees them', async () => {
  const srv = await startServer(['--allowed-origins', 'https://ok.example', '--max-connections', '1'], { threads: 1 });
  try {
    const status = async (url, opts = {}) => {
      try {
        const c = await Client.connect(url, opts);
        await c.close();
        return 101;
      } catch (e) {
        return e.statusCode;
      }
    };
    assert.equal(await status(srv.url('/nope')), 404);
    assert.equal(await status(srv.url(), { origin: 'https://evil.example' }), 403);
    const err = await Client.connect(srv.url(), { protocolVersion: 8 }).catch((e) => e);
    assert.equal(err.statusCode, 426);
    assert.equal(err.headers['sec-websocket-version'], '13');
    const held = await Client.connect(srv.url(), { origin: 'https://ok.example' });
    assert.equal(await status(srv.url()), 503);
    await held.close();
  } finally {
    assert.equal(await srv.stop(), 0, srv.stderr());
  }
});
