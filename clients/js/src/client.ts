// The connection: connect, reconnect with backoff, liveness, requests and
// their answers, token refresh. Per-channel bookkeeping is in subscription.ts.

import { Backoff } from './backoff.js';
import { Emitter } from './emitter.js';
import type { Handler, SubscribeOptions } from './subscription.js';
import { Subscription } from './subscription.js';
import type { OtelApi } from './trace.js';
import { publishTraceparent } from './trace.js';
import type {
  HistoryResult, MemberEvent, Position, PresenceResult, PublishResult, State, StateInfo,
} from './types.js';
import { WstraceError } from './types.js';

/** What the client needs of a WebSocket: the browser's, Node's, or `ws`'s. */
export interface WebSocketLike {
  readyState: number;
  send(data: string): void;
  close(code?: number, reason?: string): void;
  onopen: ((ev: unknown) => void) | null;
  onmessage: ((ev: { data: unknown }) => void) | null;
  onclose: ((ev: { code: number; reason: string }) => void) | null;
  onerror: ((ev: unknown) => void) | null;
  /** `ws` only: lets the client see the server's heartbeat Pings. */
  on?(event: 'ping', fn: () => void): unknown;
}

export type WebSocketConstructor = new (url: string) => WebSocketLike;

export interface ClientOptions {
  /** A JWT for the connection (sent as `?token=`). */
  token?: string;
  /**
   * Called for a token before each connection after the first (and the
   * first one when `token` is not given), and when the server asks for a
   * fresh one before the current one expires.
   */
  getToken?: () => string | Promise<string>;
  /** The WebSocket class (default: the global one). In Node < 22 pass `ws`'s. */
  WebSocket?: WebSocketConstructor;
  /** Reconnect delays: the first bound and the largest, ms (500, 20000). */
  minReconnectDelay?: number;
  maxReconnectDelay?: number;
  /** Reconnect at all (true). */
  reconnect?: boolean;
  /** How long a request (publish, history, presence) waits for its answer, ms (10000). */
  timeout?: number;
  /**
   * Liveness, ms. After `pingInterval` (25000) with no frame from the server
   * the client sends a protocol Ping; after `pongTimeout` (10000) more of
   * silence it drops the connection and reconnects. With `ws` the server's
   * own heartbeat Pings count as frames (browsers hide them).
   */
  pingInterval?: number;
  pongTimeout?: number;
  /** Your `@opentelemetry/api` module; without it the one the page registered is found. */
  otel?: OtelApi;
  /** Send a traceparent with each publish (true). */
  tracing?: boolean;
  /** Randomness for the backoff jitter (tests). */
  random?: () => number;
}

export interface ClientEvents {
  state: [State, StateInfo];
  /** An Error the server sent that answers no request of this client. */
  error: [WstraceError];
  /** The server confirmed a refreshed token; `expires` in seconds since the epoch. */
  refreshed: [number];
}

export interface PublishOptions {
  /** Send this traceparent instead of the active span's. */
  traceparent?: string;
}

interface Pending {
  resolve(v: Record<string, unknown>): void;
  reject(e: WstraceError): void;
  timer: ReturnType<typeof setTimeout> | undefined;
  frame: Record<string, unknown>;
}

const OPEN = 1;
/** A clock that wall-clock changes do not move. */
const now = (): number =>
  typeof performance !== 'undefined' && typeof performance.now === 'function' ? performance.now() : Date.now();
/** Subscribe errors that pass: retried on the same connection instead of ending the subscription. */
const TRANSIENT = new Set(['unavailable', 'rate_limited']);
/** A connection that lived this long resets the backoff. */
const STABLE_MS = 5000;

