// One channel's subscription: its position in the stream, the exactly-once
// bookkeeping across reconnects, and its events. I/O-free: the client feeds
// it the server's frames and asks it what to send.

import { Emitter, reportListenerError } from './emitter.js';
import { parseTraceparent } from './trace.js';
import type { Gap, MemberEvent, Message, Position, SubscribeResult } from './types.js';
import { WstraceError } from './types.js';

export type Handler = (m: Message) => void;

export type SubscriptionState = 'subscribing' | 'subscribed' | 'unsubscribed' | 'failed';

export interface SubscribeOptions {
  /** Start after this position (e.g. one saved from an earlier session, or a History answer). */
  since?: Position;
}

export interface SubscriptionEvents {
  gap: [Gap];
  join: [MemberEvent];
  leave: [MemberEvent];
  /** Subscribed (again, after a reconnect). */
  subscribed: [SubscribeResult];
  /** The server refused the subscription; it is over (`state` = `failed`). */
  error: [WstraceError];
  state: [SubscriptionState];
}

/** Counters of what happened to this subscription. */
export interface SubscriptionStats {
  delivered: number;
  /** Messages seen twice (a reconnect's recovery overlapping) and not handed on. */
  duplicates: number;
  gaps: number;
  /** Positions reported lost by gaps (not counting a reset's earlier epoch). */
  lost: number;
  subscribes: number;
}

interface WireMessage {
  channel: string;
  content: string;
  offset?: number;
  traceparent?: string;
}

export class Subscription extends Emitter<SubscriptionEvents> {
  readonly channel: string;
  /** Resolves at the first Subscribed; rejects when the server refuses. */
  readonly ready: Promise<SubscribeResult>;
  readonly stats: SubscriptionStats = { delivered: 0, duplicates: 0, gaps: 0, lost: 0, subscribes: 0 };

  private handler: Handler;
  private pos: Position | undefined;
  private _state: SubscriptionState = 'subscribing';
  private early: WireMessage[] = [];
  private settle: { resolve(r: SubscribeResult): void; reject(e: WstraceError): void } | undefined;
  /** @internal set by the client */
  _leave: (() => Promise<void>) | undefined;

  /** @internal use client.subscribe() */
  constructor(channel: string, handler: Handler, opts: SubscribeOptions = {}) {
    super();
    this.channel = channel;
    this.handler = handler;
    if (opts.since) this.pos = { epoch: String(opts.since.epoch), offset: Number(opts.since.offset) };
    this.ready = new Promise((resolve, reject) => {
      this.settle = { resolve, reject };
    });
    // A refusal nobody awaits is still reported through 'error'.
    this.ready.catch(() => {});
  }

  get state(): SubscriptionState {
    return this._state;
  }

  /** The last position handed to the handler (or reported as a gap). */
  get position(): Position | undefined {
    return this.pos ? { ...this.pos } : undefined;
  }

  /** Leaves the channel; the handler gets nothing more. */
  unsubscribe(): Promise<void> {
    if (this._state === 'unsubscribed' || this._state === 'failed') return Promise.resolve();
    this.setState('unsubscribed');
    this.settle?.reject(new WstraceError('unsubscribed', `unsubscribed from ${this.channel}`));
    this.settle = undefined;
    return this._leave ? this._leave() : Promise.resolve();
  }

  /** @internal the Subscribe frame for this (re)connection. */
  _subscribeFrame(id: number): Record<string, unknown> {
    const f: Record<string, unknown> = { type: 'Subscribe', channel: this.channel, id };
    if (this.pos) f.since = { epoch: this.pos.epoch, offset: this.pos.offset };
    return f;
  }

  /** @internal the connection ended: subscribe again on the next one. */
  _disconnected(): void {
    this.early = [];
    if (this._state === 'subscribed') this.setState('subscribing');
  }

