import assert from 'node:assert/strict';
import { test } from 'node:test';
import {
  activeTraceContext, formatTraceparent, freshTraceContext, parseTraceparent, publishTraceparent,
} from '../dist/index.js';

const TP = /^00-[0-9a-f]{32}-[0-9a-f]{16}-01$/;

test('traceparent parse and format round-trip; malformed and all-zero ids are refused', () => {
  const tp = '00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01';
  const c = parseTraceparent(tp);
  assert.deepEqual(c, { traceId: '4bf92f3577b34da6a3ce929d0e0e4736', spanId: '00f067aa0ba902b7', sampled: true });
  assert.equal(formatTraceparent(c), tp);
  assert.equal(parseTraceparent(tp.replace(/-01$/, '-00')).sampled, false);
  for (const bad of [undefined, null, 5, '', 'garbage', tp.toUpperCase(), tp + '-x',
    '00-00000000000000000000000000000000-00f067aa0ba902b7-01',
    '00-4bf92f3577b34da6a3ce929d0e0e4736-0000000000000000-01',
    '01-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01']) {
    assert.equal(parseTraceparent(bad), undefined, String(bad));
  }
});

test('without an active span a publish starts a fresh sampled trace each time', () => {
  const a = publishTraceparent();
  const b = publishTraceparent();
  assert.match(a, TP);
  assert.notEqual(a.slice(3, 35), b.slice(3, 35));
  assert.equal(activeTraceContext(), undefined);
  assert.match(formatTraceparent(freshTraceContext()), TP);
});

test("an explicit @opentelemetry/api's active span becomes the parent", () => {
  const span = { spanContext: () => ({ traceId: 'a'.repeat(32), spanId: 'b'.repeat(16), traceFlags: 1 }) };
  const api = { trace: { getActiveSpan: () => span } };
  assert.equal(publishTraceparent(api), `00-${'a'.repeat(32)}-${'b'.repeat(16)}-01`);
  const unsampled = { trace: { getActiveSpan: () => ({ spanContext: () => ({ traceId: 'c'.repeat(32), spanId: 'd'.repeat(16), traceFlags: 0 }) }) } };
  assert.equal(publishTraceparent(unsampled), `00-${'c'.repeat(32)}-${'d'.repeat(16)}-00`);
  // An invalid (non-recording placeholder) span context: a fresh trace instead.
  const invalid = { trace: { getActiveSpan: () => ({ spanContext: () => ({ traceId: '0'.repeat(32), spanId: '0'.repeat(16), traceFlags: 0 }) }) } };
  assert.match(publishTraceparent(invalid), TP);
  assert.match(publishTraceparent({ trace: { getActiveSpan: () => undefined } }), TP);
});

test("the page's registered @opentelemetry/api is found without being passed", () => {
  const key = Symbol.for('opentelemetry.js.api.1');
  const spanKey = Symbol.for('OpenTelemetry Context Key SPAN');
  const span = { spanContext: () => ({ traceId: 'e'.repeat(32), spanId: 'f'.repeat(16), traceFlags: 1 }) };
  globalThis[key] = { context: { active: () => ({ getValue: (k) => (k === spanKey ? span : undefined) }) } };
  try {
    assert.equal(publishTraceparent(), `00-${'e'.repeat(32)}-${'f'.repeat(16)}-01`);
  } finally {
    delete globalThis[key];
  }
  assert.equal(activeTraceContext(), undefined);
});