export class Client extends Emitter<ClientEvents> {
  readonly url: string;
  private readonly opts: ClientOptions;
  private readonly WS: WebSocketConstructor;
  private readonly backoff: Backoff;
  private ws: WebSocketLike | undefined;
  private _state: State = 'connecting';
  private subs = new Map<string, Subscription>();
  private subIds = new Map<number, Subscription>();
  private pending = new Map<number, Pending>();
  private queued: number[] = [];
  private nextId = 1;
  private token: string | undefined;
  private tokenUsed = false;
  private openedAt = 0;
  private lastRx = 0;
  private pingSentAt = 0;   // 0: no Ping outstanding
  private rxSinceOpen = false;
  private tokenSent = false;
  private retryTimers = new Set<ReturnType<typeof setTimeout>>();
  private reconnectTimer: ReturnType<typeof setTimeout> | undefined;
  private liveTimer: ReturnType<typeof setInterval> | undefined;
  /** Connections opened so far (1 + reconnects). */
  connects = 0;

  constructor(url: string, opts: ClientOptions = {}) {
    super();
    this.url = url;
    this.opts = opts;
    const WS = opts.WebSocket ?? (globalThis as { WebSocket?: WebSocketConstructor }).WebSocket;
    if (!WS) {
      throw new TypeError('wstrace-client: no global WebSocket here; pass one, e.g. new Client(url, { WebSocket: (await import("ws")).default })');
    }
    this.WS = WS;
    this.token = opts.token;
    this.backoff = new Backoff({
      minDelay: opts.minReconnectDelay ?? 500,
      maxDelay: opts.maxReconnectDelay ?? 20000,
      random: opts.random,
    });
    // Connect once the caller had the chance to add listeners.
    queueMicrotask(() => {
      if (this._state === 'connecting') void this.connect();
    });
  }

  get state(): State {
    return this._state;
  }

  /** Subscribes (now or once connected); one subscription per channel. */
  subscribe(channel: string, handler: Handler, opts?: SubscribeOptions): Subscription {
    if (this._state === 'closed') throw new WstraceError('closed', 'the client is closed');
    const old = this.subs.get(channel);
    if (old && old.state !== 'unsubscribed' && old.state !== 'failed') {
      throw new Error(`wstrace-client: already subscribed to ${channel}; unsubscribe first`);
    }
    const sub = new Subscription(channel, handler, opts);
    sub._leave = () => this.leave(sub);
    sub.on('error', () => this.forget(sub));
    this.subs.set(channel, sub);
    if (this.isOpen()) this.sendSubscribe(sub);
    return sub;
  }

  /** The subscription of `channel`, if any. */
  subscription(channel: string): Subscription | undefined {
    return this.subs.get(channel);
  }

  /**
   * Publishes `content` (a string; JSON.stringify structures) to `channel`.
   * Resolves with the message's position once the server placed it.
   */
  publish(channel: string, content: string, opts: PublishOptions = {}): Promise<PublishResult> {
    if (typeof content !== 'string') {
      return Promise.reject(new TypeError('wstrace-client: content must be a string'));
    }
    const frame: Record<string, unknown> = { type: 'Message', channel, content };
    if (opts.traceparent) frame.traceparent = opts.traceparent;
    else if (this.opts.tracing !== false) frame.traceparent = publishTraceparent(this.opts.otel);
    return this.request(frame).then((r) => ({
      channel, epoch: String(r.epoch), offset: Number(r.offset),
    }));
  }

  /** The channel's kept messages: the newest `limit`, or the first `limit` after `since`. */
  history(channel: string, opts: { since?: Position; limit?: number } = {}): Promise<HistoryResult> {
    const frame: Record<string, unknown> = { type: 'History', channel };
    if (opts.since) frame.since = { epoch: opts.since.epoch, offset: opts.since.offset };
    if (opts.limit !== undefined) frame.limit = opts.limit;
    return this.request(frame).then((r) => {
      const out: HistoryResult = {
        channel, epoch: String(r.epoch), offset: Number(r.offset),
        messages: Array.isArray(r.messages) ? (r.messages as HistoryResult['messages']) : [],
      };
      if (typeof r.recovered === 'boolean') out.recovered = r.recovered;
      return out;
    });
  }

  /** Who is subscribed to `channel` (a channel whose rule has `presence = true`). */
  presence(channel: string): Promise<PresenceResult> {
    return this.request({ type: 'Presence', channel }).then((r) => ({
      channel, count: Number(r.count), users: Number(r.users),
      clients: Array.isArray(r.clients) ? (r.clients as PresenceResult['clients']) : [],
    }));
  }