  /** @internal the server's Subscribed answer. */
  _subscribed(r: { epoch?: unknown; offset?: unknown; recovered?: unknown }): void {
    if (this._state !== 'subscribing') return;
    const epoch = String(r.epoch ?? '');
    const offset = Number(r.offset ?? 0);
    const result: SubscribeResult = { channel: this.channel, epoch, offset };
    if (typeof r.recovered === 'boolean') result.recovered = r.recovered;
    const asked = this.pos;
    if (!asked) {
      this.pos = { epoch, offset };
    } else if (r.recovered !== true) {
      // What followed `asked` is gone; the stream goes on after `offset`.
      if (asked.epoch === epoch) {
        if (offset > asked.offset) {
          this.reportGap({ channel: this.channel, epoch, from: asked.offset + 1, to: offset, cause: 'recovery' });
        }
      } else {
        this.reportGap({
          channel: this.channel, epoch, from: 1, to: offset, reset: true,
          previousEpoch: asked.epoch, cause: 'recovery',
        });
      }
      this.pos = { epoch, offset };
    }
    // recovered: every message after `asked` follows; the position moves with them.
    this.stats.subscribes++;
    this.setState('subscribed');
    this.settle?.resolve(result);
    this.settle = undefined;
    this.emit('subscribed', result);
    const early = this.early;
    this.early = [];
    for (const m of early) this._message(m);
  }

  /** @internal the client closed for good. */
  _end(e: WstraceError): void {
    if (this._state === 'unsubscribed' || this._state === 'failed') return;
    this.early = [];
    this.setState('unsubscribed');
    this.settle?.reject(e);
    this.settle = undefined;
  }

  /** @internal the server's Error answer to the Subscribe: the subscription is over. */
  _refused(e: WstraceError): void {
    if (this._state !== 'subscribing') return;
    this.setState('failed');
    this.settle?.reject(e);
    this.settle = undefined;
    this.emit('error', e);
  }

  /** @internal a delivered Message of this channel. */
  _message(m: WireMessage): void {
    if (this._state === 'subscribing') {
      this.early.push(m);
      return;
    }
    if (this._state !== 'subscribed' || !this.pos) return;
    const offset = typeof m.offset === 'number' ? m.offset : this.pos.offset + 1;
    if (offset <= this.pos.offset) {
      this.stats.duplicates++;
      return;
    }
    if (offset > this.pos.offset + 1) {
      this.reportGap({
        channel: this.channel, epoch: this.pos.epoch, from: this.pos.offset + 1, to: offset - 1,
        cause: 'sequence',
      });
    }
    this.pos.offset = offset;
    const out: Message = { channel: this.channel, content: m.content, offset, epoch: this.pos.epoch };
    if (typeof m.traceparent === 'string') {
      out.traceparent = m.traceparent;
      const t = parseTraceparent(m.traceparent);
      if (t) out.trace = t;
    }
    this.stats.delivered++;
    try {
      this.handler(out);
    } catch (e) {
      reportListenerError(e);
    }
  }

  /** @internal the server's Gap notice. */
  _gap(g: { epoch?: unknown; from?: unknown; to?: unknown; reset?: unknown; previous_epoch?: unknown }): void {
    if (this._state !== 'subscribed' || !this.pos) return;
    const epoch = String(g.epoch ?? this.pos.epoch);
    const from = Number(g.from);
    const to = Number(g.to);
    const gap: Gap = { channel: this.channel, epoch, from, to, cause: 'server' };
    if (g.reset === true) {
      gap.reset = true;
      gap.previousEpoch = String(g.previous_epoch ?? this.pos.epoch);
      this.pos = { epoch, offset: to >= from ? to : from - 1 };
    } else {
      this.pos = { epoch, offset: Math.max(this.pos.offset, to) };
    }
    this.reportGap(gap);
  }

  /** @internal Join / Leave. */
  _member(kind: 'join' | 'leave', e: MemberEvent): void {
    if (this._state === 'subscribed' || this._state === 'subscribing') this.emit(kind, e);
  }

  private reportGap(g: Gap): void {
    this.stats.gaps++;
    if (g.to >= g.from) this.stats.lost += g.to - g.from + 1;
    this.emit('gap', g);
  }

  private setState(s: SubscriptionState): void {
    if (this._state === s) return;
    this._state = s;
    this.emit('state', s);
  }
}
