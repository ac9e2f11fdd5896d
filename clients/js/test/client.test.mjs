// The client against a fake socket: states, resubscription with `since`,
// exactly-once bookkeeping, gaps, requests, tokens, liveness.
import assert from 'node:assert/strict';
import { beforeEach, test } from 'node:test';
import { Client, WstraceError } from '../dist/index.js';
import { FakeSocket, nextEvent, socketNumber } from './fake_socket.mjs';

const URL = 'ws://127.0.0.1:1/ws';
// random 0: every delay is exactly half its bound (1 ms → 1 ms after rounding).
const fast = { WebSocket: FakeSocket, minReconnectDelay: 2, maxReconnectDelay: 8, random: () => 0 };

beforeEach(() => FakeSocket.reset());

async function connected(opts = {}) {
  const client = new Client(URL, { ...fast, ...opts });
  const states = [];
  client.on('state', (s, info) => states.push([s, info]));
  const ws = await socketNumber(1);
  ws.open();
  return { client, ws, states };
}

async function subscribed(ws, channel, epoch = 'E1', offset = 0, extra = {}) {
  const f = await ws.nextSent((x) => x.type === 'Subscribe' && x.channel === channel && !x.answered);
  f.answered = true;
  ws.push({ type: 'Subscribed', channel, epoch, offset, id: f.id, ...extra });
  return f;
}

const msg = (channel, offset, content = `m${offset}`, extra = {}) =>
  ({ type: 'Message', channel, content, offset, ...extra });

test('states: connecting, connected, disconnected with code and reason, back, closed', async () => {
  const { client, ws, states } = await connected();
  assert.equal(client.state, 'connected');
  ws.drop(1001, 'shutdown');
  const ws2 = await socketNumber(2);
  ws2.open();
  assert.deepEqual(states.map(([s]) => s), ['connecting', 'connected', 'disconnected', 'connecting', 'connected']);
  const [, info] = states[2];
  assert.equal(info.code, 1001);
  assert.equal(info.reason, 'shutdown');
  assert.equal(typeof info.reconnectIn, 'number');
  client.close();
  assert.equal(client.state, 'closed');
  assert.deepEqual(ws2.closedWith, { code: 1000, reason: '' });
  ws2.drop(1000);
  // No third socket: closed means closed.
  await new Promise((r) => setTimeout(r, 30));
  assert.equal(FakeSocket.instances.length, 2);
});

test('a refused static token (1008) ends the client instead of retrying forever', async () => {
  const { client, ws, states } = await connected({ token: 'bad' });
  assert.match(ws.url, /\?token=bad$/);
  ws.drop(1008, 'token refused: bad signature');
  assert.equal(client.state, 'closed');
  assert.equal(states.at(-1)[1].reason, 'token refused: bad signature');
  await new Promise((r) => setTimeout(r, 30));
  assert.equal(FakeSocket.instances.length, 1);
});

test('reconnect delays grow with each failed attempt up to the largest', async () => {
  const client = new Client(URL, { WebSocket: FakeSocket, minReconnectDelay: 4, maxReconnectDelay: 16, random: () => 0.999999 });
  const delays = [];
  client.on('state', (s, info) => { if (s === 'disconnected') delays.push(info.reconnectIn); });
  for (let n = 1; n <= 4; n++) (await socketNumber(n)).drop(1006);
  assert.deepEqual(delays, [4, 8, 16, 16]);
  client.close();
});

test('subscribe: ready resolves with the position; the handler gets each message once, in order', async () => {
  const { client, ws } = await connected();
  const got = [];
  const sub = client.subscribe('room:1', (m) => got.push(m));
  await subscribed(ws, 'room:1', 'E1', 41);
  assert.deepEqual(await sub.ready, { channel: 'room:1', epoch: 'E1', offset: 41 });
  for (const o of [42, 43, 43, 44]) ws.push(msg('room:1', o));
  ws.push(msg('room:2', 45)); // not subscribed: ignored
  assert.deepEqual(got.map((m) => m.offset), [42, 43, 44]);
  assert.equal(got[0].epoch, 'E1');
  assert.equal(got[0].channel, 'room:1');
  assert.equal(sub.stats.duplicates, 1);
  assert.deepEqual(sub.position, { epoch: 'E1', offset: 44 });
  assert.throws(() => client.subscribe('room:1', () => {}), /already subscribed/);
  client.close();
});

