#!/usr/bin/env node
// The chat demo's server: starts a wstrace of its own (this directory's
// chat.toml, a random token secret), serves the page, signs demo tokens and,
// with --otlp, forwards the page's spans to the same collector as wstrace's.
//
//   node serve.mjs [--port 8000] [--host 127.0.0.1] [--wstrace PATH] [--otlp URL]
//
// A demo, not an identity provider: /token signs a token for any name asked.
import { spawn } from 'node:child_process';
import { createHmac, randomBytes } from 'node:crypto';
import { existsSync, readFileSync } from 'node:fs';
import http from 'node:http';
import { dirname, join } from 'node:path';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';

const here = dirname(fileURLToPath(import.meta.url));
const USAGE = `usage: node serve.mjs [--port 8000] [--host 127.0.0.1] [--wstrace PATH] [--otlp URL] [--json]
  --port     the page's HTTP port (0: a free one)
  --host     address of the page and of wstrace's WebSocket listener
  --wstrace  the wstrace binary (default: $WSTRACE_BIN, else ../../build/wstrace)
  --otlp     OTLP/HTTP collector (e.g. http://127.0.0.1:4318): wstrace exports there and
             the pages' spans are forwarded there, so one trace runs browser to browser
  --json     print the ready line as JSON (for scripts)`;

function parseArgs(argv) {
  const o = { port: 8000, host: '127.0.0.1', wstrace: process.env.WSTRACE_BIN || join(here, '../../build/wstrace'), otlp: '', json: false };
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i];
    const value = () => {
      if (i + 1 >= argv.length) fail(`${a} needs a value`);
      return argv[++i];
    };
    if (a === '--port') o.port = Number(value());
    else if (a === '--host') o.host = value();
    else if (a === '--wstrace') o.wstrace = value();
    else if (a === '--otlp') o.otlp = value().replace(/\/+$/, '');
    else if (a === '--json') o.json = true;
    else if (a === '--help' || a === '-h') { console.log(USAGE); process.exit(0); }
    else fail(`unknown option ${a}`);
  }
  if (!Number.isInteger(o.port) || o.port < 0 || o.port > 65535) fail('--port must be 0..65535');
  return o;
}

function fail(msg) {
  console.error(`chat: ${msg}\n${USAGE}`);
  process.exit(2);
}

const opts = parseArgs(process.argv.slice(2));
if (!existsSync(opts.wstrace)) {
  fail(`no wstrace binary at ${opts.wstrace}: build it (scripts/run.sh builds build/wstrace) or pass --wstrace`);
}
const page = join(here, 'public');
for (const f of ['index.html', 'app.js']) {
  if (!existsSync(join(page, f))) fail(`public/${f} is missing: run 'npm ci && npm run build' in examples/chat (run.sh does)`);
}

// --- demo tokens (HS256) ---------------------------------------------------
const secret = randomBytes(32).toString('hex');
const TOKEN_TTL_S = 600;
const b64url = (x) => Buffer.from(typeof x === 'string' ? x : JSON.stringify(x)).toString('base64url');
function sign(user) {
  const now = Math.floor(Date.now() / 1000);
  const body = `${b64url({ alg: 'HS256', typ: 'JWT' })}.${b64url({ sub: user, iat: now, exp: now + TOKEN_TTL_S })}`;
  return `${body}.${createHmac('sha256', secret).update(body).digest('base64url')}`;
}

// --- wstrace -----------------------------------------------------------------
const env = { ...process.env };
if (opts.otlp) {
  env.OTEL_EXPORTER_OTLP_ENDPOINT = opts.otlp;
  env.OTEL_SERVICE_NAME ??= 'wstrace';
}
const argv = ['--listen', `${opts.host}:0`, '--admin', '127.0.0.1:0',
  '--config', join(here, 'chat.toml'), '--auth-secret', secret, '--log-format', 'json'];
// setpriv execs wstrace in place with a parent-death signal: it never outlives this script.
const wstrace = existsSync('/usr/bin/setpriv')
  ? spawn('/usr/bin/setpriv', ['--pdeathsig', 'TERM', '--', opts.wstrace, ...argv], { stdio: ['ignore', 'ignore', 'pipe'], env })
  : spawn(opts.wstrace, argv, { stdio: ['ignore', 'ignore', 'pipe'], env });
