// Exports a known set of spans and metrics through the real OTLP/HTTP
// exporter (protobuf, then JSON) to receiver.js, which decodes them with the
// generated code of @opentelemetry/otlp-transformer, and checks the decoded
// result field by field. Skips when node or node_modules is missing.
#include <fcntl.h>
#include <gtest/gtest.h>
#include <poll.h>
#include <signal.h>
#include <simdjson.h>
#include <spawn.h>
#include <sys/wait.h>
#include <unistd.h>

#include <fstream>
#include <map>
#include <sstream>

#include "telemetry/telemetry.h"
#include "util/clock.h"

extern char** environ;

namespace wstrace::telemetry {
namespace {

#ifndef WSTRACE_OTLP_RECEIVER_DIR
#define WSTRACE_OTLP_RECEIVER_DIR "tests/integration/otlp"
#endif

std::string receiver_dir() {
  const char* d = std::getenv("WSTRACE_OTLP_RECEIVER_DIR");
  return d && *d ? d : WSTRACE_OTLP_RECEIVER_DIR;
}

// The receiver as a child process: `node receiver.js --port 0 --out FILE`.
class Receiver {
 public:
  bool start(const std::string& out_file, std::string& why) {
    int fds[2];
    if (pipe2(fds, O_CLOEXEC) != 0) {
      why = "pipe";
      return false;
    }
    posix_spawn_file_actions_t fa;
    posix_spawn_file_actions_init(&fa);
    posix_spawn_file_actions_adddup2(&fa, fds[1], 1);
    std::string script = receiver_dir() + "/receiver.js";
    std::vector<std::string> argv_s = {"node", script, "--port", "0", "--out", out_file};
    std::vector<char*> argv;
    for (auto& s : argv_s) {
      argv.push_back(s.data());
    }
    argv.push_back(nullptr);
    int rc = posix_spawnp(&pid_, "node", &fa, nullptr, argv.data(), environ);
    posix_spawn_file_actions_destroy(&fa);
    close(fds[1]);
    if (rc != 0) {
      close(fds[0]);
      why = "cannot run node";
      return false;
    }
    std::string line;
    pollfd p{fds[0], POLLIN, 0};
    while (line.find('\n') == std::string::npos) {
      if (poll(&p, 1, 30'000) <= 0) {
        break;
      }
      char buf[256];
      ssize_t n = read(fds[0], buf, sizeof buf);
      if (n <= 0) {
        break;
      }
      line.append(buf, static_cast<size_t>(n));
    }
    close(fds[0]);
    if (line.rfind("LISTENING ", 0) != 0) {
      why = "receiver did not start: " + line;
      return false;
    }
    port_ = std::stoi(line.substr(10));
    return true;
  }
  ~Receiver() {
    if (pid_ > 0) {
      kill(pid_, SIGTERM);
      int st;
      waitpid(pid_, &st, 0);
    }
  }
  int port() const { return port_; }

 private:
  pid_t pid_ = -1;
  int port_ = 0;
};

EnvFn env_of(std::map<std::string, std::string> vars) {
  auto shared = std::make_shared<std::map<std::string, std::string>>(std::move(vars));
  return [shared](const char* n) -> const char* {
    auto it = shared->find(n);
    return it == shared->end() ? nullptr : it->second.c_str();
  };
}

struct Expected {
  SpanStart upgrade, connection, handle, forced;
  SpanContext client_parent;
};

#define TEST_METRICS(M)                                                                         \
  M(Counter, sent, "websocket.messages.sent", "Messages sent", "{message}",                     \
    {{{"type", "Pong"}}, {{"type", "Message"}}})                                                \
  M(UpDownCounter, active, "websocket.connections.active", "Open connections", "{connection}")  \
  M(Histogram, rtt, "websocket.heartbeat.rtt", "Heartbeat RTT", "s", {0.001, 0.01, 0.1})
WSTRACE_METRICS_STRUCT(TestMetrics, TEST_METRICS);

Expected run_export(int port, const std::string& protocol) {
  TelemetryOptions o;
  o.service_version = "1.2.3";
  o.node_id = "node-" + protocol;
  o.env = env_of({
      {"OTEL_EXPORTER_OTLP_ENDPOINT", "http://127.0.0.1:" + std::to_string(port)},
      {"OTEL_EXPORTER_OTLP_PROTOCOL", protocol},
      {"OTEL_EXPORTER_OTLP_HEADERS", "x-test-header=hello%20world"},
      {"OTEL_SERVICE_NAME", "wstrace-it"},
      {"OTEL_RESOURCE_ATTRIBUTES", "deployment.environment=test,team=a%20b"},
      {"OTEL_BSP_SCHEDULE_DELAY", "3600000"},
      {"OTEL_METRIC_EXPORT_INTERVAL", "3600000"},
  });
  Telemetry t(o);
  TestMetrics m;
  m.register_all(t.metrics());
  t.start();
  Shard& shard = t.metrics().shard(0);
  m.sent.add(shard, 3, 0);
  m.sent.add(shard, 5, 1);
  m.active.add(shard, 2);
  m.active.add(shard, -1);
  for (double v : {0.0005, 0.002, 0.002, 0.05, 0.5}) {
    m.rtt.record(shard, v);
  }

  Tracer& tr = t.tracer();
  Expected e;
  e.client_parent = *parse_traceparent("00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01");
  e.upgrade = tr.start(&e.client_parent, 1'700'000'000'000'000'000ull);
  SpanData up = tr.record(e.upgrade, "websocket.upgrade", SpanKind::Server);
  up.set("http.response.status_code", 101).set("url.path", "/ws");
  tr.end(std::move(up), 1'700'000'000'001'000'000ull);

  SpanContext up_ctx = e.upgrade.context();
  e.connection = tr.start(&up_ctx, 1'700'000'000'001'000'000ull);
  e.handle = tr.start(nullptr, 1'700'000'000'002'000'000ull);
  SpanData h = tr.record(e.handle, "websocket.message.handle", SpanKind::Consumer);
  h.set("messaging.system", "wstrace")
      .set("messaging.destination.name", "room.1")
      .set("messaging.message.body.size", 42)
      .set("sampled.ratio", 0.25)
      .set("websocket.first", true);
  h.add_link(e.connection.context(), {{"link.reason", "connection"}});
  tr.end(std::move(h), 1'700'000'000'003'000'000ull);

  SpanData c = tr.record(e.connection, "websocket.connection", SpanKind::Server);
  c.set("websocket.close.code", 4408).set("websocket.close.initiator", "timeout");
  c.add_event("websocket.heartbeat.timeout", 1'700'000'000'004'000'000ull,
              {{"websocket.heartbeat.missed", 2}});
  c.set_status(StatusCode::Error, "heartbeat timeout");
  tr.end(std::move(c), 1'700'000'000'005'000'000ull);

  // Head sampling says no (unsampled remote parent), exported anyway.
  SpanContext unsampled = *parse_traceparent("00-11111111111111111111111111111111-2222222222222222-00");
  e.forced = tr.start(&unsampled, 1'700'000'000'006'000'000ull);
  SpanData f = tr.record(e.forced, "websocket.connection", SpanKind::Server);
  f.set("websocket.close.code", 1002);
  tr.end(std::move(f), 1'700'000'000'007'000'000ull, /*force=*/true);
  // And one that is simply not sampled: never exported.
  tr.end(tr.record(tr.start(&unsampled), "not.exported", SpanKind::Internal));

  t.shutdown(mono_ns() + 20'000'000'000ull);
  return e;
}

using simdjson::dom::element;

std::string_view sv(element e) { return std::string_view(e); }

// The value object of attribute `key` in an OTLP attribute list.
element attr(element list, std::string_view key) {
  for (element kv : simdjson::dom::array(list)) {
    if (sv(kv["key"]) == key) {
      return kv["value"];
    }
  }
  ADD_FAILURE() << "attribute missing: " << key;
  return element();
}

bool has_attr(element list, std::string_view key) {
  for (element kv : simdjson::dom::array(list)) {
    if (sv(kv["key"]) == key) {
      return true;
    }
  }
  return false;
}

class OtlpIntegration : public ::testing::TestWithParam<std::string> {};

TEST_P(OtlpIntegration, DecodedByOtlpTransformer) {
  if (access((receiver_dir() + "/node_modules/@opentelemetry/otlp-transformer").c_str(), R_OK) != 0) {
    GTEST_SKIP() << "run `npm ci` in " << receiver_dir();
  }
  const std::string protocol = GetParam();
  char out[] = "/tmp/wstrace_otlp_XXXXXX";
  int fd = mkstemp(out);
  ASSERT_GE(fd, 0);
  close(fd);
  Expected e;
  {
    Receiver rx;
    std::string why;
    if (!rx.start(out, why)) {
      unlink(out);
      GTEST_SKIP() << why;
    }
    e = run_export(rx.port(), protocol);
  }
  std::ifstream in(out);
  std::stringstream ss;
  ss << in.rdbuf();
  unlink(out);
  std::string content = ss.str();

  simdjson::dom::parser parser;
  std::vector<std::string> lines;
  for (std::string line; std::getline(ss, line);) {
    lines.push_back(line);
  }
  ASSERT_GE(lines.size(), 2u) << content;
  std::string expected_encoding = protocol == "http/json" ? "json" : "protobuf";

  bool saw_traces = false, saw_metrics = false;
  std::map<std::string, int> span_names;
  for (const std::string& line : lines) {
    simdjson::dom::parser p;
    element doc;
    ASSERT_EQ(p.parse(line).get(doc), simdjson::SUCCESS) << line;
    ASSERT_TRUE(doc["error"].error() == simdjson::NO_SUCH_FIELD) << line;
    EXPECT_EQ(sv(doc["encoding"]), expected_encoding);
    EXPECT_EQ(sv(doc["headers"]["x-test-header"]), "hello world");
    element rs = sv(doc["signal"]) == "traces" ? doc["request"]["resourceSpans"].at(0)
                                               : doc["request"]["resourceMetrics"].at(0);
    element res = rs["resource"]["attributes"];
    EXPECT_EQ(sv(attr(res, "service.name")["stringValue"]), "wstrace-it");
    EXPECT_EQ(sv(attr(res, "service.version")["stringValue"]), "1.2.3");
    EXPECT_EQ(sv(attr(res, "service.instance.id")["stringValue"]), "node-" + protocol);
    EXPECT_EQ(sv(attr(res, "deployment.environment")["stringValue"]), "test");
    EXPECT_EQ(sv(attr(res, "team")["stringValue"]), "a b");
    EXPECT_EQ(sv(attr(res, "telemetry.sdk.language")["stringValue"]), "cpp");
    EXPECT_TRUE(has_attr(res, "host.name"));

    if (sv(doc["signal"]) == "traces") {
      saw_traces = true;
      element scope_spans = rs["scopeSpans"].at(0);
      EXPECT_EQ(sv(scope_spans["scope"]["name"]), "wstrace");
      EXPECT_EQ(sv(scope_spans["scope"]["version"]), "1.2.3");
      for (element s : simdjson::dom::array(scope_spans["spans"])) {
        std::string name(sv(s["name"]));
        std::string span_id(sv(s["spanId"]));
        span_names[name]++;
        if (span_id == e.upgrade.span_id.hex()) {
          EXPECT_EQ(name, "websocket.upgrade");
          EXPECT_EQ(sv(s["traceId"]), "0af7651916cd43dd8448eb211c80319c");
          EXPECT_EQ(sv(s["parentSpanId"]), "b7ad6b7169203331");
          EXPECT_EQ(int64_t(s["kind"]), 2);
          EXPECT_EQ(sv(s["startTimeUnixNano"]), "1700000000000000000");
          EXPECT_EQ(sv(s["endTimeUnixNano"]), "1700000000001000000");
          EXPECT_EQ(sv(attr(s["attributes"], "http.response.status_code")["intValue"]), "101");
          EXPECT_EQ(sv(attr(s["attributes"], "url.path")["stringValue"]), "/ws");
          EXPECT_EQ(int64_t(s["flags"]), 0x301);  // sampled, parent is remote
        } else if (span_id == e.connection.span_id.hex()) {
          EXPECT_EQ(name, "websocket.connection");
          EXPECT_EQ(sv(s["traceId"]), "0af7651916cd43dd8448eb211c80319c");
          EXPECT_EQ(sv(s["parentSpanId"]), e.upgrade.span_id.hex());
          EXPECT_EQ(int64_t(s["kind"]), 2);
          EXPECT_EQ(sv(attr(s["attributes"], "websocket.close.code")["intValue"]), "4408");
          EXPECT_EQ(sv(attr(s["attributes"], "websocket.close.initiator")["stringValue"]), "timeout");
          element ev = s["events"].at(0);
          EXPECT_EQ(sv(ev["name"]), "websocket.heartbeat.timeout");
          EXPECT_EQ(sv(ev["timeUnixNano"]), "1700000000004000000");
          EXPECT_EQ(sv(attr(ev["attributes"], "websocket.heartbeat.missed")["intValue"]), "2");
          EXPECT_EQ(int64_t(s["status"]["code"]), 2);
          EXPECT_EQ(sv(s["status"]["message"]), "heartbeat timeout");
          EXPECT_EQ(int64_t(s["flags"]), 0x101);  // local parent
        } else if (span_id == e.handle.span_id.hex()) {
          EXPECT_EQ(name, "websocket.message.handle");
          EXPECT_EQ(sv(s["traceId"]), e.handle.trace_id.hex());
          EXPECT_TRUE(s["parentSpanId"].error() == simdjson::NO_SUCH_FIELD);  // a root
          EXPECT_EQ(int64_t(s["kind"]), 5);
          element a = s["attributes"];
          EXPECT_EQ(sv(attr(a, "messaging.system")["stringValue"]), "wstrace");
          EXPECT_EQ(sv(attr(a, "messaging.destination.name")["stringValue"]), "room.1");
          EXPECT_EQ(sv(attr(a, "messaging.message.body.size")["intValue"]), "42");
          EXPECT_EQ(double(attr(a, "sampled.ratio")["doubleValue"]), 0.25);
          EXPECT_EQ(bool(attr(a, "websocket.first")["boolValue"]), true);
          element link = s["links"].at(0);
          EXPECT_EQ(sv(link["traceId"]), e.connection.trace_id.hex());
          EXPECT_EQ(sv(link["spanId"]), e.connection.span_id.hex());
          EXPECT_EQ(sv(attr(link["attributes"], "link.reason")["stringValue"]), "connection");
          EXPECT_TRUE(s["status"].error() == simdjson::NO_SUCH_FIELD ||
                      s["status"]["code"].error() == simdjson::NO_SUCH_FIELD);
        } else if (span_id == e.forced.span_id.hex()) {
          EXPECT_EQ(sv(s["traceId"]), "11111111111111111111111111111111");
          EXPECT_EQ(sv(s["parentSpanId"]), "2222222222222222");
          EXPECT_EQ(int64_t(s["flags"]) & 0xff, 0);  // exported though not sampled
        } else {
          ADD_FAILURE() << "unexpected span " << name << " " << span_id;
        }
      }
    } else {
      saw_metrics = true;
      EXPECT_EQ(sv(doc["signal"]), "metrics");
      std::map<std::string, element> metrics;
      for (element m : simdjson::dom::array(rs["scopeMetrics"].at(0)["metrics"])) {
        metrics[std::string(sv(m["name"]))] = m;
      }
      ASSERT_TRUE(metrics.count("websocket.messages.sent"));
      element sent = metrics["websocket.messages.sent"];
      EXPECT_EQ(sv(sent["unit"]), "{message}");
      EXPECT_EQ(sv(sent["description"]), "Messages sent");
      EXPECT_EQ(int64_t(sent["sum"]["aggregationTemporality"]), 2);
      EXPECT_EQ(bool(sent["sum"]["isMonotonic"]), true);
      element p1 = sent["sum"]["dataPoints"].at(1);
      EXPECT_EQ(sv(p1["asInt"]), "5");
      EXPECT_EQ(sv(attr(p1["attributes"], "type")["stringValue"]), "Message");
      EXPECT_NE(sv(p1["startTimeUnixNano"]), "0");

      element active = metrics["websocket.connections.active"];
      EXPECT_TRUE(active["sum"]["isMonotonic"].error() == simdjson::NO_SUCH_FIELD ||
                  !bool(active["sum"]["isMonotonic"]));
      EXPECT_EQ(sv(active["sum"]["dataPoints"].at(0)["asInt"]), "1");

      element rtt = metrics["websocket.heartbeat.rtt"];
      EXPECT_EQ(sv(rtt["unit"]), "s");
      EXPECT_EQ(int64_t(rtt["histogram"]["aggregationTemporality"]), 2);
      element hp = rtt["histogram"]["dataPoints"].at(0);
      EXPECT_EQ(sv(hp["count"]), "5");
      EXPECT_DOUBLE_EQ(double(hp["sum"]), 0.5545);
      std::vector<std::string> buckets;
      for (element b : simdjson::dom::array(hp["bucketCounts"])) {
        buckets.emplace_back(sv(b));
      }
      EXPECT_EQ(buckets, (std::vector<std::string>{"1", "2", "1", "1"}));
      std::vector<double> bounds;
      for (element b : simdjson::dom::array(hp["explicitBounds"])) {
        bounds.push_back(double(b));
      }
      EXPECT_EQ(bounds, (std::vector<double>{0.001, 0.01, 0.1}));
      EXPECT_EQ(double(hp["min"]), 0.0005);
      EXPECT_EQ(double(hp["max"]), 0.5);

      ASSERT_TRUE(metrics.count("process.cpu.time"));
      EXPECT_TRUE(metrics.count("otel.sdk.exporter.span.exported"));
      element mem = metrics["process.memory.usage"];
      EXPECT_GT(std::stoll(std::string(sv(mem["sum"]["dataPoints"].at(0)["asInt"]))), 0);
    }
  }
  EXPECT_TRUE(saw_traces);
  EXPECT_TRUE(saw_metrics);
  EXPECT_EQ(span_names["websocket.upgrade"], 1);
  EXPECT_EQ(span_names["websocket.connection"], 2);
  EXPECT_EQ(span_names["websocket.message.handle"], 1);
  EXPECT_EQ(span_names.count("not.exported"), 0u);
}

INSTANTIATE_TEST_SUITE_P(Protocols, OtlpIntegration,
                         ::testing::Values("http/protobuf", "http/json"),
                         [](const auto& info) {
                           return info.param == "http/json" ? std::string("json")
                                                            : std::string("protobuf");
                         });

}  // namespace
}  // namespace wstrace::telemetry