  /** Closes for good: no reconnect; pending requests fail with `closed`. */
  close(code = 1000, reason = ''): void {
    if (this._state === 'closed') return;
    const ws = this.ws;
    this.ws = undefined;
    this.teardown(new WstraceError('closed', 'the client was closed'));
    if (ws) closeSocket(ws, code, reason);
    this.finish({ code, reason });
  }

  /** For good: subscriptions end (a pending `ready` rejects with `closed`), then the state. */
  private finish(info: StateInfo): void {
    this._state = 'closed';
    const subs = [...this.subs.values()];
    this.subs.clear();
    for (const sub of subs) sub._end(new WstraceError('closed', 'the client was closed'));
    this.emit('state', 'closed', info);
  }

  // --- connection -------------------------------------------------------

  /** Read through a call: TypeScript would narrow a field across an await. */
  private closed(): boolean {
    return this._state === 'closed';
  }

  private isOpen(): boolean {
    return (this._state === 'connected' || this._state === 'connecting') && this.ws !== undefined &&
      this.ws.readyState === OPEN;
  }

  private async connect(): Promise<void> {
    this.reconnectTimer = undefined;
    if (this._state === 'closed') return;
    this.setState('connecting', { attempt: this.backoff.attempts });
    if (this.closed()) return;  // a listener closed it
    let token = this.token;
    if (this.opts.getToken && (token === undefined || this.tokenUsed)) {
      try {
        token = await this.opts.getToken();
      } catch (e) {
        if (this.closed()) return;
        this.retryOrEnd({ code: 1006, reason: `getToken failed: ${(e as Error)?.message ?? e}` });
        return;
      }
      if (this.closed()) return;
      this.token = token;
    }
    this.tokenUsed = true;
    let url = this.url;
    if (token) url += (url.includes('?') ? '&' : '?') + 'token=' + encodeURIComponent(token);
    let ws: WebSocketLike;
    try {
      ws = new this.WS(url);
    } catch (e) {
      this.retryOrEnd({ code: 1006, reason: String((e as Error)?.message ?? e) });
      return;
    }
    this.ws = ws;
    this.connects++;
    this.tokenSent = Boolean(token);
    ws.onopen = () => {
      if (this.ws === ws && !this.closed()) this.opened();
    };
    ws.onmessage = (ev) => {
      if (this.ws === ws) this.frame(ev.data);
    };
    ws.onclose = (ev) => {
      if (this.ws === ws) this.dropped(ev.code, ev.reason);
    };
    ws.onerror = () => {
      /* a close event follows */
    };
    if (typeof ws.on === 'function') {
      ws.on('ping', () => {
        if (this.ws === ws) this.heard();
      });
    }
  }

  private opened(): void {
    this.openedAt = now();
    this.lastRx = this.openedAt;
    this.pingSentAt = 0;
    this.rxSinceOpen = false;
    const every = Math.max(20, Math.min(this.pingInterval(), this.pongTimeout()) / 4);
    this.liveTimer = setInterval(() => this.checkLiveness(), every);
    // Sent before 'connected' is announced: a listener that subscribes then
    // sends its own Subscribe once, not a second one from here.
    for (const sub of this.subs.values()) {
      if (sub.state === 'subscribing') this.sendSubscribe(sub);
    }
    const queued = this.queued;
    this.queued = [];
    for (const id of queued) {
      const p = this.pending.get(id);
      if (p) this.send(p.frame);
    }
    this.setState('connected', {});
  }

  private heard(): void {
    this.lastRx = now();
    this.pingSentAt = 0;
  }

  private pingInterval(): number {
    return this.opts.pingInterval ?? 25000;
  }

  private pongTimeout(): number {
    return this.opts.pongTimeout ?? 10000;
  }

