// What the client hands to applications, and the errors it rejects with.

import type { TraceContext } from './trace.js';

/** Where a channel's stream is: its epoch (generation) and last offset. */
export interface Position {
  epoch: string;
  offset: number;
}

/** A message delivered to a subscription's handler. */
export interface Message {
  channel: string;
  content: string;
  /** The channel's position of this message (one more than the previous). */
  offset: number;
  /** The stream generation the offset belongs to. */
  epoch: string;
  /** The publication's W3C traceparent, on channels whose rule has `propagate = true`. */
  traceparent?: string;
  /** `traceparent` parsed, when present and valid. */
  trace?: TraceContext;
}

/**
 * Positions the handler will never see. `from`..`to` of `epoch` (none when
 * `to < from`); with `reset`, the stream lost its state and everything after
 * what was seen of `previousEpoch` is gone too.
 */
export interface Gap {
  channel: string;
  epoch: string;
  from: number;
  to: number;
  reset?: boolean;
  previousEpoch?: string;
  /**
   * `recovery`: after a reconnect the history did not reach back far enough
   * (or the epoch changed); `server`: the server's Gap notice (a cluster
   * node lost messages between nodes); `sequence`: a jump in offsets.
   */
  cause: 'recovery' | 'server' | 'sequence';
}

export interface SubscribeResult extends Position {
  channel: string;
  /** Present after a subscribe that asked to recover from a position. */
  recovered?: boolean;
}

export interface PublishResult extends Position {
  channel: string;
}

export interface HistoryResult extends Position {
  channel: string;
  recovered?: boolean;
  messages: { offset: number; content: string }[];
}

export interface PresenceClient {
  connection_id: number;
  user: string;
}

export interface PresenceResult {
  channel: string;
  /** Connections subscribed, cluster-wide. */
  count: number;
  /** Distinct users among them. */
  users: number;
  /** Up to 100 of them. */
  clients: PresenceClient[];
}

/** A Join or Leave (channels whose rule has `join_leave = true`). */
export interface MemberEvent {
  channel: string;
  user: string;
  connection_id: number;
  node?: string;
}

export type State = 'connecting' | 'connected' | 'disconnected' | 'closed';

export interface StateInfo {
  /** WebSocket close code of the connection that ended (1006: it just dropped). */
  code?: number;
  reason?: string;
  /** Milliseconds until the next attempt (state `disconnected`). */
  reconnectIn?: number;
  /** Attempts since the last connection that lived. */
  attempt?: number;
}

/**
 * Why a request failed: the server's error code (`unauthorized`,
 * `forbidden`, `invalid_channel`, `message_too_large`, `rate_limited`,
 * `unavailable`, `not_enabled`, ...) or the client's own: `timeout` (no
 * answer in time), `disconnected` (the connection ended before the answer: a
 * publish may or may not have been published), `closed` (client.close()).
 */
export class WstraceError extends Error {
  readonly code: string;
  constructor(code: string, message: string) {
    super(message);
    this.name = 'WstraceError';
    this.code = code;
  }
}