test('messages that arrive before Subscribed are held and handed on after it', async () => {
  const { client, ws } = await connected();
  const got = [];
  client.subscribe('c', (m) => got.push(m.offset));
  ws.push(msg('c', 10));
  ws.push(msg('c', 11));
  assert.deepEqual(got, []);
  await subscribed(ws, 'c', 'E', 10);
  assert.deepEqual(got, [11]);
  client.close();
});

test('after a reconnect it resubscribes with since and recovers without duplicates', async () => {
  const { client, ws } = await connected();
  const got = [];
  const sub = client.subscribe('room:1', (m) => got.push(m.offset));
  await subscribed(ws, 'room:1', 'E1', 5);
  ws.push(msg('room:1', 6));
  ws.push(msg('room:1', 7));
  ws.drop(1006);
  assert.equal(sub.state, 'subscribing');
  const ws2 = await socketNumber(2);
  ws2.open();
  const f = await subscribed(ws2, 'room:1', 'E1', 10, { recovered: true });
  assert.deepEqual(f.since, { epoch: 'E1', offset: 7 });
  // The recovery may overlap what was already seen: 7 again is dropped.
  for (const o of [7, 8, 9, 10, 11]) ws2.push(msg('room:1', o));
  assert.deepEqual(got, [6, 7, 8, 9, 10, 11]);
  assert.equal(sub.stats.gaps, 0);
  assert.equal(sub.stats.subscribes, 2);
  client.close();
});

test('recovered:false is a gap of exactly the positions missed; the stream continues after them', async () => {
  const { client, ws } = await connected();
  const got = [];
  const gaps = [];
  const sub = client.subscribe('room:1', (m) => got.push(m.offset));
  sub.on('gap', (g) => gaps.push(g));
  await subscribed(ws, 'room:1', 'E1', 0);
  ws.push(msg('room:1', 1));
  ws.drop(1006);
  const ws2 = await socketNumber(2);
  ws2.open();
  await subscribed(ws2, 'room:1', 'E1', 30, { recovered: false });
  ws2.push(msg('room:1', 31));
  assert.deepEqual(got, [1, 31]);
  assert.deepEqual(gaps, [{ channel: 'room:1', epoch: 'E1', from: 2, to: 30, cause: 'recovery' }]);
  assert.equal(sub.stats.lost, 29);
  // A new epoch (the server lost the stream): a reset gap.
  ws2.drop(1006);
  const ws3 = await socketNumber(3);
  ws3.open();
  const f = await subscribed(ws3, 'room:1', 'E2', 3, { recovered: false });
  assert.deepEqual(f.since, { epoch: 'E1', offset: 31 });
  assert.deepEqual(gaps[1], { channel: 'room:1', epoch: 'E2', from: 1, to: 3, reset: true, previousEpoch: 'E1', cause: 'recovery' });
  ws3.push(msg('room:1', 4));
  assert.deepEqual(sub.position, { epoch: 'E2', offset: 4 });
  client.close();
});