  private checkLiveness(): void {
    const t = now();
    if (this.pingSentAt === 0) {
      // Quiet for a while: ask. Only an unanswered Ping drops the link, so a
      // late timer (a throttled background tab) never drops a healthy one.
      if (t - this.lastRx >= this.pingInterval()) {
        this.pingSentAt = t;
        this.send({ type: 'Ping' });
      }
      return;
    }
    if (t - this.pingSentAt >= this.pongTimeout()) {
      // A dead link may never deliver a close event: give up on it now.
      const ws = this.ws;
      this.ws = undefined;
      if (ws) closeSocket(ws, 4000, 'no heartbeat');
      this.dropped(1006, `no frame from the server for ${Math.round(t - this.lastRx)} ms`);
    }
  }

  private dropped(code: number, reason: string): void {
    this.ws = undefined;
    if (this.closed()) return;
    if (this.openedAt && now() - this.openedAt >= STABLE_MS) this.backoff.reset();
    this.openedAt = 0;
    this.teardown(new WstraceError('disconnected', `the connection ended (${code}${reason ? ` ${reason}` : ''}) before the answer`), true);
    if (this.closed()) return;  // a subscription's listener closed the client
    // A static token refused at the door (1008 before anything else came)
    // will not get better; a 1008 later (an error budget spent) is retried.
    if (code === 1008 && this.tokenSent && !this.rxSinceOpen && !this.opts.getToken) {
      this.finish({ code, reason });
      return;
    }
    this.retryOrEnd({ code, reason });
  }

  private retryOrEnd(info: StateInfo): void {
    if (this.opts.reconnect === false) {
      this.finish(info);
      return;
    }
    this.scheduleReconnect(info);
  }

  private scheduleReconnect(info: StateInfo): void {
    const delay = this.backoff.next();
    this.setState('disconnected', { ...info, reconnectIn: delay, attempt: this.backoff.attempts });
    if (this.closed()) return;
    this.reconnectTimer = setTimeout(() => void this.connect(), delay);
  }

  /** Stops timers; fails what cannot survive the connection. Subscriptions wait for the next one. */
  private teardown(err: WstraceError, keepQueued = false): void {
    if (this.liveTimer) clearInterval(this.liveTimer);
    this.liveTimer = undefined;
    if (this.reconnectTimer) clearTimeout(this.reconnectTimer);
    this.reconnectTimer = undefined;
    for (const t of this.retryTimers) clearTimeout(t);
    this.retryTimers.clear();
    this.subIds.clear();
    for (const sub of this.subs.values()) sub._disconnected();
    const waiting = new Set(keepQueued ? this.queued : []);
    for (const [id, p] of this.pending) {
      if (waiting.has(id)) continue;
      this.pending.delete(id);
      if (p.timer) clearTimeout(p.timer);
      p.reject(err);
    }
    if (!keepQueued) this.queued = [];
  }

  private setState(s: State, info: StateInfo = {}): void {
    if (this.closed()) return;
    this._state = s;
    this.emit('state', s, info);
  }

  // --- frames -----------------------------------------------------------

  private send(frame: Record<string, unknown>): void {
    try {
      this.ws?.send(JSON.stringify(frame));
    } catch {
      /* the close event follows */
    }
  }

  private request(frame: Record<string, unknown>): Promise<Record<string, unknown>> {
    if (this._state === 'closed') return Promise.reject(new WstraceError('closed', 'the client is closed'));
    const id = this.nextId++;
    frame.id = id;
    return new Promise((resolve, reject) => {
      const timeout = this.opts.timeout ?? 10000;
      const timer = setTimeout(() => {
        this.pending.delete(id);
        const q = this.queued.indexOf(id);
        if (q >= 0) this.queued.splice(q, 1);
        reject(new WstraceError('timeout', `no answer to ${frame.type} within ${timeout} ms`));
      }, timeout);
      this.pending.set(id, { resolve, reject, timer, frame });
      if (this.isOpen()) this.send(frame);
      else this.queued.push(id);
    });
  }

  private sendSubscribe(sub: Subscription): void {
    const id = this.nextId++;
    this.subIds.set(id, sub);
    this.send(sub._subscribeFrame(id));
  }

