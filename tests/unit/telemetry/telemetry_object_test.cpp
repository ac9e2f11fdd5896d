#include "telemetry/telemetry.h"

#include <gtest/gtest.h>

#include <map>
#include <mutex>

#include "proto_decoder.h"
#include "test_http_server.h"
#include "util/clock.h"

namespace wstrace::telemetry {
namespace {

uint64_t in_ms(uint64_t ms) { return mono_ns() + ms * 1'000'000ull; }

EnvFn env_of(std::map<std::string, std::string> vars) {
  auto shared = std::make_shared<std::map<std::string, std::string>>(std::move(vars));
  return [shared](const char* n) -> const char* {
    auto it = shared->find(n);
    return it == shared->end() ? nullptr : it->second.c_str();
  };
}

TEST(Telemetry, NoEndpointNothingExportedRingStillWorks) {
  TelemetryOptions o;
  o.env = env_of({});
  Telemetry t(o);
  EXPECT_FALSE(t.tracing_exported());
  EXPECT_FALSE(t.metrics_exported());
  t.start();
  SpanStart s = t.tracer().start(nullptr);
  t.tracer().end(t.tracer().record(s, "websocket.upgrade", SpanKind::Server));
  EXPECT_NE(t.recent_spans_json().find("websocket.upgrade"), std::string::npos);
  std::string prom = t.prometheus_text();
  EXPECT_NE(prom.find("otel_sdk_span_ended_total{otel_span_sampling_result=\"RECORD_AND_SAMPLE\"} 1\n"),
            std::string::npos)
      << prom;
  EXPECT_NE(prom.find("otel_sdk_span_ended_total{otel_span_sampling_result=\"RECORD_ONLY\"} 0\n"),
            std::string::npos)
      << prom;
  EXPECT_NE(prom.find("otel_sdk_processor_span_queue_capacity{otel_component_type=\"batching_span_processor\","
                      "otel_component_name=\"batching_span_processor/0\"} 0\n"),
            std::string::npos)
      << prom;
  EXPECT_NE(prom.find("process_open_file_descriptor_count "), std::string::npos);
  EXPECT_NE(prom.find("target_info{"), std::string::npos);
  t.shutdown(in_ms(1000));
}

TEST(Telemetry, SdkDisabledIsNoOp) {
  TelemetryOptions o;
  o.env = env_of({{"OTEL_SDK_DISABLED", "true"}});
  Telemetry t(o);
  t.start();
  EXPECT_FALSE(t.tracer().enabled());
  SpanStart s = t.tracer().start(nullptr);
  t.tracer().end(t.tracer().record(s, "x", SpanKind::Server), 0, true);
  EXPECT_EQ(t.recent_spans_json(), "{\"spans\":[]}");
}

TEST(Telemetry, ExportsToOtlpEndpointAndFlushesAtShutdown) {
  testing::TestHttpServer server;
  TelemetryOptions o;
  o.node_id = "node-1";
  o.service_version = "9.9.9";
  o.env = env_of({{"OTEL_EXPORTER_OTLP_ENDPOINT", server.url("")},
                  {"OTEL_BSP_SCHEDULE_DELAY", "3600000"},
                  {"OTEL_METRIC_EXPORT_INTERVAL", "3600000"}});
  Telemetry t(o);
  ASSERT_TRUE(t.tracing_exported());
  ASSERT_TRUE(t.metrics_exported());
  Counter c = t.metrics().add_counter("websocket.messages.sent", "Messages sent", "{message}");
  t.start();
  c.add(t.metrics().shard(0), 42);
  for (int i = 0; i < 3; ++i) {
    SpanStart s = t.tracer().start(nullptr);
    t.tracer().end(t.tracer().record(s, "websocket.broadcast", SpanKind::Producer));
  }
  t.shutdown(in_ms(10'000));
  auto reqs = server.requests();
  size_t spans = 0;
  bool saw_metric = false;
  for (const auto& r : reqs) {
    auto req = testing::decode(r.body);
    ASSERT_TRUE(req.ok);
    auto rs = testing::sub(req, 1);
    if (r.path == "/v1/traces") {
      spans += testing::sub(rs, 2).all(2).size();
    } else {
      EXPECT_EQ(r.path, "/v1/metrics");
      auto scope_metrics = testing::sub(rs, 2);
      for (const auto* m : scope_metrics.all(2)) {
        auto metric = testing::decode(m->bytes);
        if (metric.str(1) == "websocket.messages.sent") {
          auto point = testing::decode(testing::sub(metric, 7).all(1)[0]->bytes);
          EXPECT_EQ(point.u(6), 42u);
          saw_metric = true;
        }
      }
    }
  }
  EXPECT_EQ(spans, 3u);
  EXPECT_TRUE(saw_metric);
}

}  // namespace
}  // namespace wstrace::telemetry
