export { Client } from './client.js';
export type {
  ClientEvents, ClientOptions, PublishOptions, WebSocketConstructor, WebSocketLike,
} from './client.js';
export { Subscription } from './subscription.js';
export type {
  Handler, SubscribeOptions, SubscriptionEvents, SubscriptionState, SubscriptionStats,
} from './subscription.js';
export { Backoff } from './backoff.js';
export type { BackoffOptions } from './backoff.js';
export {
  activeTraceContext, formatTraceparent, freshTraceContext, parseTraceparent, publishTraceparent,
} from './trace.js';
export type { OtelApi, SpanContextLike, TraceContext } from './trace.js';
export { WstraceError } from './types.js';
export type {
  Gap, HistoryResult, MemberEvent, Message, Position, PresenceClient, PresenceResult,
  PublishResult, State, StateInfo, SubscribeResult,
} from './types.js';