  /** A node that cannot reach Redis, or a rate limit: try the same subscription again soon. */
  private retrySubscribe(sub: Subscription, e: WstraceError): void {
    this.emit('error', e);
    const ws = this.ws;
    const delay = 500 + Math.round((this.opts.random ?? Math.random)() * 1000);
    const timer = setTimeout(() => {
      this.retryTimers.delete(timer);
      if (this.ws === ws && this.isOpen() && sub.state === 'subscribing' && this.subs.get(sub.channel) === sub) {
        this.sendSubscribe(sub);
      }
    }, delay);
    this.retryTimers.add(timer);
  }

  private leave(sub: Subscription): Promise<void> {
    this.forget(sub);
    if (!this.isOpen()) return Promise.resolve();
    return this.request({ type: 'Unsubscribe', channel: sub.channel }).then(
      () => undefined,
      () => undefined,
    );
  }

  private forget(sub: Subscription): void {
    if (this.subs.get(sub.channel) === sub) this.subs.delete(sub.channel);
    for (const [id, s] of this.subIds) if (s === sub) this.subIds.delete(id);
  }

  private frame(data: unknown): void {
    this.heard();
    this.rxSinceOpen = true;
    let m: Record<string, unknown>;
    try {
      m = JSON.parse(typeof data === 'string' ? data : String(data));
    } catch {
      return;
    }
    if (!m || typeof m !== 'object') return;
    const channel = typeof m.channel === 'string' ? m.channel : '';
    switch (m.type) {
      case 'Message':
        this.subs.get(channel)?._message(m as { channel: string; content: string; offset?: number });
        return;
      case 'Gap':
        this.subs.get(channel)?._gap(m);
        return;
      case 'Join':
      case 'Leave':
        this.subs.get(channel)?._member(m.type === 'Join' ? 'join' : 'leave', m as unknown as MemberEvent);
        return;
      case 'Refresh':
        if (m.id === undefined) {
          void this.refresh();
          return;
        }
        break;
      case 'Pong':
        return;
    }
    const id = typeof m.id === 'number' ? m.id : undefined;
    if (id === undefined) {
      if (m.type === 'Error') {
        this.emit('error', new WstraceError(String(m.code), String(m.message ?? m.code)));
      }
      return;
    }
    const sub = this.subIds.get(id);
    if (sub) {
      this.subIds.delete(id);
      if (m.type === 'Subscribed') {
        sub._subscribed(m);
      } else if (m.type === 'Error') {
        const e = new WstraceError(String(m.code), String(m.message ?? m.code));
        if (TRANSIENT.has(e.code)) this.retrySubscribe(sub, e);
        else sub._refused(e);
      }
      return;
    }
    const p = this.pending.get(id);
    if (!p) return;
    this.pending.delete(id);
    if (p.timer) clearTimeout(p.timer);
    if (m.type === 'Error') p.reject(new WstraceError(String(m.code), String(m.message ?? m.code)));
    else p.resolve(m);
  }

  /** The server asked for a fresh token before the current one expires. */
  private async refresh(): Promise<void> {
    if (!this.opts.getToken) {
      this.emit('error', new WstraceError('refresh', 'the server asks for a fresh token and no getToken was given'));
      return;
    }
    const ws = this.ws;
    let token: string;
    try {
      token = await this.opts.getToken();
    } catch (e) {
      this.emit('error', new WstraceError('refresh', `getToken failed: ${(e as Error)?.message ?? e}`));
      return;
    }
    if (this.ws !== ws || !this.isOpen()) return;
    this.token = token;
    this.tokenUsed = false;
    this.request({ type: 'Refresh', token }).then(
      (r) => this.emit('refreshed', Number(r.expires)),
      (e: WstraceError) => this.emit('error', e),
    );
  }
}

/** Browsers refuse codes other than 1000 and 3000-4999 (and long reasons): then close plainly. */
function closeSocket(ws: WebSocketLike, code: number, reason: string): void {
  try {
    ws.close(code, reason);
  } catch {
    try {
      ws.close();
    } catch {
      /* already closed */
    }
  }
  ws.onopen = ws.onmessage = ws.onclose = ws.onerror = null;
}
