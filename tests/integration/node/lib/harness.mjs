// Test harness for the ws-based integration tests: starts wstrace (path in
// WSTRACE_BIN) on free ports, reads the ports from its JSON "wstrace
// listening" log line, stops it by pid (SIGTERM, then SIGKILL after a bound),
// and wraps ws clients so a test can await the next message with a deadline.
// checkSubscribed / checkMessage compare a reply's exact fields (epoch and
// offset included); Positions follows one client's offsets per channel.
// Nothing sleeps to synchronise: every wait is on an event with a timeout.
//
// Fail, don't hang: every wait here has a bound and fails naming what did
// not happen; `test` (use it instead of node:test's) gives each test an
// overall TEST_TIMEOUT; and whatever a test left running (a test that timed
// out never reaches its `finally`) is killed when the file's tests are done,
// so the file's process ends.

import { spawn } from 'node:child_process';
import { existsSync } from 'node:fs';
import { createInterface } from 'node:readline';
import http from 'node:http';
import net from 'node:net';
import { after, test as nodeTest } from 'node:test';
import WebSocket from 'ws';

// Generous bounds (the suite also runs against an ASan+UBSan debug build
// on two busy cores); deadlines, not delays. IO_TIMEOUT bounds one awaited
// event (a reply, a close, an /api/stats condition); TEST_TIMEOUT one test.
export const IO_TIMEOUT = 20000;
export const TEST_TIMEOUT = 60000;
const START_TIMEOUT = 30000;
const STOP_TIMEOUT = 30000;
const SETPRIV = '/usr/bin/setpriv';

const children = new Set();
function killChildren() {
  for (const c of children) {
    try { c.kill('SIGKILL'); } catch { /* already gone */ }
  }
}
process.on('exit', killChildren);
after(killChildren);

// node:test's test(), with { timeout: TEST_TIMEOUT } unless options say otherwise.
export function test(name, options, fn) {
  if (typeof options === 'function') [options, fn] = [{}, options];
  return nodeTest(name, { timeout: TEST_TIMEOUT, ...options }, fn);
}

// Rejects with "timed out after N s waiting for <what>" unless `promise`
// settles within `ms`; `what` may be a function, called at the deadline (to
// say how far the wait got).
export function withTimeout(promise, ms, what) {
  let timer;
  const t = new Promise((_, reject) => {
    timer = setTimeout(() => {
      const desc = typeof what === 'function' ? what() : what;
      reject(new Error(`timed out after ${ms / 1000} s waiting for ${desc}`));
    }, ms);
  });
  return Promise.race([promise, t]).finally(() => clearTimeout(timer));
}

export class WstraceServer {
  constructor(args = [], { threads = 2 } = {}) {
    this.args = args;
    this.threads = threads;
    this.lines = [];
    this.exitCode = undefined;
  }

  async start() {
    const bin = process.env.WSTRACE_BIN;
    if (!bin) throw new Error('set WSTRACE_BIN to the wstrace binary');
    const env = { ...process.env };
    for (const k of Object.keys(env)) {
      if ((k.startsWith('WSTRACE_') && k !== 'WSTRACE_BIN') || k.startsWith('OTEL_EXPORTER_OTLP')) {
        delete env[k];
      }
    }
    const listen = this.args.includes('--listen') ? [] : ['--listen', '127.0.0.1:0'];
    const argv = [...listen, '--admin', '127.0.0.1:0', '--log-format', 'json',
      '--threads', String(this.threads), ...this.args];
    // setpriv execs the server in place (same pid) with a parent-death
    // signal, so a killed test run leaves no server behind.
    this.proc = existsSync(SETPRIV)
      ? spawn(SETPRIV, ['--pdeathsig', 'KILL', '--', bin, ...argv], { stdio: ['ignore', 'ignore', 'pipe'], env })
      : spawn(bin, argv, { stdio: ['ignore', 'ignore', 'pipe'], env });
    children.add(this.proc);
    this.exited = new Promise((resolve) => {
      this.proc.on('exit', (code, signal) => {
        children.delete(this.proc);
        this.exitCode = code === null ? `signal ${signal}` : code;
        resolve(this.exitCode);
      });
    });
    const rl = createInterface({ input: this.proc.stderr });
    const listening = new Promise((resolve, reject) => {
      rl.on('line', (line) => {
        this.lines.push(line);
        try {
          const j = JSON.parse(line);
          if (j.msg === 'wstrace listening') resolve(j);
        } catch { /* not JSON */ }
      });
      this.exited.then((code) => reject(new Error(`wstrace exited (${code}) before listening:\n${this.stderr()}`)));
    });
    const j = await withTimeout(listening, START_TIMEOUT, 'wstrace to start');
    this.port = j.port;
    this.adminPort = j.admin_port;
    this.apiPort = j.api_port;
    return this;
  }