test("the server's Gap notices and a jump in offsets are gaps; Join and Leave are events", async () => {
  const { client, ws } = await connected();
  const got = [];
  const gaps = [];
  const members = [];
  const sub = client.subscribe('c', (m) => got.push(m.offset));
  sub.on('gap', (g) => gaps.push(g));
  sub.on('join', (e) => members.push(['join', e.user]));
  sub.on('leave', (e) => members.push(['leave', e.user]));
  await subscribed(ws, 'c', 'E', 0);
  ws.push(msg('c', 1));
  ws.push({ type: 'Gap', channel: 'c', epoch: 'E', from: 2, to: 4 });
  ws.push(msg('c', 5));
  ws.push(msg('c', 7));
  ws.push({ type: 'Gap', channel: 'c', epoch: 'F', from: 1, to: 0, reset: true, previous_epoch: 'E' });
  ws.push(msg('c', 1));
  ws.push({ type: 'Join', channel: 'c', user: 'carol', connection_id: 3 });
  ws.push({ type: 'Leave', channel: 'c', user: 'carol', connection_id: 3 });
  assert.deepEqual(got, [1, 5, 7, 1]);
  assert.deepEqual(gaps.map((g) => [g.cause, g.epoch, g.from, g.to]),
    [['server', 'E', 2, 4], ['sequence', 'E', 6, 6], ['server', 'F', 1, 0]]);
  assert.equal(gaps[2].reset, true);
  assert.equal(gaps[2].previousEpoch, 'E');
  assert.deepEqual(members, [['join', 'carol'], ['leave', 'carol']]);
  client.close();
});

test('a refused subscription rejects ready and emits error; unsubscribe stops the handler', async () => {
  const { client, ws } = await connected();
  const sub = client.subscribe('secret', () => {});
  const errored = nextEvent(sub, 'error');
  const f = await ws.nextSent((x) => x.type === 'Subscribe');
  f.answered = true;
  ws.push({ type: 'Error', code: 'forbidden', message: 'no', id: f.id });
  await assert.rejects(sub.ready, (e) => e instanceof WstraceError && e.code === 'forbidden');
  assert.equal((await errored).code, 'forbidden');
  assert.equal(sub.state, 'failed');
  // The channel is free again.
  const got = [];
  const sub2 = client.subscribe('secret', (m) => got.push(m.offset));
  await subscribed(ws, 'secret', 'E', 0);
  ws.push(msg('secret', 1));
  const left = sub2.unsubscribe();
  const u = await ws.nextSent((x) => x.type === 'Unsubscribe');
  ws.push({ type: 'Unsubscribed', channel: 'secret', id: u.id });
  await left;
  ws.push(msg('secret', 2));
  assert.deepEqual(got, [1]);
  client.close();
});

test('publish: resolves with the position, rejects with the server error, carries a traceparent', async () => {
  const { client, ws } = await connected();
  const p = client.publish('room:1', 'hi');
  const f = await ws.nextSent((x) => x.type === 'Message');
  assert.equal(f.content, 'hi');
  assert.match(f.traceparent, /^00-[0-9a-f]{32}-[0-9a-f]{16}-01$/);
  ws.push({ type: 'Published', channel: 'room:1', epoch: 'E', offset: 9, id: f.id });
  assert.deepEqual(await p, { channel: 'room:1', epoch: 'E', offset: 9 });
  const q = client.publish('room:1', 'x'.repeat(10));
  const g = await ws.nextSent((x) => x.type === 'Message' && x.id !== f.id);
  ws.push({ type: 'Error', code: 'message_too_large', message: 'too big', id: g.id });
  await assert.rejects(q, (e) => e.code === 'message_too_large');
  await assert.rejects(client.publish('room:1', { not: 'a string' }), TypeError);
  const fixed = '00-' + '1'.repeat(32) + '-' + '2'.repeat(16) + '-01';
  client.publish('room:1', 'y', { traceparent: fixed }).catch(() => {});
  assert.equal((await ws.nextSent((x) => x.content === 'y')).traceparent, fixed);
  client.close();
});

