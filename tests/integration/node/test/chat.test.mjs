// The chat demo (examples/chat, on wstrace-client) in headless Chromium:
// three people in one room, with history on join, presence and Join/Leave,
// and one trace from the sending page through wstrace to the receiving page,
// read back from a real OTLP receiver (tests/integration/otlp). Screenshots
// go to $WSTRACE_ARTIFACTS when it is set.
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { after, before } from 'node:test';
import { fileURLToPath } from 'node:url';
import { chromium } from 'playwright-core';
import { IO_TIMEOUT, test, withTimeout } from '../lib/harness.mjs';

const CHROMIUM = process.env.WSTRACE_CHROMIUM || '/usr/bin/chromium';
const root = fileURLToPath(new URL('../../../../', import.meta.url));
const SERVE = join(root, 'examples/chat/serve.mjs');
const RECEIVER = join(root, 'tests/integration/otlp/receiver.js');
const dir = mkdtempSync(join(tmpdir(), 'wstrace-chat-'));
const artifacts = process.env.WSTRACE_ARTIFACTS;
const otlpOut = join(dir, 'otlp.jsonl');
const procs = [];

// Starts `args` and resolves with its first stdout line that `parse` accepts.
function startProcess(what, args, env, parse) {
  const p = spawn(process.execPath, args, { stdio: ['ignore', 'pipe', 'pipe'], env });
  procs.push(p);
  let err = '';
  p.stderr.on('data', (d) => { err += d; });
  return withTimeout(new Promise((resolve, reject) => {
    createInterface({ input: p.stdout }).on('line', (line) => {
      const v = parse(line);
      if (v !== undefined) resolve(v);
    });
    p.on('exit', (code) => reject(new Error(`${what} exited (${code}): ${err}`)));
  }), IO_TIMEOUT, what);
}

let browser;
let chat;
before(async () => {
  assert.ok(existsSync(CHROMIUM), `no Chromium at ${CHROMIUM}: run scripts/setup.sh --test (or set WSTRACE_CHROMIUM)`);
  assert.ok(existsSync(join(root, 'examples/chat/public/app.js')), 'examples/chat is not built: run scripts/setup.sh --test');
  const otlpPort = await startProcess('the OTLP receiver', [RECEIVER, '--port', '0', '--out', otlpOut], process.env,
    (l) => (l.startsWith('LISTENING ') ? Number(l.split(' ')[1]) : undefined));
  const env = { ...process.env, OTEL_BSP_SCHEDULE_DELAY: '100', OTEL_SERVICE_NAME: 'wstrace' };
  for (const k of Object.keys(env)) if (k.startsWith('WSTRACE_') && k !== 'WSTRACE_BIN') delete env[k];
  chat = await startProcess('examples/chat/serve.mjs', [SERVE, '--port', '0', '--json', '--otlp',
    `http://127.0.0.1:${otlpPort}`], env, (l) => { try { return JSON.parse(l); } catch { return undefined; } });
  browser = await withTimeout(chromium.launch({ executablePath: CHROMIUM, headless: true, args: ['--no-sandbox'] }),
    IO_TIMEOUT, 'Chromium to start');
});
after(async () => {
  if (browser) await browser.close();
  for (const p of procs) p.kill('SIGTERM');
  await Promise.all(procs.map((p) => (p.exitCode !== null ? null : new Promise((r) => p.on('exit', r)))));
  rmSync(dir, { recursive: true, force: true });
});

async function person(name, errors) {
  const page = await browser.newPage();
  page.setDefaultTimeout(IO_TIMEOUT);
  page.on('pageerror', (e) => errors.push(`${name}: ${e.message}`));
  page.on('console', (m) => { if (m.type() === 'error') errors.push(`${name}: ${m.text()}`); });
  await page.goto(chat.chat);
  await page.fill('#name', name);
  await page.click('#signin button');
  await page.waitForSelector('#status.ok');
  await page.waitForFunction(() => window.chat.room === 'room:general' && window.chat.client.subscription('room:general')?.state === 'subscribed');
  return page;
}

const say = async (page, text) => {
  await page.fill('#text', text);
  await page.press('#text', 'Enter');
};
const live = (text) => `#messages li:not(.history):has(.text:text-is("${text}"))`;
const shot = async (page, name) => {
  if (!artifacts) return;
  mkdirSync(artifacts, { recursive: true });
  await page.screenshot({ path: join(artifacts, `chat-${name}.png`) });
};

