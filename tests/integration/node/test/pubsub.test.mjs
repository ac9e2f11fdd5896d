// Pub/sub across event-loop threads with ~200 ws clients (docs/PROTOCOL.md):
// every subscriber gets every message exactly once, in order per publisher.
import assert from 'node:assert/strict';
import { Client, startServer, test } from '../lib/harness.mjs';

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
// "done"; returns Map key -> [seq...].
async function collect(c, expect) {
  const pending = new Set(expect);
  const got = new Map();
  while (pending.size) {
    const m = await c.json();
    assert.equal(m.type, 'Message', JSON.stringify(m));
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
    await Promise.all(subs.map((c, i) => c.subscribe(CHANNELS[i % CHANNELS.length])));
    // Publishers subscribe too: the sender gets its own messages.
    for (const p of pubs) for (const ch of CHANNELS) await p.subscribe(ch);
    const stats = await srv.stats();
    assert.equal(stats.connections.active, SUBSCRIBERS + PUBLISHERS);
    assert.equal(stats.threads, 4);

    const keysFor = (channels) => channels.flatMap((ch) => pubs.map((_, p) => `${ch}/p${p}`));
    const readers = [
      ...subs.map((c, i) => collect(c, keysFor([CHANNELS[i % CHANNELS.length]]))),
      ...pubs.map((c) => collect(c, keysFor(CHANNELS))),
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
    await x.subscribe('a');
    await x.subscribe('b');
    await control.subscribe('a');
    assert.deepEqual(await x.request({ type: 'Unsubscribe', channel: 'a', id: 'u' }),
      { type: 'Unsubscribed', channel: 'a', id: 'u' });
    pub.send({ type: 'Message', channel: 'nobody', content: 'void' });
    pub.send({ type: 'Message', channel: 'a', content: '1' });
    pub.send({ type: 'Message', channel: 'b', content: '2' });
    assert.equal((await control.json()).content, '1');
    assert.deepEqual(await x.json(), { type: 'Message', channel: 'b', content: '2' });
    assert.deepEqual(await pub.request({ type: 'Ping', id: 3 }), { type: 'Pong', id: 3 });
    await Promise.all([x, control, pub].map((c) => c.close()));
  } finally {
    assert.equal(await srv.stop(), 0, srv.stderr());
  }
});