test('requests made while disconnected wait for the connection; in flight at a drop they fail as disconnected', async () => {
  const { client, ws } = await connected();
  const inflight = client.publish('c', 'a');
  await ws.nextSent((x) => x.type === 'Message');
  ws.drop(1006);
  await assert.rejects(inflight, (e) => e.code === 'disconnected');
  const waiting = client.history('c', { limit: 2 });
  const ws2 = await socketNumber(2);
  ws2.open();
  const h = await ws2.nextSent((x) => x.type === 'History');
  assert.equal(h.limit, 2);
  ws2.push({ type: 'History', channel: 'c', epoch: 'E', offset: 2, messages: [{ offset: 1, content: 'a' }, { offset: 2, content: 'b' }], id: h.id });
  assert.deepEqual((await waiting).messages.map((m) => m.content), ['a', 'b']);
  const pres = client.presence('c');
  const pr = await ws2.nextSent((x) => x.type === 'Presence');
  ws2.push({ type: 'Presence', channel: 'c', count: 2, users: 1, clients: [{ connection_id: 1, user: 'u' }, { connection_id: 2, user: 'u' }], id: pr.id });
  assert.equal((await pres).count, 2);
  const lost = client.publish('c', 'b');
  client.close();
  await assert.rejects(lost, (e) => e.code === 'closed');
});

test('a request without an answer times out', async () => {
  const { client } = await connected({ timeout: 30 });
  await assert.rejects(client.publish('c', 'a'), (e) => e.code === 'timeout');
  client.close();
});

test('getToken: a fresh token for each reconnect and for the server\'s Refresh', async () => {
  let n = 0;
  const { client, ws } = await connected({ token: 't0', getToken: async () => `t${++n}` });
  assert.match(ws.url, /token=t0$/);
  ws.push({ type: 'Refresh', expires: 123 });
  const r = await ws.nextSent((x) => x.type === 'Refresh');
  assert.equal(r.token, 't1');
  const refreshed = nextEvent(client, 'refreshed');
  ws.push({ type: 'Refreshed', expires: 456, id: r.id });
  assert.equal(await refreshed, 456);
  ws.drop(4401, 'token expired');
  // The refreshed token was not used for a connection yet: it is used now.
  assert.match((await socketNumber(2)).url, /token=t1$/);
  FakeSocket.last().drop(1006);
  assert.match((await socketNumber(3)).url, /token=t2$/);
  client.close();
});

test('liveness: a quiet server is pinged, then given up on and reconnected to', async () => {
  const { client, ws, states } = await connected({ pingInterval: 40, pongTimeout: 40 });
  const ping = await ws.nextSent((x) => x.type === 'Ping', 2000);
  assert.deepEqual(ping, { type: 'Ping' });
  const ws2 = await socketNumber(2, 3000);
  assert.deepEqual(ws.closedWith, { code: 4000, reason: 'no heartbeat' });
  const drop = states.find(([s]) => s === 'disconnected');
  assert.equal(drop[1].code, 1006);
  assert.match(drop[1].reason, /no frame from the server/);
  // A server that answers keeps the connection.
  ws2.open();
  for (let i = 0; i < 6; i++) {
    await new Promise((r) => setTimeout(r, 20));
    ws2.push({ type: 'Pong' });
  }
  assert.equal(FakeSocket.instances.length, 2);
  client.close();
});

test('a delivered message exposes its trace context', async () => {
  const { client, ws } = await connected();
  const got = [];
  client.subscribe('t', (m) => got.push(m));
  await subscribed(ws, 't', 'E', 0);
  const tp = '00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01';
  ws.push(msg('t', 1, 'x', { traceparent: tp }));
  ws.push(msg('t', 2, 'y'));
  assert.equal(got[0].traceparent, tp);
  assert.deepEqual(got[0].trace, { traceId: '4bf92f3577b34da6a3ce929d0e0e4736', spanId: '00f067aa0ba902b7', sampled: true });
  assert.equal(got[1].traceparent, undefined);
  client.close();
});

