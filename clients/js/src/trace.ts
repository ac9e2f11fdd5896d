// W3C Trace Context for publishes, without a dependency on
// @opentelemetry/api: the page may pass the API module in the options, or
// the client finds the one the page registered (the API keeps its globals
// under Symbol.for('opentelemetry.js.api.1')).

/** The parts of @opentelemetry/api the client uses (pass the module itself). */
export interface OtelApi {
  trace: {
    getActiveSpan(): { spanContext(): SpanContextLike } | undefined;
  };
}

export interface SpanContextLike {
  traceId: string;
  spanId: string;
  traceFlags: number;
}

export interface TraceContext {
  traceId: string;
  spanId: string;
  sampled: boolean;
}

const TRACEPARENT = /^00-([0-9a-f]{32})-([0-9a-f]{16})-([0-9a-f]{2})$/;
const ZERO_TRACE = '0'.repeat(32);
const ZERO_SPAN = '0'.repeat(16);

/** Parses a version-00 traceparent; undefined when malformed or all-zero. */
export function parseTraceparent(tp: string | undefined | null): TraceContext | undefined {
  if (typeof tp !== 'string') return undefined;
  const m = TRACEPARENT.exec(tp);
  if (!m || m[1] === ZERO_TRACE || m[2] === ZERO_SPAN) return undefined;
  return { traceId: m[1], spanId: m[2], sampled: (parseInt(m[3], 16) & 1) === 1 };
}

export function formatTraceparent(c: TraceContext): string {
  return `00-${c.traceId}-${c.spanId}-${c.sampled ? '01' : '00'}`;
}

function randomHex(bytes: number): string {
  const b = new Uint8Array(bytes);
  const c = (globalThis as { crypto?: { getRandomValues?(a: Uint8Array): Uint8Array } }).crypto;
  if (c?.getRandomValues) c.getRandomValues(b);
  else for (let i = 0; i < bytes; i++) b[i] = Math.floor(Math.random() * 256);
  let s = '';
  for (let i = 0; i < bytes; i++) s += b[i].toString(16).padStart(2, '0');
  return s;
}

/** A new sampled trace: what a publish carries when no span is active. */
export function freshTraceContext(): TraceContext {
  let traceId = randomHex(16);
  let spanId = randomHex(8);
  if (traceId === ZERO_TRACE) traceId = '1'.padStart(32, '0');
  if (spanId === ZERO_SPAN) spanId = '1'.padStart(16, '0');
  return { traceId, spanId, sampled: true };
}

const GLOBAL_API = Symbol.for('opentelemetry.js.api.1');
const SPAN_KEY = Symbol.for('OpenTelemetry Context Key SPAN');

interface RegisteredApi {
  context?: { active(): { getValue(key: symbol): unknown } };
}

function fromSpanContext(sc: SpanContextLike | undefined): TraceContext | undefined {
  if (!sc || !/^[0-9a-f]{32}$/.test(sc.traceId) || !/^[0-9a-f]{16}$/.test(sc.spanId)) {
    return undefined;
  }
  if (sc.traceId === ZERO_TRACE || sc.spanId === ZERO_SPAN) return undefined;
  return { traceId: sc.traceId, spanId: sc.spanId, sampled: (sc.traceFlags & 1) === 1 };
}

/**
 * The context of the span active where the publish is called: from `api`
 * when given, else from the @opentelemetry/api the page registered.
 */
export function activeTraceContext(api?: OtelApi): TraceContext | undefined {
  try {
    if (api) return fromSpanContext(api.trace.getActiveSpan()?.spanContext());
    const g = (globalThis as Record<symbol, RegisteredApi | undefined>)[GLOBAL_API];
    const span = g?.context?.active().getValue(SPAN_KEY) as
      | { spanContext?(): SpanContextLike }
      | undefined;
    return fromSpanContext(span?.spanContext?.());
  } catch {
    return undefined;
  }
}

/**
 * The traceparent a publish sends: the active span's context (the server's
 * span becomes its child), or a fresh trace.
 */
export function publishTraceparent(api?: OtelApi): string {
  return formatTraceparent(activeTraceContext(api) ?? freshTraceContext());
}
