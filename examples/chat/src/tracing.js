// OpenTelemetry in the page: spans go to /v1/traces, which serve.mjs
// forwards to the collector wstrace exports to. Only loaded when the demo
// was started with --otlp.
import * as api from '@opentelemetry/api';
import { OTLPTraceExporter } from '@opentelemetry/exporter-trace-otlp-http';
import { resourceFromAttributes } from '@opentelemetry/resources';
import { BatchSpanProcessor } from '@opentelemetry/sdk-trace-base';
import { StackContextManager, WebTracerProvider } from '@opentelemetry/sdk-trace-web';

export function startTracing(user) {
  const provider = new WebTracerProvider({
    resource: resourceFromAttributes({ 'service.name': 'wstrace-chat', 'enduser.id': user }),
    spanProcessors: [new BatchSpanProcessor(new OTLPTraceExporter({ url: `${location.origin}/v1/traces` }),
      { scheduledDelayMillis: 200 })],
  });
  provider.register({ contextManager: new StackContextManager() });
  const tracer = api.trace.getTracer('wstrace-chat');
  return {
    api,
    // The publish happens inside the span: the SDK sends its context.
    send(name, attrs, fn) {
      return tracer.startActiveSpan(name, { kind: api.SpanKind.PRODUCER, attributes: attrs }, (span) => {
        try {
          return fn(span.spanContext().traceId);
        } finally {
          span.end();
        }
      });
    },
    // A span continuing the trace the message carries (channel rule propagate = true).
    receive(name, attrs, traceparent) {
      const parent = api.propagation.extract(api.ROOT_CONTEXT, { traceparent });
      const span = tracer.startSpan(name, { kind: api.SpanKind.CONSUMER, attributes: attrs }, parent);
      span.end();
      return span.spanContext();
    },
    flush: () => provider.forceFlush(),
  };
}
