// Error replies of the client protocol (docs/PROTOCOL.md) as a ws client sees them: code, id echoed,
// and the connection stays open.
import assert from 'node:assert/strict';
import { Client, startServer, test } from '../lib/harness.mjs';

test('every Error code the server can produce, id echoed, connection kept', async () => {
  const srv = await startServer(['--max-content-size', '1KiB', '--max-subscriptions', '2'], { threads: 2 });
  try {
    const c = await Client.connect(srv.url());
    const error = async (msg, code, id) => {
      const r = await c.request(msg);
      assert.equal(r.type, 'Error', JSON.stringify(r));
      assert.equal(r.code, code, JSON.stringify(r));
      assert.equal(typeof r.message, 'string');
      if (id !== undefined) assert.deepEqual(r.id, id);
    };
    await error('{not json', 'invalid_json');
    await error({ type: 'Bogus', id: 'b' }, 'unknown_type', 'b');
    await error({ id: 1 }, 'missing_field', 1);
    await error({ type: 'Subscribe', id: 2 }, 'missing_field', 2);
    await error({ type: 'Message', channel: 'c', id: 3 }, 'missing_field', 3);
    await error({ type: 'Subscribe', channel: 'no spaces', id: 4 }, 'invalid_channel', 4);
    await error({ type: 'Subscribe', channel: 'x'.repeat(129), id: 5 }, 'invalid_channel', 5);
    await error({ type: 'Message', channel: 'c', content: 'y'.repeat(1025), id: 6 }, 'message_too_large', 6);
    await error({ type: 'Unsubscribe', channel: 'never', id: 7 }, 'not_subscribed', 7);
    await c.subscribe('one', { id: 'one' });
    await c.subscribe('two', { id: 2, offset: 0 });
    await error({ type: 'Subscribe', channel: 'three', id: 8 }, 'too_many_subscriptions', 8);
    c.ws.send(Buffer.from('{"type":"Ping"}'), { binary: true });
    const r = await c.json();
    assert.equal(r.code, 'unsupported_frame');
    assert.deepEqual(await c.request({ type: 'Ping', id: 'end' }), { type: 'Pong', id: 'end' });
    await c.close();
    assert.equal(c.closeCode, 1000);
  } finally {
    assert.equal(await srv.stop(), 0, srv.stderr());
  }
});

test('rate_limited and unauthorized', async () => {
  const rl = await startServer(['--rate-limit', '5'], { threads: 1 });
  const auth = await startServer(['--auth-secret', 'node-secret'], { threads: 1 });
  try {
    const c = await Client.connect(rl.url());
    for (let i = 0; i < 30; i++) c.send({ type: 'Ping', id: i });
    const replies = [];
    for (let i = 0; i < 30; i++) replies.push(await c.json());
    const limited = replies.filter((m) => m.type === 'Error');
    assert.ok(limited.length > 0, '30 at once with --rate-limit 5: none limited');
    for (const m of limited) assert.equal(m.code, 'rate_limited');
    assert.deepEqual(replies.map((m) => m.id).sort((a, b) => a - b), Array.from({ length: 30 }, (_, i) => i));
    await c.close();

    const anon = await Client.connect(auth.url());
    const r = await anon.request({ type: 'Subscribe', channel: 'x', id: 'a' });
    assert.deepEqual([r.type, r.code, r.id], ['Error', 'unauthorized', 'a']);
    const m = await anon.request({ type: 'Message', channel: 'x', content: 'c', id: 'b' });
    assert.deepEqual([m.type, m.code, m.id], ['Error', 'unauthorized', 'b']);
    await anon.close();
  } finally {
    assert.equal(await rl.stop(), 0, rl.stderr());
    assert.equal(await auth.stop(), 0, auth.stderr());
  }
});
