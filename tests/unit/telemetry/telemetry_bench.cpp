// Cost of the telemetry hot paths (Google Benchmark):
//   ninja telemetry_bench && ./telemetry_bench
#include <benchmark/benchmark.h>

#include "telemetry/batch_processor.h"
#include "telemetry/metrics.h"
#include "telemetry/span_ring.h"
#include "telemetry/tracer.h"

namespace wstrace::telemetry {
namespace {

void BM_CounterAdd(benchmark::State& state) {
  MetricRegistry reg;
  Counter c = reg.add_counter("c", "", "1", {{{"k", "a"}}, {{"k", "b"}}});
  Shard& s = reg.shard(0);
  uint32_t i = 0;
  for (auto _ : state) {
    c.add(s, 1, i & 1);
    ++i;
  }
  benchmark::DoNotOptimize(reg.collect());
}
BENCHMARK(BM_CounterAdd);

void BM_HistogramRecord(benchmark::State& state) {
  MetricRegistry reg;
  Histogram h = reg.add_histogram(
      "h", "", "s", {0.0001, 0.0005, 0.001, 0.005, 0.01, 0.05, 0.1, 0.5, 1, 5, 10});
  Shard& s = reg.shard(0);
  double v = 0.0001;
  for (auto _ : state) {
    h.record(s, v);
    v = v > 20 ? 0.0001 : v * 1.7;
  }
  benchmark::DoNotOptimize(reg.collect());
}
BENCHMARK(BM_HistogramRecord);

void BM_NewTraceId(benchmark::State& state) {
  for (auto _ : state) {
    benchmark::DoNotOptimize(new_trace_id());
  }
}
BENCHMARK(BM_NewTraceId);

void BM_NewSpanId(benchmark::State& state) {
  for (auto _ : state) {
    benchmark::DoNotOptimize(new_span_id());
  }
}
BENCHMARK(BM_NewSpanId);

void BM_ParseTraceparent(benchmark::State& state) {
  std::string header = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";
  for (auto _ : state) {
    benchmark::DoNotOptimize(parse_traceparent(header));
  }
}
BENCHMARK(BM_ParseTraceparent);

void BM_FormatTraceparent(benchmark::State& state) {
  SpanContext ctx = *parse_traceparent("00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01");
  char buf[55];
  for (auto _ : state) {
    format_traceparent(ctx, buf);
    benchmark::DoNotOptimize(buf);
  }
}
BENCHMARK(BM_FormatTraceparent);

// Exporter that drops everything: the processor thread drains the queue.
class NullExporter : public SpanExporter {
 public:
  ExportResult export_spans(const std::vector<SpanPtr>&, uint64_t) noexcept override {
    return ExportResult::Success;
  }
};

// start + record + 6 attributes + end (ring + batch queue), as a message span.
void span_with_six_attributes(benchmark::State& state, Tracer& tracer) {
  SpanContext parent =
      *parse_traceparent("00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01");
  for (auto _ : state) {
    SpanStart s = tracer.start(&parent);
    if (tracer.will_export(s)) {
      SpanData d = tracer.record(s, "websocket.message.handle", SpanKind::Consumer);
      d.set("messaging.system", "wstrace")
          .set("messaging.destination.name", "room.42")
          .set("messaging.operation.type", "process")
          .set("messaging.message.body.size", 128)
          .set("websocket.connection_id", int64_t{123456})
          .set("websocket.message.type", "Message");
      tracer.end(std::move(d));
    }
    benchmark::DoNotOptimize(s);
  }
}

void BM_SpanSixAttributes(benchmark::State& state) {
  SpanRing ring(1000);
  BatchConfig cfg;
  cfg.schedule_delay_ms = 10;
  BatchSpanProcessor bsp(cfg, std::make_unique<NullExporter>());
  bsp.start();
  Tracer tracer(Sampler::always_on(), {}, &ring, &bsp);
  span_with_six_attributes(state, tracer);
  state.counters["dropped"] = static_cast<double>(bsp.dropped_queue_full());
}
BENCHMARK(BM_SpanSixAttributes);

void BM_SpanSixAttributesNotSampled(benchmark::State& state) {
  SpanRing ring(1000);
  Tracer tracer(Sampler::parent_based(Sampler::Type::AlwaysOff), {}, &ring, nullptr);
  SpanContext parent =
      *parse_traceparent("00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-00");
  for (auto _ : state) {
    SpanStart s = tracer.start(&parent);
    benchmark::DoNotOptimize(s);
  }
}
BENCHMARK(BM_SpanSixAttributesNotSampled);

void BM_SpanSixAttributesSdkDisabled(benchmark::State& state) {
  Tracer tracer;  // what OTEL_SDK_DISABLED=true gives
  span_with_six_attributes(state, tracer);
}
BENCHMARK(BM_SpanSixAttributesSdkDisabled);

}  // namespace
}  // namespace wstrace::telemetry

BENCHMARK_MAIN();
