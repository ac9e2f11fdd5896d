// Pub/sub across event-loop threads with ~200 ws clients (docs/PROTOCOL.md):
// every subscriber gets every message exactly once, in order per publisher,
// at contiguous offsets, in one order per channel for everyone.
import assert from 'node:assert/strict';
import { Client, Positions, startServer, test } from '../lib/harness.mjs';

const SUBSCRIBERS = 200;
const CHANNELS = ['news', 'sport', 'tech', 'misc'];
const PUBLISHERS = 4;
const PER_CHANNEL = 25;

async function connectMany(url, n) {
  const out = [];
  for (let i = 0; i < n; i += 50) {
    out.push(...await Promise.all(Array.from({ length: Math.min(50, n - i) }, () => Client.connect(url))));
  }
  return out;
}

// Reads Messages until every (channel, publisher) in `expect` has sent its
// "done"; returns Map key -> [seq...]. Each Message must be its channel's
// next offset for this client (`pos`); order[channel] gets the contents in
// the order this client saw them.
async function collect(c, expect, pos, order) {
  const pending = new Set(expect);
  const got = new Map();
  while (pending.size) {
    const m = pos.message(await c.json());
    if (!order.has(m.channel)) order.set(m.channel, []);
    order.get(m.channel).push(m.content);
    const [pub, seq] = m.content.split(':');
    const key = `${m.channel}/${pub}`;
    if (seq === 'done') {
      assert.ok(pending.delete(key), `unexpected or duplicate done ${key}`);
    } else {
      if (!got.has(key)) got.set(key, []);
      got.get(key).push(Number(seq));
    }
  }
  return got;
}

test('~200 ws clients across 4 threads: exactly once, in order per publisher', async () => {
  const srv = await startServer([], { threads: 4 });
  try {
    const subs = await connectMany(srv.url(), SUBSCRIBERS);
    const pubs = await connectMany(srv.url(), PUBLISHERS);
    const positions = [...subs.map((_, i) => new Positions(`subscriber ${i}`)),
      ...pubs.map((_, p) => new Positions(`publisher ${p}`))];
    const replies = await Promise.all(subs.map((c, i) => c.subscribe(CHANNELS[i % CHANNELS.length])));
    replies.forEach((r, i) => positions[i].subscribed(r));
    // Publishers subscribe too: the sender gets its own messages.
    for (const [p, c] of pubs.entries()) {
      for (const ch of CHANNELS) replies.push(positions[SUBSCRIBERS + p].subscribed(await c.subscribe(ch)));
    }
    // Nothing published yet: offset 0 everywhere, one epoch per channel.
    for (const ch of CHANNELS) {
      const mine = replies.filter((r) => r.channel === ch);
      assert.deepEqual([...new Set(mine.map((r) => r.offset))], [0], ch);
      assert.equal(new Set(mine.map((r) => r.epoch)).size, 1, ch);
    }
    const stats = await srv.stats();
    assert.equal(stats.connections.active, SUBSCRIBERS + PUBLISHERS);
    assert.equal(stats.threads, 4);

    const keysFor = (channels) => channels.flatMap((ch) => pubs.map((_, p) => `${ch}/p${p}`));
    const orders = positions.map(() => new Map());
    const readers = [
      ...subs.map((c, i) => collect(c, keysFor([CHANNELS[i % CHANNELS.length]]), positions[i], orders[i])),
      ...pubs.map((c, p) => collect(c, keysFor(CHANNELS), positions[SUBSCRIBERS + p], orders[SUBSCRIBERS + p])),
    ];
    pubs.forEach((p, i) => {
      for (let seq = 0; seq < PER_CHANNEL; seq++) {
        for (const ch of CHANNELS) p.send({ type: 'Message', channel: ch, content: `p${i}:${seq}` });
      }
      for (const ch of CHANNELS) p.send({ type: 'Message', channel: ch, content: `p${i}:done` });
    });
    const results = await Promise.all(readers);
    const want = Array.from({ length: PER_CHANNEL }, (_, i) => i);
    results.forEach((got, i) => {
      const expectKeys = i < SUBSCRIBERS ? keysFor([CHANNELS[i % CHANNELS.length]]) : keysFor(CHANNELS);
      assert.deepEqual([...got.keys()].sort(), [...expectKeys].sort(), `client ${i}`);
      for (const [key, seqs] of got) assert.deepEqual(seqs, want, `client ${i} ${key}`);
    });
    // One order per channel: the same content at each offset for everyone.
    for (const ch of CHANNELS) {
      const seen = orders.map((o, i) => [i, o.get(ch)]).filter(([, o]) => o !== undefined);
      assert.equal(seen.length, SUBSCRIBERS / CHANNELS.length + PUBLISHERS, ch);
      assert.equal(seen[0][1].length, PUBLISHERS * (PER_CHANNEL + 1), ch);
      for (const [i, o] of seen) assert.deepEqual(o, seen[0][1], `client ${i} saw ${ch} in another order`);
    }
    const total = PUBLISHERS * CHANNELS.length * (PER_CHANNEL + 1);
    await srv.waitStats((s) => s.messages.broadcasted_total === total, `broadcasted_total == ${total}`);
    await Promise.all([...subs, ...pubs].map((c) => c.close()));
  } finally {
    assert.equal(await srv.stop(), 0, srv.stderr());
  }
});

test('Unsubscribe stops delivery; a channel without subscribers is fine', async () => {
  const srv = await startServer([], { threads: 2 });
  try {
    const [x, control, pub] = await Promise.all([1, 2, 3].map(() => Client.connect(srv.url())));
    const px = new Positions('x');
    const pc = new Positions('control');
    px.subscribed(await x.subscribe('a'));
    px.subscribed(await x.subscribe('b'));
    pc.subscribed(await control.subscribe('a', { epoch: px.epoch.get('a'), offset: px.last.get('a') }));
    assert.deepEqual(await x.request({ type: 'Unsubscribe', channel: 'a', id: 'u' }),
      { type: 'Unsubscribed', channel: 'a', id: 'u' });
    pub.send({ type: 'Message', channel: 'nobody', content: 'void' });
    pub.send({ type: 'Message', channel: 'a', content: '1' });
    pub.send({ type: 'Message', channel: 'b', content: '2' });
    pc.message(await control.json(), 'a', '1');
    px.message(await x.json(), 'b', '2');
    assert.deepEqual(await pub.request({ type: 'Ping', id: 3 }), { type: 'Pong', id: 3 });
    await Promise.all([x, control, pub].map((c) => c.close()));
  } finally {
    assert.equal(await srv.stop(), 0, srv.stderr());
  }
});