test('a subscription refused for a passing reason (unavailable) is tried again, not ended', async () => {
  const { client, ws } = await connected();
  const sub = client.subscribe('c', () => {});
  const reported = nextEvent(client, 'error');
  const f = await ws.nextSent((x) => x.type === 'Subscribe');
  f.answered = true;
  ws.push({ type: 'Error', code: 'unavailable', message: 'redis down', id: f.id });
  assert.equal((await reported).code, 'unavailable');
  assert.equal(sub.state, 'subscribing');
  const again = await ws.nextSent((x) => x.type === 'Subscribe' && x.id !== f.id, 3000);
  ws.push({ type: 'Subscribed', channel: 'c', epoch: 'E', offset: 0, id: again.id });
  assert.equal((await sub.ready).epoch, 'E');
  client.close();
});

test('close() from a state listener is final: no socket comes back to life, no timer runs on', async () => {
  const client = new Client(URL, { ...fast });
  client.on('state', (s) => { if (s === 'connecting' && client.connects >= 1) client.close(); });
  const ws = await socketNumber(1);
  ws.open();
  ws.drop(1006);
  await new Promise((r) => setTimeout(r, 30));
  assert.equal(client.state, 'closed');
  assert.equal(FakeSocket.instances.length, 1, 'no socket after close()');
  // Closing on 'connected': the liveness timer does not keep running.
  FakeSocket.reset();
  const c2 = new Client(URL, { ...fast, pingInterval: 10, pongTimeout: 10 });
  c2.on('state', (s) => { if (s === 'connected') c2.close(); });
  const w2 = await socketNumber(1);
  w2.open();
  await new Promise((r) => setTimeout(r, 60));
  assert.equal(c2.state, 'closed');
  assert.deepEqual(w2.sent, [], 'no Ping from a closed client');
});

test('close() rejects a pending ready; a Subscribe made in a connected listener is sent once', async () => {
  const client = new Client(URL, { ...fast });
  const early = client.subscribe('a', () => {});
  let late;
  client.on('state', (s) => { if (s === 'connected' && !late) late = client.subscribe('b', () => {}); });
  const ws = await socketNumber(1);
  ws.open();
  assert.equal(ws.sent.filter((f) => f.type === 'Subscribe' && f.channel === 'b').length, 1);
  assert.equal(ws.sent.filter((f) => f.type === 'Subscribe' && f.channel === 'a').length, 1);
  client.close();
  await assert.rejects(early.ready, (e) => e.code === 'closed');
  await assert.rejects(late.ready, (e) => e.code === 'closed');
  assert.equal(early.state, 'unsubscribed');
});

test('a late liveness check sends its Ping first and drops only when that Ping goes unanswered', async () => {
  const { client, ws } = await connected({ pingInterval: 40, pongTimeout: 40 });
  // Hold the event loop far past pingInterval + pongTimeout, as a throttled
  // background tab's timers would: the first check that runs must ask, not drop.
  const until = Date.now() + 200;
  while (Date.now() < until) { /* busy */ }
  const ping = await ws.nextSent((x) => x.type === 'Ping', 2000);
  assert.deepEqual(ping, { type: 'Ping' });
  assert.equal(ws.closedWith, undefined, 'not dropped before its Ping was answered or timed out');
  ws.push({ type: 'Pong' });
  assert.equal(FakeSocket.instances.length, 1, 'an answered Ping keeps the link');
  client.close();
});

test('1008 after the connection worked (an error budget spent) is retried; a browser-refused close code still closes', async () => {
  const { client, ws } = await connected({ token: 't' });
  ws.push({ type: 'Error', code: 'invalid_json', message: 'x' });
  ws.drop(1008, 'too many errors');
  const ws2 = await socketNumber(2);
  assert.notEqual(client.state, 'closed');
  ws2.open();
  // A browser's close() throws for 1001: the client falls back to a plain close.
  ws2.close = function close(code) {
    if (code !== undefined && code !== 1000 && (code < 3000 || code > 4999)) throw new DOMException('InvalidAccessError');
    this.closedWith = { code, reason: undefined };
    this.readyState = 3;
  };
  client.close(1001, 'going away');
  assert.equal(ws2.readyState, 3);
  assert.equal(client.state, 'closed');
});