  stderr() { return this.lines.join('\n'); }

  url(path = '/ws') { return `ws://127.0.0.1:${this.port}${path}`; }

  signal(sig) {
    if (this.exitCode === undefined) this.proc.kill(sig);
  }

  async waitExit(ms) {
    return withTimeout(this.exited, ms, 'wstrace to exit');
  }

  // SIGTERM, SIGKILL after a bound; returns the exit code.
  async stop() {
    if (this.exitCode !== undefined) return this.exitCode;
    this.proc.kill('SIGTERM');
    try {
      return await this.waitExit(STOP_TIMEOUT);
    } catch {
      this.proc.kill('SIGKILL');
      await withTimeout(this.exited, STOP_TIMEOUT, 'wstrace to die after SIGKILL');
      return `not exited ${STOP_TIMEOUT / 1000} s after SIGTERM (killed: ${this.exitCode})`;
    }
  }

  adminGet(path) {
    return new Promise((resolve, reject) => {
      const req = http.get({ host: '127.0.0.1', port: this.adminPort, path, agent: false }, (res) => {
        let body = '';
        res.setEncoding('utf8');
        res.on('data', (c) => { body += c; });
        res.on('end', () => resolve({ status: res.statusCode, body }));
      });
      req.setTimeout(IO_TIMEOUT, () => req.destroy(new Error(`GET ${path} timed out`)));
      req.on('error', reject);
    });
  }

  // POST /api/v1/<method> on the server API (--api); resolves with the parsed answer.
  api(method, body = {}) {
    return new Promise((resolve, reject) => {
      const data = JSON.stringify(body);
      const req = http.request({
        host: '127.0.0.1', port: this.apiPort, path: `/api/v1/${method}`, method: 'POST', agent: false,
        headers: { 'Content-Type': 'application/json', 'Content-Length': Buffer.byteLength(data) },
      }, (res) => {
        let text = '';
        res.setEncoding('utf8');
        res.on('data', (c) => { text += c; });
        res.on('end', () => {
          if (res.statusCode !== 200) reject(new Error(`api ${method}: ${res.statusCode} ${text}`));
          else resolve(JSON.parse(text));
        });
      });
      req.setTimeout(IO_TIMEOUT, () => req.destroy(new Error(`api ${method} timed out`)));
      req.on('error', reject);
      req.end(data);
    });
  }

  async stats() {
    const r = await this.adminGet('/api/stats');
    return JSON.parse(r.body);
  }

  // Sum of a Prometheus series' samples whose labels include `labels`.
  async metric(name, labels = {}) {
    const r = await this.adminGet('/metrics');
    let sum = null;
    for (const line of r.body.split('\n')) {
      if (line.startsWith('#')) continue;
      const m = /^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{([^}]*)\})?\s+(\S+)/.exec(line);
      if (!m || m[1] !== name) continue;
      const lb = Object.fromEntries([...(m[3] || '').matchAll(/(\w+)="([^"]*)"/g)].map((x) => [x[1], x[2]]));
      if (Object.entries(labels).every(([k, v]) => lb[k] === v)) sum = (sum ?? 0) + Number(m[4]);
    }
    return sum;
  }

  // Polls /api/stats until pred(stats) holds; a bounded poll, not a sleep.
  async waitStats(pred, what = 'condition', ms = IO_TIMEOUT) {
    const deadline = Date.now() + ms;
    for (;;) {
      const s = await this.stats();
      if (pred(s)) return s;
      if (Date.now() > deadline) throw new Error(`timed out after ${ms / 1000} s waiting for /api/stats ${what}; last: ${JSON.stringify(s)}`);
      await new Promise((r) => setTimeout(r, 20));
    }
  }
}

export async function startServer(args = [], opts = {}) {
  return new WstraceServer(args, opts).start();
}

