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
  // Names and attributes of the OpenTelemetry semantic conventions for SDK
  // metrics (otel.sdk.*); the two request counters have no convention and
  // are wstrace's own.
  MetricRegistry& r = registry_;
  auto i64 = [](uint64_t v) { return static_cast<int64_t>(v); };
  const bool json_traces = config_.traces && config_.traces->protocol == OtlpProtocol::HttpJson;
  const bool json_metrics = config_.metrics && config_.metrics->protocol == OtlpProtocol::HttpJson;
  const std::string span_exporter =
      json_traces ? "otlp_http_json_span_exporter" : "otlp_http_span_exporter";
  const std::string metric_exporter =
      json_metrics ? "otlp_http_json_metric_exporter" : "otlp_http_metric_exporter";
  const LabelSet processor_labels = {{"otel.component.type", "batching_span_processor"},
                                     {"otel.component.name", "batching_span_processor/0"}};
  const LabelSet span_exporter_labels = {{"otel.component.type", span_exporter},
                                         {"otel.component.name", span_exporter + "/0"}};
  const LabelSet metric_exporter_labels = {{"otel.component.type", metric_exporter},
                                           {"otel.component.name", metric_exporter + "/0"}};
  auto with = [](LabelSet labels, std::string key, std::string value) {
    labels.emplace_back(std::move(key), std::move(value));
    return labels;
  };

  r.add_observable_counter(
      "otel.sdk.span.ended", "Spans ended and kept (sampled, or not sampled but exported anyway)",
      "{span}", [this, i64](std::vector<Point>& out) {
        const uint64_t unsampled = tracer_->spans_ended_unsampled();
        out.push_back(Point::of_int(i64(tracer_->spans_ended() - unsampled),
                                    {{"otel.span.sampling_result", "RECORD_AND_SAMPLE"}}));
        out.push_back(Point::of_int(i64(unsampled), {{"otel.span.sampling_result", "RECORD_ONLY"}}));
      });
  r.add_observable_counter(
      "otel.sdk.processor.span.processed",
      "Spans passed to the exporter (no error.type) or dropped by the batch processor", "{span}",
      [this, i64, processor_labels, with](std::vector<Point>& out) {
        const BatchSpanProcessor* p = processor_.get();
        out.push_back(Point::of_int(i64(p ? p->processed() : 0), processor_labels));
        out.push_back(Point::of_int(i64(p ? p->dropped_queue_full() : 0),
                                    with(processor_labels, "error.type", "queue_full")));
        out.push_back(Point::of_int(i64(p ? p->dropped_after_shutdown() : 0),
                                    with(processor_labels, "error.type", "already_shutdown")));
        out.push_back(Point::of_int(i64(p ? p->dropped_at_shutdown() : 0),
                                    with(processor_labels, "error.type", "shutdown_timeout")));
      });
  r.add_observable_gauge("otel.sdk.processor.span.queue.size",
                         "Spans waiting in the batch processor's queue", "{span}",
                         [this, i64, processor_labels](std::vector<Point>& out) {
                           size_t v = processor_ ? processor_->queue_size() : 0;
                           out.push_back(Point::of_int(i64(v), processor_labels));
                         });
  r.add_observable_gauge("otel.sdk.processor.span.queue.capacity",
                         "Capacity of the batch processor's queue (OTEL_BSP_MAX_QUEUE_SIZE)",
                         "{span}", [this, i64, processor_labels](std::vector<Point>& out) {
                           size_t v = processor_ ? processor_->queue_capacity() : 0;
                           out.push_back(Point::of_int(i64(v), processor_labels));
                         });
  r.add_observable_counter(
      "otel.sdk.exporter.span.exported",
      "Spans whose export finished: accepted (no error.type) or failed after the last retry",
      "{span}", [this, i64, span_exporter_labels, with](std::vector<Point>& out) {
        const BatchSpanProcessor* p = processor_.get();
        out.push_back(Point::of_int(i64(p ? p->exported() : 0), span_exporter_labels));
        out.push_back(Point::of_int(i64(p ? p->dropped_export_failed() : 0),
                                    with(span_exporter_labels, "error.type", "export_failed")));
      });
  r.add_observable_counter(
      "otel.sdk.exporter.metric_data_point.exported",
      "Metric data points whose export finished: accepted (no error.type) or failed",
      "{data_point}", [this, i64, metric_exporter_labels, with](std::vector<Point>& out) {
        const PeriodicMetricReader* m = reader_.get();
        out.push_back(Point::of_int(i64(m ? m->points_exported() : 0), metric_exporter_labels));
        out.push_back(Point::of_int(i64(m ? m->points_failed() : 0),
                                    with(metric_exporter_labels, "error.type", "export_failed")));
      });
  r.add_observable_counter(
      "wstrace.otlp.request.failures", "OTLP/HTTP requests given up after the last attempt",
      "{request}", [this, i64](std::vector<Point>& out) {
        out.push_back(Point::of_int(i64(trace_counters_.failures.load()), {{"signal", "traces"}}));
        out.push_back(Point::of_int(i64(metric_counters_.failures.load()), {{"signal", "metrics"}}));
      });
  r.add_observable_counter(
      "wstrace.otlp.request.retries", "OTLP/HTTP request attempts retried", "{request}",
      [this, i64](std::vector<Point>& out) {
        out.push_back(Point::of_int(i64(trace_counters_.retries.load()), {{"signal", "traces"}}));
        out.push_back(Point::of_int(i64(metric_counters_.retries.load()), {{"signal", "metrics"}}));
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
  return render_recent_spans_json(ring_, trace_id_hex, limit, options_.node_id);
}

}  // namespace wstrace::telemetry
