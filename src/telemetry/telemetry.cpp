#include "telemetry/telemetry.h"

#include "telemetry/otlp_http.h"
#include "telemetry/process_metrics.h"
#include "telemetry/prometheus.h"
#include "util/clock.h"
#include "util/log.h"

namespace wstrace::telemetry {

Telemetry::Telemetry(TelemetryOptions options)
    : options_(std::move(options)),
      config_(load_config(options_)),
      ring_(config_.sdk_disabled || !options_.tracing_enabled ? 0 : options_.span_ring_size) {
  std::unique_ptr<SpanExporter> se;
  std::unique_ptr<MetricExporter> me;
  if (config_.traces) {
    se = std::make_unique<OtlpSpanExporter>(*config_.traces, config_.resource, config_.scope,
                                            &trace_counters_);
  }
  if (config_.metrics) {
    me = std::make_unique<OtlpMetricExporter>(*config_.metrics, config_.resource, config_.scope,
                                              &metric_counters_);
  }
  init(std::move(se), std::move(me));
}

Telemetry::Telemetry(TelemetryOptions options, std::unique_ptr<SpanExporter> span_exporter,
                     std::unique_ptr<MetricExporter> metric_exporter)
    : options_(std::move(options)),
      config_(load_config(options_)),
      ring_(config_.sdk_disabled || !options_.tracing_enabled ? 0 : options_.span_ring_size) {
  init(std::move(span_exporter), std::move(metric_exporter));
}

void Telemetry::init(std::unique_ptr<SpanExporter> span_exporter,
                     std::unique_ptr<MetricExporter> metric_exporter) {
  bool tracing = !config_.sdk_disabled && options_.tracing_enabled;
  bool metrics = !config_.sdk_disabled && options_.metrics_enabled;
  if (tracing && span_exporter) {
    processor_ = std::make_unique<BatchSpanProcessor>(config_.bsp, std::move(span_exporter));
  }
  if (metrics && metric_exporter) {
    reader_ = std::make_unique<PeriodicMetricReader>(registry_, std::move(metric_exporter),
                                                     config_.metric_export_interval_ms,
                                                     config_.metric_export_timeout_ms);
  }
  tracer_ = tracing ? std::make_unique<Tracer>(config_.sampler, config_.limits, &ring_,
                                               processor_.get())
                    : std::make_unique<Tracer>();
  if (metrics) {
    register_sdk_metrics();
    register_process_metrics(registry_);
  }
  WS_LOG(Info, "telemetry configured", {"sdk_disabled", config_.sdk_disabled},
         {"sampler", config_.sampler.description()},
         {"traces_endpoint", config_.traces ? config_.traces->url : std::string("none")},
         {"metrics_endpoint", config_.metrics ? config_.metrics->url : std::string("none")});
}

Telemetry::~Telemetry() {
  if (!shut_down_) {
    shutdown(mono_ns() + 5'000'000'000ull);
  }
}

void Telemetry::register_sdk_metrics() {
  MetricRegistry& r = registry_;
  r.add_observable_counter("otel.sdk.span.ended", "Spans recorded (sampled or forced)", "{span}",
                           [this](std::vector<Point>& out) {
                             out.push_back(Point::of_int(static_cast<int64_t>(tracer_->spans_ended())));
                           });
  r.add_observable_counter("otel.sdk.span.exported", "Spans accepted by the OTLP endpoint",
                           "{span}", [this](std::vector<Point>& out) {
                             uint64_t v = processor_ ? processor_->exported() : 0;
                             out.push_back(Point::of_int(static_cast<int64_t>(v)));
                           });
  r.add_observable_counter(
      "otel.sdk.span.dropped", "Spans dropped before export", "{span}",
      [this](std::vector<Point>& out) {
        uint64_t full = processor_ ? processor_->dropped_queue_full() : 0;
        uint64_t failed = processor_ ? processor_->dropped_export_failed() : 0;
        out.push_back(Point::of_int(static_cast<int64_t>(full), {{"reason", "queue_full"}}));
        out.push_back(Point::of_int(static_cast<int64_t>(failed), {{"reason", "export_failed"}}));
      });
  r.add_observable_gauge("otel.sdk.span.queue.size", "Spans waiting in the export queue",
                         "{span}", [this](std::vector<Point>& out) {
                           size_t v = processor_ ? processor_->queue_size() : 0;
                           out.push_back(Point::of_int(static_cast<int64_t>(v)));
                         });
  r.add_observable_gauge("otel.sdk.span.queue.capacity", "Capacity of the span export queue",
                         "{span}", [this](std::vector<Point>& out) {
                           size_t v = processor_ ? processor_->queue_capacity() : 0;
                           out.push_back(Point::of_int(static_cast<int64_t>(v)));
                         });
  r.add_observable_counter(
      "otel.sdk.exporter.errors", "OTLP export requests given up (data dropped)", "{request}",
      [this](std::vector<Point>& out) {
        out.push_back(Point::of_int(static_cast<int64_t>(trace_counters_.failures.load()),
                                    {{"signal", "traces"}}));
        out.push_back(Point::of_int(static_cast<int64_t>(metric_counters_.failures.load()),
                                    {{"signal", "metrics"}}));
      });
  r.add_observable_counter(
      "otel.sdk.exporter.retries", "OTLP export requests retried", "{request}",
      [this](std::vector<Point>& out) {
        out.push_back(Point::of_int(static_cast<int64_t>(trace_counters_.retries.load()),
                                    {{"signal", "traces"}}));
        out.push_back(Point::of_int(static_cast<int64_t>(metric_counters_.retries.load()),
                                    {{"signal", "metrics"}}));
      });
  r.add_observable_counter("otel.sdk.metric.exports", "Successful metric exports", "{export}",
                           [this](std::vector<Point>& out) {
                             uint64_t v = reader_ ? reader_->exports() : 0;
                             out.push_back(Point::of_int(static_cast<int64_t>(v)));
                           });
}

void Telemetry::start() {
  if (started_) {
    return;
  }
  started_ = true;
  registry_.freeze();
  if (processor_) {
    processor_->start();
  }
  if (reader_) {
    reader_->start();
  }
}

bool Telemetry::force_flush(uint64_t deadline_mono_ns) {
  bool ok = true;
  if (processor_) {
    ok = processor_->force_flush(deadline_mono_ns) && ok;
  }
  if (reader_) {
    ok = reader_->force_flush(deadline_mono_ns) && ok;
  }
  return ok;
}

void Telemetry::shutdown(uint64_t deadline_mono_ns) {
  if (shut_down_) {
    return;
  }
  shut_down_ = true;
  // Spans first (the final metric export then includes the span counters).
  if (processor_) {
    processor_->shutdown(deadline_mono_ns);
  }
  if (reader_) {
    reader_->shutdown(deadline_mono_ns);
  }
}

std::string Telemetry::prometheus_text() const {
  return render_prometheus(registry_.collect(), &config_.resource);
}

std::string Telemetry::recent_spans_json(std::string_view trace_id_hex, size_t limit) const {
  return render_recent_spans_json(ring_, trace_id_hex, limit);
}

}  // namespace wstrace::telemetry