// A ws client with an awaitable message queue.
export class Client {
  constructor(ws) {
    this.ws = ws;
    this.queue = [];
    this.waiters = [];
    this.closed = new Promise((resolve) => {
      ws.on('close', (code, reason) => {
        this.closeCode = code;
        this.closeReason = reason.toString();
        resolve({ code, reason: this.closeReason });
        for (const w of this.waiters.splice(0)) w.reject(new Error(`closed with ${code} ${this.closeReason}`));
      });
    });
    ws.on('message', (data, isBinary) => {
      const msg = { data, isBinary };
      const w = this.waiters.shift();
      if (w) w.resolve(msg); else this.queue.push(msg);
    });
    ws.on('error', () => { /* the close event reports it */ });
  }

  static async connect(url, options = {}) {
    const ws = new WebSocket(url, { perMessageDeflate: false, maxPayload: 64 * 1024 * 1024, ...options });
    const c = new Client(ws);
    await withTimeout(new Promise((resolve, reject) => {
      ws.once('upgrade', (res) => { c.response = res; });
      ws.once('open', resolve);
      ws.once('error', reject);
      ws.once('unexpected-response', (req, res) => reject(Object.assign(new Error(`HTTP ${res.statusCode}`), { statusCode: res.statusCode, headers: res.headers })));
    }), IO_TIMEOUT, `connect ${url}`);
    return c;
  }

  next(ms = IO_TIMEOUT, what = 'a message') {
    if (this.queue.length) return Promise.resolve(this.queue.shift());
    if (this.closeCode !== undefined) return Promise.reject(new Error(`closed with ${this.closeCode} while waiting for ${what}`));
    const waiter = {};
    const p = new Promise((resolve, reject) => Object.assign(waiter, { resolve, reject }));
    this.waiters.push(waiter);
    return withTimeout(p, ms, what).catch((e) => {
      // Timed out: the next message must not go to this abandoned waiter.
      const i = this.waiters.indexOf(waiter);
      if (i >= 0) this.waiters.splice(i, 1);
      throw e;
    });
  }

  async json(ms, what) {
    const m = await this.next(ms, what);
    if (m.isBinary) throw new Error('expected a text message');
    return JSON.parse(m.data.toString());
  }

  send(obj) {
    this.ws.send(typeof obj === 'string' || Buffer.isBuffer(obj) ? obj : JSON.stringify(obj));
  }

  async request(obj, ms) {
    this.send(obj);
    const text = typeof obj === 'string' ? obj : JSON.stringify(obj);
    return this.json(ms, `the reply to ${text.slice(0, 80)}`);
  }

  // Subscribes (with `opts.id` when given) and returns the Subscribed reply
  // (the next message), checked with checkSubscribed(r, channel, opts):
  // exactly type, channel, epoch, offset, and id; opts.epoch / opts.offset
  // are what they must be.
  async subscribe(channel, opts = {}) {
    const req = { type: 'Subscribe', channel };
    if (opts.id !== undefined) req.id = opts.id;
    return checkSubscribed(await this.request(req), channel, opts);
  }

  async close(code = 1000) {
    if (this.closeCode === undefined) this.ws.close(code);
    return withTimeout(this.closed, IO_TIMEOUT, 'the close handshake');
  }

  waitClose(ms = IO_TIMEOUT, what = 'the server to close the connection') {
    return withTimeout(this.closed, ms, what);
  }
}

// -- the protocol's replies and streams (docs/PROTOCOL.md) -------------------

function exactFields(r, type, want) {
  const got = Object.keys(r ?? {}).sort();
  if (r?.type !== type || JSON.stringify(got) !== JSON.stringify([...want].sort())) {
    throw new Error(`expected a ${type} with exactly ${[...want].sort()}, got ${JSON.stringify(r).slice(0, 300)}`);
  }
}