const listening = new Promise((resolve, reject) => {
  const rl = createInterface({ input: wstrace.stderr });
  rl.on('line', (line) => {
    let j;
    try { j = JSON.parse(line); } catch { return; }
    if (j.msg === 'wstrace listening') resolve(j);
    else if (j.level === 'error' || j.level === 'warn') console.error(`wstrace: ${j.msg} ${JSON.stringify(j)}`);
  });
  wstrace.on('exit', (code, sig) => reject(new Error(`wstrace exited (${code ?? sig}) before listening`)));
});
wstrace.on('exit', (code, sig) => {
  console.error(`chat: wstrace exited (${code ?? sig}); stopping`);
  process.exit(1);
});
function stop() {
  wstrace.removeAllListeners('exit');
  wstrace.kill('SIGTERM');
  wstrace.on('exit', () => process.exit(0));
  setTimeout(() => process.exit(0), 5000).unref();
}
process.on('SIGTERM', stop);
process.on('SIGINT', stop);

const ws = await listening.catch((e) => fail(e.message));

// --- HTTP ------------------------------------------------------------------------
const TYPES = { '.html': 'text/html; charset=utf-8', '.js': 'text/javascript; charset=utf-8', '.map': 'application/json' };
const USER = /^[A-Za-z0-9_.-]{1,32}$/;

function send(res, status, type, body) {
  res.writeHead(status, { 'Content-Type': type, 'Cache-Control': 'no-store' });
  res.end(body);
}

function forwardSpans(req, res) {
  const chunks = [];
  req.on('data', (c) => chunks.push(c));
  req.on('end', () => {
    const up = http.request(`${opts.otlp}/v1/traces`, {
      method: 'POST', headers: { 'Content-Type': req.headers['content-type'] || 'application/json' },
    }, (r) => {
      res.writeHead(r.statusCode || 502, { 'Content-Type': r.headers['content-type'] || 'application/json' });
      r.pipe(res);
    });
    up.on('error', (e) => send(res, 502, 'text/plain', `collector unreachable: ${e.message}`));
    up.end(Buffer.concat(chunks));
  });
}

const server = http.createServer((req, res) => {
  const url = new URL(req.url, 'http://x');
  if (req.method === 'POST' && url.pathname === '/v1/traces') {
    if (!opts.otlp) return send(res, 404, 'text/plain', 'tracing is off (start with --otlp URL)');
    return forwardSpans(req, res);
  }
  if (req.method !== 'GET') return send(res, 405, 'text/plain', 'GET only');
  if (url.pathname === '/config') {
    return send(res, 200, 'application/json', JSON.stringify({
      ws: `ws://${req.headers.host?.replace(/:\d+$/, '') || opts.host}:${ws.port}/ws`, tracing: Boolean(opts.otlp),
    }));
  }
  if (url.pathname === '/token') {
    const user = url.searchParams.get('user') || '';
    if (!USER.test(user)) return send(res, 400, 'text/plain', 'user: 1-32 of A-Z a-z 0-9 _ . -');
    return send(res, 200, 'application/json', JSON.stringify({ token: sign(user) }));
  }
  const file = url.pathname === '/' ? 'index.html' : url.pathname.slice(1);
  if (!/^[A-Za-z0-9_-]+\.(html|js|map)$/.test(file) || !existsSync(join(page, file))) return send(res, 404, 'text/plain', 'not found');
  return send(res, 200, TYPES[file.slice(file.lastIndexOf('.'))], readFileSync(join(page, file)));
});
server.on('error', (e) => {
  console.error(`chat: cannot listen on ${opts.host}:${opts.port}: ${e.message} (try --port 0)`);
  stop();
});
server.listen(opts.port, opts.host, () => {
  const { port } = server.address();
  const info = { chat: `http://${opts.host}:${port}/`, ws: `ws://${opts.host}:${ws.port}/ws`,
    admin: `http://127.0.0.1:${ws.admin_port}/`, wstrace_pid: wstrace.pid, tracing: Boolean(opts.otlp) };
  if (opts.json) console.log(JSON.stringify(info));
  else {
    console.log(`chat: open ${info.chat} in two windows (wstrace on ${info.ws}, admin ${info.admin}` +
      `${opts.otlp ? `, traces to ${opts.otlp}` : ''}); Ctrl-C stops both`);
  }
});