// Every span the receiver got so far, with its service.name.
function exportedSpans() {
  if (!existsSync(otlpOut)) return [];
  const spans = [];
  for (const raw of readFileSync(otlpOut, 'utf8').split('\n').slice(0, -1)) {
    const line = JSON.parse(raw);
    if (line.signal !== 'traces' || !line.request) continue;
    for (const rs of line.request.resourceSpans || []) {
      const svc = (rs.resource?.attributes || []).find((a) => a.key === 'service.name')?.value?.stringValue;
      for (const ss of rs.scopeSpans || []) for (const s of ss.spans || []) spans.push({ ...s, service: svc });
    }
  }
  return spans;
}

test('two people chat through the demo; a third gets the history on join; presence follows them', async () => {
  const errors = [];
  const alice = await person('alice', errors);
  const bob = await person('bob', errors);
  await alice.waitForSelector('#members li[data-user="bob"]');
  await bob.waitForSelector('#members li[data-user="alice"]');
  await say(alice, 'hello bob');
  await bob.waitForSelector(live('hello bob'));
  await say(bob, 'hi alice');
  await alice.waitForSelector(live('hi alice'));
  await alice.waitForSelector(live('hello bob'));
  const carol = await person('carol', errors);
  const history = await carol.$$eval('#messages li.history', (lis) => lis.map((li) => [li.querySelector('.user').textContent, li.querySelector('.text').textContent]));
  assert.deepEqual(history, [['alice', 'hello bob'], ['bob', 'hi alice']]);
  assert.equal(await carol.textContent('#count'), '3');
  await shot(alice, 'alice');
  await bob.close();
  await alice.waitForSelector('#members li[data-user="bob"]', { state: 'detached' });
  assert.equal(await alice.textContent('#count'), '2');
  await alice.close();
  await carol.close();
  assert.deepEqual(errors, []);
});

test('one trace id runs from the sending page through wstrace to the receiving page', async () => {
  const errors = [];
  const dave = await person('dave', errors);
  const erin = await person('erin', errors);
  await say(dave, 'traced hello');
  const li = await erin.waitForSelector(live('traced hello'));
  const traceId = await li.getAttribute('data-trace-id');
  const receiveSpanId = await li.getAttribute('data-receive-span-id');
  assert.match(traceId, /^[0-9a-f]{32}$/);
  await Promise.all([dave.evaluate(() => window.chat.flush()), erin.evaluate(() => window.chat.flush())]);
  const want = ['chat.send', 'websocket.message.handle', 'websocket.broadcast', 'websocket.fanout', 'chat.receive'];
  const deadline = Date.now() + IO_TIMEOUT;
  let spans = [];
  for (;;) {
    spans = exportedSpans().filter((s) => s.traceId === traceId);
    if (want.every((n) => spans.some((s) => s.name === n))) break;
    if (Date.now() > deadline) {
      assert.fail(`trace ${traceId} has ${JSON.stringify(spans.map((s) => `${s.service}/${s.name}`))}, wants ${want}`);
    }
    await new Promise((r) => setTimeout(r, 50));
  }
  const one = (name) => spans.find((s) => s.name === name);
  const send = one('chat.send');
  const handle = one('websocket.message.handle');
  const broadcast = one('websocket.broadcast');
  const fanout = one('websocket.fanout');
  // Both pages receive it (the sender is in the room too): erin's span is the one she made.
  const receive = spans.find((s) => s.name === 'chat.receive' && s.spanId === receiveSpanId);
  assert.ok(receive, `erin's chat.receive span ${receiveSpanId} is exported`);
  assert.equal(spans.filter((s) => s.name === 'chat.receive').length, 2, 'one receive span per page');
  assert.equal(send.service, 'wstrace-chat');
  assert.equal(receive.service, 'wstrace-chat');
  assert.equal(handle.service, 'wstrace');
  assert.equal(handle.parentSpanId, send.spanId, 'the server continues the page span');
  assert.equal(broadcast.parentSpanId, handle.spanId);
  assert.equal(fanout.parentSpanId, broadcast.spanId);
  assert.equal(receive.parentSpanId, broadcast.spanId, 'the receiving page continues the publication');
  await shot(erin, 'erin');
  await dave.close();
  await erin.close();
  assert.deepEqual(errors, []);
});
