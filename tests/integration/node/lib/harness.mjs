// Test harness for the ws-based integration tests: starts wstrace (path in
// WSTRACE_BIN) on free ports, reads the ports from its JSON "wstrace
// listening" log line, stops it by pid (SIGTERM, then SIGKILL after a bound),
// and wraps ws clients so a test can await the next message with a deadline.
// Nothing sleeps to synchronise: every wait is on an event with a timeout.

import { spawn } from 'node:child_process';
import { existsSync } from 'node:fs';
import { createInterface } from 'node:readline';
import http from 'node:http';
import net from 'node:net';
import WebSocket from 'ws';

export const IO_TIMEOUT = 20000;
const START_TIMEOUT = 30000;
const STOP_TIMEOUT = 30000;
const SETPRIV = '/usr/bin/setpriv';

const children = new Set();
process.on('exit', () => {
  for (const c of children) {
    try { c.kill('SIGKILL'); } catch { /* already gone */ }
  }
});

export function withTimeout(promise, ms, what) {
  let timer;
  const t = new Promise((_, reject) => {
    timer = setTimeout(() => reject(new Error(`timed out after ${ms} ms waiting for ${what}`)), ms);
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
    const argv = ['--listen', '127.0.0.1:0', '--admin', '127.0.0.1:0', '--log-format', 'json',
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
      await this.exited;
      return this.exitCode;
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
      if (Date.now() > deadline) throw new Error(`timed out waiting for /api/stats ${what}: ${JSON.stringify(s)}`);
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

  next(ms = IO_TIMEOUT) {
    if (this.queue.length) return Promise.resolve(this.queue.shift());
    if (this.closeCode !== undefined) return Promise.reject(new Error(`closed with ${this.closeCode}`));
    const p = new Promise((resolve, reject) => this.waiters.push({ resolve, reject }));
    return withTimeout(p, ms, 'a message');
  }

  async json(ms) {
    const m = await this.next(ms);
    if (m.isBinary) throw new Error('expected a text message');
    return JSON.parse(m.data.toString());
  }

  send(obj) {
    this.ws.send(typeof obj === 'string' || Buffer.isBuffer(obj) ? obj : JSON.stringify(obj));
  }

  async request(obj, ms) {
    this.send(obj);
    return this.json(ms);
  }

  async subscribe(channel) {
    const r = await this.request({ type: 'Subscribe', channel });
    if (r.type !== 'Subscribed' || r.channel !== channel) throw new Error(`subscribe: ${JSON.stringify(r)}`);
  }

  async close(code = 1000) {
    if (this.closeCode === undefined) this.ws.close(code);
    return withTimeout(this.closed, IO_TIMEOUT, 'the close handshake');
  }

  waitClose(ms = IO_TIMEOUT) {
    return withTimeout(this.closed, ms, 'the server to close the connection');
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