// r is the Subscribed reply for `channel`: exactly type, channel, epoch (a
// non-empty string), offset (an integer >= 0), plus id when `opts.id` is
// given; `opts.epoch` / `opts.offset`, when given, must match. Returns r.
export function checkSubscribed(r, channel, opts = {}) {
  const want = ['type', 'channel', 'epoch', 'offset'];
  if (opts.id !== undefined) want.push('id');
  exactFields(r, 'Subscribed', want);
  const bad = (why) => { throw new Error(`Subscribed ${why}: ${JSON.stringify(r)}`); };
  if (r.channel !== channel) bad(`for ${r.channel}, expected ${channel}`);
  if (typeof r.epoch !== 'string' || r.epoch === '') bad('epoch is not a non-empty string');
  if (!Number.isInteger(r.offset) || r.offset < 0) bad('offset is not an integer >= 0');
  if (opts.id !== undefined && r.id !== opts.id) bad(`id not echoed as ${JSON.stringify(opts.id)}`);
  if (opts.epoch !== undefined && r.epoch !== opts.epoch) bad(`epoch, expected ${opts.epoch}`);
  if (opts.offset !== undefined && r.offset !== opts.offset) bad(`offset, expected ${opts.offset}`);
  return r;
}

// m is a delivered Message on `channel`: exactly type, channel, content,
// offset (an integer >= 1), with `content` / `offset` when given.
export function checkMessage(m, channel, content, offset) {
  exactFields(m, 'Message', ['type', 'channel', 'content', 'offset']);
  const bad = (why) => { throw new Error(`Message ${why}: ${JSON.stringify(m).slice(0, 300)}`); };
  if (m.channel !== channel) bad(`on ${m.channel}, expected ${channel}`);
  if (!Number.isInteger(m.offset) || m.offset < 1) bad('offset is not an integer >= 1');
  if (content !== undefined && m.content !== content) bad(`content, expected ${String(content).slice(0, 80)}`);
  if (offset !== undefined && m.offset !== offset) bad(`offset, expected ${offset}`);
  return m;
}

// One client's position per channel, from its Subscribed replies: message()
// checks each delivered Message is its channel's next offset (last + 1:
// contiguous, nothing lost or twice, one order).
export class Positions {
  constructor(who = 'client') { this.who = who; this.epoch = new Map(); this.last = new Map(); }

  subscribed(r) {
    this.epoch.set(r.channel, r.epoch);
    this.last.set(r.channel, r.offset);
    return r;
  }

  message(m, channel = m?.channel, content = undefined) {
    checkMessage(m, channel, content);
    if (!this.last.has(channel)) throw new Error(`${this.who}: a Message on ${channel}, not subscribed: ${JSON.stringify(m).slice(0, 200)}`);
    const want = this.last.get(channel) + 1;
    if (m.offset !== want) {
      throw new Error(`${this.who}: ${channel} offset ${m.offset}, expected ${want}: ${JSON.stringify(m).slice(0, 200)}`);
    }
    this.last.set(channel, want);
    return m;
  }
}

// Writes raw bytes on a fresh TCP connection; resolves with everything the
// server sent until it closed.
export function rawExchange(port, bytes, ms = IO_TIMEOUT) {
  return withTimeout(new Promise((resolve, reject) => {
    const s = net.connect(port, '127.0.0.1', () => s.write(bytes));
    const chunks = [];
    s.on('data', (c) => chunks.push(c));
    s.on('end', () => { s.destroy(); resolve(Buffer.concat(chunks)); });
    s.on('error', reject);
  }), ms, 'the server to answer and close');
}

// A loopback port free now (for a server that must come back on the same one).
export function freePort() {
  return new Promise((resolve, reject) => {
    const s = net.createServer();
    s.listen(0, '127.0.0.1', () => {
      const { port } = s.address();
      s.close(() => resolve(port));
    });
    s.on('error', reject);
  });
}

// A Debian redis-server on a free loopback port, without persistence,
// killed with the file's other children: { url, proc }.
export async function startRedis() {
  const port = await freePort();
  const proc = spawn('redis-server', ['--port', String(port), '--bind', '127.0.0.1', '--save', '',
    '--appendonly', 'no'], { stdio: ['ignore', 'pipe', 'pipe'] });
  children.add(proc);
  proc.on('exit', () => children.delete(proc));
  const ready = new Promise((resolve, reject) => {
    proc.stdout.on('data', (d) => { if (/Ready to accept connections/.test(String(d))) resolve(); });
    proc.on('exit', (code) => reject(new Error(`redis-server exited ${code}`)));
  });
  await withTimeout(ready, IO_TIMEOUT, 'redis-server to start');
  return { url: `redis://127.0.0.1:${port}`, proc };
}

export const haveRedis = ['/usr/bin/redis-server', '/usr/local/bin/redis-server'].some(existsSync);
