#include "telemetry/prometheus.h"

#include <gtest/gtest.h>
#include <unistd.h>

#include <cstdio>
#include <fstream>

#include "telemetry/process_metrics.h"

namespace wstrace::telemetry {
namespace {

TEST(PrometheusName, Translation) {
  EXPECT_EQ(prometheus_name("websocket.messages.sent", "{message}", MetricType::Sum, true),
            "websocket_messages_sent_total");
  EXPECT_EQ(prometheus_name("websocket.connection.duration", "s", MetricType::Histogram, false),
            "websocket_connection_duration_seconds");
  // A unit already in the name (as a word) is not repeated (the Collector's
  // translator); no _value for gauges named like histogram series.
  EXPECT_EQ(prometheus_name("websocket.bytes.sent", "By", MetricType::Sum, true),
            "websocket_bytes_sent_total");
  EXPECT_EQ(prometheus_name("http.seconds.left", "s", MetricType::Gauge, false),
            "http_seconds_left");
  EXPECT_EQ(prometheus_name("net.bytesx", "By", MetricType::Gauge, false), "net_bytesx_bytes");
  EXPECT_EQ(prometheus_name("process.open_file_descriptor.count", "{file_descriptor}",
                            MetricType::Sum, false),
            "process_open_file_descriptor_count");
  EXPECT_EQ(prometheus_name("process.thread.count", "{thread}", MetricType::Gauge, false),
            "process_thread_count");
  EXPECT_EQ(prometheus_name("x.bytes_per_second.rate", "By/s", MetricType::Gauge, false),
            "x_bytes_per_second_rate");
  EXPECT_EQ(prometheus_name("process.memory.usage", "By", MetricType::Sum, false),
            "process_memory_usage_bytes");
  EXPECT_EQ(prometheus_name("websocket.connections.active", "{connection}", MetricType::Sum, false),
            "websocket_connections_active");
  EXPECT_EQ(prometheus_name("process.cpu.time", "s", MetricType::Sum, true),
            "process_cpu_time_seconds_total");
  EXPECT_EQ(prometheus_name("cache.hit", "1", MetricType::Gauge, false), "cache_hit_ratio");
  EXPECT_EQ(prometheus_name("net.rate", "By/s", MetricType::Gauge, false),
            "net_rate_bytes_per_second");
  EXPECT_EQ(prometheus_name("requests_total", "", MetricType::Sum, true), "requests_total");
  EXPECT_EQ(prometheus_name("latency_seconds", "s", MetricType::Histogram, false),
            "latency_seconds");
  EXPECT_EQ(prometheus_name("1weird-name..x", "", MetricType::Gauge, false), "_1weird_name_x");
  EXPECT_EQ(prometheus_label_name("error.type"), "error_type");
  EXPECT_EQ(prometheus_label_name("2x"), "key_2x");
}

void fill(MetricRegistry& reg) {
  Counter c = reg.add_counter("websocket.messages.sent", "Messages sent, by type", "{message}",
                              {{{"type", "Pong"}}, {{"type", "weird \"quoted\"\\\nvalue"}}});
  UpDownCounter u = reg.add_updown_counter("websocket.connections.active", "Open connections",
                                           "{connection}");
  Histogram h = reg.add_histogram("websocket.delivery.latency", "Publish to written", "s",
                                  {0.0005, 0.001, 0.01, 0.1, 1}, {{{"node", "a"}}, {{"node", "b"}}});
  reg.add_observable_gauge("websocket.channels.active", "Channels with subscribers", "{channel}",
                           [](std::vector<Point>& out) {
                             out.push_back(Point::of_int(3, {{"channel", "top"}}));
                             out.push_back(Point::of_int(1, {{"channel", "other"}}));
                           });
  reg.add_observable_counter("test.cpu", "Help with a \\ backslash\nand newline", "s",
                             [](std::vector<Point>& out) { out.push_back(Point::of_double(0.25)); });
  register_process_metrics(reg);
  Shard& s = reg.shard(0);
  c.add(s, 5, 0);
  c.add(s, 1, 1);
  u.add(s, 7);
  h.record(s, 0.0002, 0);
  h.record(s, 0.002, 0);
  h.record(s, 5, 0);
  h.record(s, 0.05, 1);
}

TEST(Prometheus, RendersFamilies) {
  MetricRegistry reg;
  fill(reg);
  std::string text = render_prometheus(reg.collect());
  EXPECT_NE(text.find("# HELP websocket_messages_sent_total Messages sent, by type\n"
                      "# TYPE websocket_messages_sent_total counter\n"
                      "websocket_messages_sent_total{type=\"Pong\"} 5\n"
                      "websocket_messages_sent_total{type=\"weird \\\"quoted\\\"\\\\\\nvalue\"} 1\n"),
            std::string::npos)
      << text;
  EXPECT_NE(text.find("# TYPE websocket_connections_active gauge\nwebsocket_connections_active 7\n"),
            std::string::npos);
  EXPECT_NE(text.find("# TYPE websocket_delivery_latency_seconds histogram\n"
                      "websocket_delivery_latency_seconds_bucket{node=\"a\",le=\"0.0005\"} 1\n"
                      "websocket_delivery_latency_seconds_bucket{node=\"a\",le=\"0.001\"} 1\n"
                      "websocket_delivery_latency_seconds_bucket{node=\"a\",le=\"0.01\"} 2\n"
                      "websocket_delivery_latency_seconds_bucket{node=\"a\",le=\"0.1\"} 2\n"
                      "websocket_delivery_latency_seconds_bucket{node=\"a\",le=\"1\"} 2\n"
                      "websocket_delivery_latency_seconds_bucket{node=\"a\",le=\"+Inf\"} 3\n"
                      "websocket_delivery_latency_seconds_sum{node=\"a\"} 5.0022\n"
                      "websocket_delivery_latency_seconds_count{node=\"a\"} 3\n"),
            std::string::npos)
      << text;
  EXPECT_NE(text.find("# HELP test_cpu_seconds_total Help with a \\\\ backslash\\nand newline\n"),
            std::string::npos);
  EXPECT_NE(text.find("test_cpu_seconds_total 0.25\n"), std::string::npos);
  EXPECT_NE(text.find("process_memory_usage_bytes "), std::string::npos);
  EXPECT_NE(text.find("process_cpu_time_seconds_total{cpu_mode=\"user\"} "), std::string::npos);
}

TEST(Prometheus, GaugeNamedLikeAHistogramSeriesIsUntyped) {
  EXPECT_EQ(prometheus_type("process_thread_count", MetricType::Gauge, false), "untyped");
  EXPECT_EQ(prometheus_type("x_sum", MetricType::Sum, false), "untyped");
  EXPECT_EQ(prometheus_type("x_bucket", MetricType::Gauge, false), "untyped");
  EXPECT_EQ(prometheus_type("x_count_total", MetricType::Sum, true), "counter");
  EXPECT_EQ(prometheus_type("x_seconds", MetricType::Histogram, false), "histogram");
  EXPECT_EQ(prometheus_type("x_active", MetricType::Sum, false), "gauge");
  MetricRegistry reg;
  register_process_metrics(reg);
  std::string text = render_prometheus(reg.collect());
  EXPECT_NE(text.find("# TYPE process_open_file_descriptor_count untyped\n"
                      "process_open_file_descriptor_count "),
            std::string::npos)
      << text;
  EXPECT_EQ(text.find("_value"), std::string::npos) << text;
}

TEST(Prometheus, DuplicateFamilyAfterTranslationSkipped) {
  MetricRegistry reg;
  reg.add_counter("a.b", "first", "1");
  reg.add_counter("a_b", "second", "1");
  std::string text = render_prometheus(reg.collect());
  EXPECT_NE(text.find("first"), std::string::npos);
  EXPECT_EQ(text.find("second"), std::string::npos);
}

TEST(Prometheus, TargetInfo) {
  MetricRegistry reg;
  reg.add_counter("x", "x", "1");
  Resource r;
  r.attributes.push_back({"service.name", "wstrace"});
  r.attributes.push_back({"service.instance.id", "n1"});
  std::string text = render_prometheus(reg.collect(), &r);
  EXPECT_NE(text.find("target_info{service_name=\"wstrace\",service_instance_id=\"n1\"} 1\n"),
            std::string::npos)
      << text;
}

TEST(Prometheus, PassesPromtool) {
  const char* promtool = "/usr/bin/promtool";
  if (access(promtool, X_OK) != 0) {
    GTEST_SKIP() << "promtool not installed (Debian package prometheus)";
  }
  MetricRegistry reg;
  fill(reg);
  Resource r;
  r.attributes.push_back({"service.name", "wstrace"});
  std::string text = render_prometheus(reg.collect(), &r);
  char path[] = "/tmp/wstrace_prom_XXXXXX";
  int fd = mkstemp(path);
  ASSERT_GE(fd, 0);
  ASSERT_EQ(write(fd, text.data(), text.size()), static_cast<ssize_t>(text.size()));
  close(fd);
  std::string cmd = std::string(promtool) + " check metrics < " + path + " 2>&1";
  FILE* p = popen(cmd.c_str(), "r");
  ASSERT_NE(p, nullptr);
  std::string output;
  char buf[512];
  while (size_t n = fread(buf, 1, sizeof buf, p)) {
    output.append(buf, n);
  }
  int rc = pclose(p);
  unlink(path);
  EXPECT_EQ(rc, 0) << output << "\n---\n" << text;
  EXPECT_EQ(output, "") << text;
}

}  // namespace
}  // namespace wstrace::telemetry
