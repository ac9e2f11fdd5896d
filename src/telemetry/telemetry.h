// The telemetry layer's top-level object: configured from OTEL_* variables and
// the server's overrides, it owns the metric registry, the tracer, the ring of
// recent spans, the batch span processor and the exporter threads.
//
// Life cycle:
//   Telemetry t({.service_version = "0.1.0", .node_id = id});
//   my_metrics.register_all(t.metrics());   // every instrument, before start()
//   t.start();                              // exporter threads (if configured)
//   ... t.tracer(), t.metrics().shard(i), t.prometheus_text(), t.recent_spans_json(...)
//   t.shutdown(mono_ns() + timeout);        // flush spans, final metric export
//
// The SDK's own metrics (registered here; names of the OpenTelemetry semantic
// conventions for SDK metrics, docs/TELEMETRY.md has the attributes):
//   otel.sdk.span.ended                           {span}       counter  otel.span.sampling_result
//   otel.sdk.processor.span.processed             {span}       counter  error.type when dropped
//   otel.sdk.processor.span.queue.size            {span}       gauge
//   otel.sdk.processor.span.queue.capacity        {span}       gauge    OTEL_BSP_MAX_QUEUE_SIZE
//   otel.sdk.exporter.span.exported               {span}       counter  error.type when failed
//   otel.sdk.exporter.metric_data_point.exported  {data_point} counter  error.type when failed
//   wstrace.otlp.request.failures                 {request}    counter  signal = traces | metrics
//   wstrace.otlp.request.retries                  {request}    counter  signal = traces | metrics
// plus the process metrics of process_metrics.h.
#pragma once

#include <memory>
#include <string>
#include <string_view>

#include "telemetry/batch_processor.h"
#include "telemetry/config.h"
#include "telemetry/metric_reader.h"
#include "telemetry/metrics.h"
#include "telemetry/span_ring.h"
#include "telemetry/tracer.h"

namespace wstrace::telemetry {

class Telemetry {
 public:
  explicit Telemetry(TelemetryOptions options = {});
  // Tests and embedders: explicit exporters instead of OTLP/HTTP (either may be null).
  Telemetry(TelemetryOptions options, std::unique_ptr<SpanExporter> span_exporter,
            std::unique_ptr<MetricExporter> metric_exporter);
  ~Telemetry();  // shutdown with a 5 s deadline if not done
  Telemetry(const Telemetry&) = delete;
  Telemetry& operator=(const Telemetry&) = delete;

  MetricRegistry& metrics() { return registry_; }
  const MetricRegistry& metrics() const { return registry_; }
  Tracer& tracer() { return *tracer_; }
  const SpanRing& recent_spans() const { return ring_; }
  const Resource& resource() const { return config_.resource; }
  const TelemetryConfig& config() const { return config_; }
  bool tracing_exported() const { return processor_ != nullptr; }
  bool metrics_exported() const { return reader_ != nullptr; }

  void start();
  // Exports queued spans and metrics now; true when both finished by the deadline.
  bool force_flush(uint64_t deadline_mono_ns);
  void shutdown(uint64_t deadline_mono_ns);

  // For the admin API.
  std::string prometheus_text() const;
  // Each span names this node (`node_id`) when it has one.
  std::string recent_spans_json(std::string_view trace_id_hex = {}, size_t limit = 0) const;

 private:
  void init(std::unique_ptr<SpanExporter> span_exporter,
            std::unique_ptr<MetricExporter> metric_exporter);
  void register_sdk_metrics();

  TelemetryOptions options_;
  TelemetryConfig config_;
  MetricRegistry registry_;
  SpanRing ring_;
  ExportCounters trace_counters_;
  ExportCounters metric_counters_;
  std::unique_ptr<BatchSpanProcessor> processor_;
  std::unique_ptr<PeriodicMetricReader> reader_;
  std::unique_ptr<Tracer> tracer_;
  bool started_ = false;
  bool shut_down_ = false;
};

}  // namespace wstrace::telemetry
