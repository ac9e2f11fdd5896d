// The chat page: sign in with a name, join rooms, read the room's history,
// see who is there, talk. Everything real-time goes through wstrace-client.
import { Client } from 'wstrace-client';

const $ = (sel) => document.querySelector(sel);
const config = await (await fetch('/config')).json();

let client;
let tracing;
let me;
let room;
let sub;
const members = new Map(); // connection_id -> user

function el(tag, attrs = {}, text = '') {
  const e = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) e.setAttribute(k, v);
  if (text) e.textContent = text;
  return e;
}

function status(text, kind = '') {
  const s = $('#status');
  s.textContent = text;
  s.className = kind;
}

async function token() {
  const r = await fetch(`/token?user=${encodeURIComponent(me)}`);
  if (!r.ok) throw new Error(await r.text());
  return (await r.json()).token;
}

function show(m, { fromHistory = false } = {}) {
  let body;
  try {
    body = JSON.parse(m.content);
  } catch {
    body = { user: '?', text: m.content };
  }
  const li = el('li', { 'data-offset': String(m.offset) });
  if (fromHistory) li.classList.add('history');
  if (m.traceparent) li.setAttribute('data-trace-id', m.traceparent.slice(3, 35));
  li.append(el('span', { class: 'user' }, body.user), el('span', { class: 'text' }, body.text));
  $('#messages').append(li);
  li.scrollIntoView({ block: 'end' });
  if (!fromHistory && tracing && m.traceparent) {
    const sc = tracing.receive('chat.receive', { 'messaging.destination.name': m.channel, 'enduser.id': me,
      'websocket.stream.offset': m.offset }, m.traceparent);
    li.setAttribute('data-receive-span-id', sc.spanId);
  }
}

function notice(text) {
  $('#messages').append(el('li', { class: 'notice' }, text));
}

function renderMembers() {
  const users = [...new Set(members.values())].sort();
  const ul = $('#members');
  ul.replaceChildren(...users.map((u) => el('li', { 'data-user': u }, u)));
  $('#count').textContent = String(users.length);
}

async function join(name) {
  if (sub) await sub.unsubscribe();
  room = name;
  members.clear();
  $('#messages').replaceChildren();
  $('#room').textContent = name;
  document.querySelectorAll('#rooms button').forEach((b) => b.classList.toggle('active', b.dataset.room === name));
  // History first, then subscribe from the position it ended at: nothing
  // missed, nothing twice, whatever is published in between.
  const h = await client.history(name, { limit: 50 });
  for (const m of h.messages) show({ ...m, channel: name }, { fromHistory: true });
  sub = client.subscribe(name, (m) => show(m), { since: { epoch: h.epoch, offset: h.offset } });
  sub.on('gap', (g) => notice(`${g.to - g.from + 1} message(s) could not be recovered`));
  sub.on('join', (e) => { members.set(e.connection_id, e.user); renderMembers(); });
  sub.on('leave', (e) => { members.delete(e.connection_id); renderMembers(); });
  sub.on('error', (e) => notice(`cannot join ${name}: ${e.message}`));
  sub.on('subscribed', async () => {
    // After every (re)subscribe: who is here now.
    const p = await client.presence(name);
    members.clear();
    for (const c of p.clients) members.set(c.connection_id, c.user);
    renderMembers();
  });
  await sub.ready;
  $('#text').focus();
}

async function sendMessage(text) {
  const content = JSON.stringify({ user: me, text });
  const publish = () => client.publish(room, content);
  const done = tracing
    ? tracing.send('chat.send', { 'messaging.destination.name': room, 'enduser.id': me }, publish)
    : publish();
  await done;
}

async function signIn(name) {
  me = name;
  if (config.tracing) tracing = (await import('./tracing.js')).startTracing(me);
  client = new Client(config.ws, { getToken: token, otel: tracing?.api });
  client.on('state', (s, info) => {
    if (s === 'connected') status(`connected as ${me}`, 'ok');
    else if (s === 'disconnected') status(`disconnected (${info.code}${info.reason ? ` ${info.reason}` : ''}), retrying in ${Math.round(info.reconnectIn / 100) / 10} s`, 'warn');
    else if (s === 'closed') status(`closed: ${info.reason || info.code}`, 'bad');
    else status('connecting…');
  });
  $('#signin').hidden = true;
  $('#chat').hidden = false;
  await join('room:general');
}

$('#signin').addEventListener('submit', (e) => {
  e.preventDefault();
  signIn($('#name').value.trim()).catch((err) => status(String(err.message || err), 'bad'));
});
$('#rooms').addEventListener('click', (e) => {
  const r = e.target.closest('button')?.dataset.room;
  if (r && r !== room) join(r).catch((err) => notice(String(err.message || err)));
});
$('#newroom').addEventListener('submit', (e) => {
  e.preventDefault();
  const name = `room:${$('#roomname').value.trim()}`;
  if (!document.querySelector(`#rooms button[data-room="${CSS.escape(name)}"]`)) {
    const b = el('button', { 'data-room': name }, name.slice(5));
    $('#rooms').append(b);
  }
  $('#roomname').value = '';
  join(name).catch((err) => notice(String(err.message || err)));
});
$('#composer').addEventListener('submit', (e) => {
  e.preventDefault();
  const text = $('#text').value;
  if (!text.trim()) return;
  $('#text').value = '';
  sendMessage(text).catch((err) => notice(`not sent: ${err.message}`));
});
window.chat = { get client() { return client; }, get room() { return room; }, flush: () => tracing?.flush() };
