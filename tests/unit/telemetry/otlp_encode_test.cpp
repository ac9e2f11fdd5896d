#include "telemetry/otlp_encode.h"

#include <gtest/gtest.h>
#include <simdjson.h>

#include "proto_decoder.h"
#include "telemetry/protobuf_writer.h"
#include "test_spans.h"

namespace wstrace::telemetry {
namespace {

using testing::decode;
using testing::Message;
using testing::sub;

Resource test_resource() {
  Resource r;
  r.attributes.push_back({"service.name", "wstrace"});
  r.attributes.push_back({"service.instance.id", "node-1"});
  return r;
}

std::string hex(const std::string& bytes) {
  static const char* k = "0123456789abcdef";
  std::string out;
  for (unsigned char c : bytes) {
    out.push_back(k[c >> 4]);
    out.push_back(k[c & 15]);
  }
  return out;
}

TEST(ProtoWriter, KnownBytes) {
  std::string out;
  proto::Writer w(out);
  w.uint64_field(1, 150);  // the protobuf docs' example: 08 96 01
  EXPECT_EQ(hex(out), "089601");
  out.clear();
  w.string_field(2, "testing");
  EXPECT_EQ(hex(out), "120774657374696e67");
  out.clear();
  w.fixed64_field(7, 1);
  EXPECT_EQ(hex(out), "390100000000000000");
  out.clear();
  w.fixed32_field(16, 0x101);
  EXPECT_EQ(hex(out), "850101010000");
  out.clear();
  w.int64_field(3, -1);
  EXPECT_EQ(hex(out), "18ffffffffffffffffff01");
  out.clear();
  size_t m = w.begin(1);
  w.uint64_field(1, 150);
  w.end(m);
  EXPECT_EQ(hex(out), "0a03089601");
  // A nested body over 127 bytes gets a 2-byte length.
  out.clear();
  m = w.begin(1);
  w.string_field(2, std::string(200, 'x'));
  w.end(m);
  EXPECT_EQ(out.size(), 1u + 2u + 3u + 200u);
  Message outer = decode(out);
  ASSERT_TRUE(outer.ok);
  EXPECT_EQ(sub(outer, 1).str(2).size(), 200u);
}

TEST(OtlpProtobuf, TraceRequestDecodes) {
  Scope scope{"wstrace", "0.1.0"};
  std::vector<SpanPtr> spans = {std::make_shared<SpanData>(testing::sample_span())};
  std::string body = encode_traces_protobuf(test_resource(), scope, spans);
  Message req = decode(body);
  ASSERT_TRUE(req.ok);
  ASSERT_EQ(req.all(1).size(), 1u);
  Message rs = sub(req, 1);
  Message resource = sub(rs, 1);
  auto attrs = resource.all(1);
  ASSERT_EQ(attrs.size(), 2u);
  Message kv = decode(attrs[1]->bytes);
  EXPECT_EQ(kv.str(1), "service.instance.id");
  EXPECT_EQ(sub(kv, 2).str(1), "node-1");
  Message ss = sub(rs, 2);
  Message sc = sub(ss, 1);
  EXPECT_EQ(sc.str(1), "wstrace");
  EXPECT_EQ(sc.str(2), "0.1.0");
  Message span = sub(ss, 2);
  ASSERT_TRUE(span.ok);
  EXPECT_EQ(hex(span.str(1)), "4bf92f3577b34da6a3ce929d0e0e4736");
  EXPECT_EQ(hex(span.str(2)), "00f067aa0ba902b7");
  EXPECT_EQ(span.str(3), "congo=t61rcWkgMzE");
  EXPECT_EQ(hex(span.str(4)), "1111111111111111");
  EXPECT_EQ(span.str(5), "websocket.connection");
  EXPECT_EQ(span.u(6), 2u);  // SERVER
  EXPECT_EQ(span.one(7)->wire, 1);
  EXPECT_EQ(span.u(7), 1700000000000000000ull);
  EXPECT_EQ(span.u(8), 1700000001500000000ull);
  auto sattrs = span.all(9);
  ASSERT_EQ(sattrs.size(), 5u);
  Message a0 = decode(sattrs[0]->bytes);
  EXPECT_EQ(a0.str(1), "websocket.close.code");
  EXPECT_EQ(sub(a0, 2).u(3), 1000u);  // int_value
  Message a1 = decode(sattrs[1]->bytes);
  EXPECT_EQ(sub(a1, 2).str(1), "127.0.0.1");
  Message a2 = decode(sattrs[2]->bytes);
  EXPECT_TRUE(sub(a2, 2).has(2));
  EXPECT_EQ(sub(a2, 2).u(2), 1u);  // bool_value
  Message a3 = decode(sattrs[3]->bytes);
  EXPECT_EQ(sub(a3, 2).one(4)->as_double(), 0.5);
  Message a4 = decode(sattrs[4]->bytes);
  EXPECT_EQ(static_cast<int64_t>(sub(a4, 2).u(3)), -5);
  EXPECT_EQ(span.u(10), 3u);  // dropped attributes
  Message ev = sub(span, 11);
  EXPECT_EQ(ev.u(1), 1700000001000000000ull);
  EXPECT_EQ(ev.str(2), "websocket.heartbeat.timeout");
  EXPECT_EQ(decode(ev.all(3)[0]->bytes).str(1), "missed");
  Message link = sub(span, 13);
  EXPECT_EQ(hex(link.str(1)), "0af7651916cd43dd8448eb211c80319c");
  EXPECT_EQ(hex(link.str(2)), "b7ad6b7169203331");
  EXPECT_EQ(decode(link.all(4)[0]->bytes).str(1), "link.kind");
  EXPECT_EQ(link.u(6), 0x101u);  // sampled | has_is_remote
  Message status = sub(span, 15);
  EXPECT_EQ(status.str(2), "heartbeat timeout");
  EXPECT_EQ(status.u(3), 2u);
  EXPECT_EQ(span.one(16)->wire, 5);
  EXPECT_EQ(span.u(16), 0x301u);  // sampled | has_is_remote | is_remote
}

TEST(OtlpProtobuf, RootSpanHasNoParentAndUnsetStatus) {
  SpanData s;
  s.trace_id = new_trace_id();
  s.span_id = new_span_id();
  s.name = "x";
  std::string body = encode_traces_protobuf({}, {}, {std::make_shared<SpanData>(s)});
  Message span = sub(sub(sub(decode(body), 1), 2), 2);
  EXPECT_FALSE(span.has(4));
  EXPECT_FALSE(span.has(15));
  EXPECT_EQ(span.u(6), 1u);  // INTERNAL
  EXPECT_EQ(span.u(16), 0x100u);
}

MetricsSnapshot sample_metrics(MetricRegistry& reg) {
  Counter c = reg.add_counter("websocket.messages.sent", "Messages sent", "{message}",
                              {{{"type", "Pong"}}, {{"type", "Message"}}});
  UpDownCounter u = reg.add_updown_counter("websocket.connections.active", "Open", "{connection}");
  Histogram h = reg.add_histogram("websocket.delivery.latency", "Latency", "s", {0.001, 0.01});
  reg.add_observable_gauge("process.uptime", "Uptime", "s",
                           [](std::vector<Point>& out) { out.push_back(Point::of_double(2.5)); });
  Shard& s = reg.shard(0);
  c.add(s, 3, 0);
  c.add(s, 4, 1);
  u.add(s, -2);
  h.record(s, 0.0005);
  h.record(s, 0.005);
  h.record(s, 0.5);
  return reg.collect();
}

TEST(OtlpProtobuf, MetricsRequestDecodes) {
  MetricRegistry reg;
  MetricsSnapshot snap = sample_metrics(reg);
  std::string body = encode_metrics_protobuf(test_resource(), {"wstrace", "1"}, snap);
  Message req = decode(body);
  ASSERT_TRUE(req.ok);
  Message sm = sub(sub(req, 1), 2);
  auto metrics = sm.all(2);
  ASSERT_EQ(metrics.size(), 4u);
  Message counter = decode(metrics[0]->bytes);
  EXPECT_EQ(counter.str(1), "websocket.messages.sent");
  EXPECT_EQ(counter.str(2), "Messages sent");
  EXPECT_EQ(counter.str(3), "{message}");
  Message sum = sub(counter, 7);
  EXPECT_EQ(sum.u(2), 2u);  // cumulative
  EXPECT_EQ(sum.u(3), 1u);  // monotonic
  auto points = sum.all(1);
  ASSERT_EQ(points.size(), 2u);
  Message p1 = decode(points[1]->bytes);
  EXPECT_EQ(p1.one(6)->wire, 1);  // sfixed64
  EXPECT_EQ(p1.u(6), 4u);
  EXPECT_EQ(p1.u(2), snap.start_unix_ns);
  EXPECT_EQ(p1.u(3), snap.time_unix_ns);
  Message label = decode(p1.all(7)[0]->bytes);
  EXPECT_EQ(label.str(1), "type");
  EXPECT_EQ(sub(label, 2).str(1), "Message");

  Message updown = sub(decode(metrics[1]->bytes), 7);
  EXPECT_FALSE(updown.has(3));
  EXPECT_EQ(static_cast<int64_t>(decode(updown.all(1)[0]->bytes).u(6)), -2);

  Message hist = sub(decode(metrics[2]->bytes), 9);
  EXPECT_EQ(hist.u(2), 2u);
  Message hp = decode(hist.all(1)[0]->bytes);
  EXPECT_EQ(hp.u(4), 3u);
  EXPECT_DOUBLE_EQ(hp.one(5)->as_double(), 0.5055);
  EXPECT_EQ(testing::packed_fixed64(hp.str(6)), (std::vector<uint64_t>{1, 1, 1}));
  auto bounds = testing::packed_fixed64(hp.str(7));
  ASSERT_EQ(bounds.size(), 2u);
  double b1;
  std::memcpy(&b1, &bounds[1], 8);
  EXPECT_EQ(b1, 0.01);
  EXPECT_EQ(hp.one(11)->as_double(), 0.0005);
  EXPECT_EQ(hp.one(12)->as_double(), 0.5);

  Message gauge = sub(decode(metrics[3]->bytes), 5);
  Message gp = decode(gauge.all(1)[0]->bytes);
  EXPECT_FALSE(gp.has(2));
  EXPECT_EQ(gp.one(4)->as_double(), 2.5);
}

TEST(OtlpJson, TracesParseAndUseOtlpJsonRules) {
  std::vector<SpanPtr> spans = {std::make_shared<SpanData>(testing::sample_span())};
  std::string body = encode_traces_json(test_resource(), {"wstrace", "0.1.0"}, spans);
  simdjson::dom::parser parser;
  simdjson::dom::element doc;
  ASSERT_EQ(parser.parse(body).get(doc), simdjson::SUCCESS) << body;
  auto rs = doc["resourceSpans"].at(0);
  EXPECT_EQ(std::string_view(rs["resource"]["attributes"].at(0)["value"]["stringValue"]), "wstrace");
  auto scope_spans = rs["scopeSpans"].at(0);
  EXPECT_EQ(std::string_view(scope_spans["scope"]["name"]), "wstrace");
  auto span = scope_spans["spans"].at(0);
  EXPECT_EQ(std::string_view(span["traceId"]), "4bf92f3577b34da6a3ce929d0e0e4736");
  EXPECT_EQ(std::string_view(span["spanId"]), "00f067aa0ba902b7");
  EXPECT_EQ(std::string_view(span["parentSpanId"]), "1111111111111111");
  EXPECT_EQ(int64_t(span["kind"]), 2);
  EXPECT_EQ(std::string_view(span["startTimeUnixNano"]), "1700000000000000000");
  EXPECT_EQ(std::string_view(span["attributes"].at(0)["value"]["intValue"]), "1000");
  EXPECT_EQ(bool(span["attributes"].at(2)["value"]["boolValue"]), true);
  EXPECT_EQ(double(span["attributes"].at(3)["value"]["doubleValue"]), 0.5);
  EXPECT_EQ(std::string_view(span["events"].at(0)["name"]), "websocket.heartbeat.timeout");
  EXPECT_EQ(std::string_view(span["links"].at(0)["spanId"]), "b7ad6b7169203331");
  EXPECT_EQ(int64_t(span["status"]["code"]), 2);
  EXPECT_EQ(std::string_view(span["status"]["message"]), "heartbeat timeout");
  EXPECT_EQ(int64_t(span["flags"]), 0x301);
}

TEST(OtlpJson, MetricsParse) {
  MetricRegistry reg;
  MetricsSnapshot snap = sample_metrics(reg);
  std::string body = encode_metrics_json(test_resource(), {"wstrace", "1"}, snap);
  simdjson::dom::parser parser;
  simdjson::dom::element doc;
  ASSERT_EQ(parser.parse(body).get(doc), simdjson::SUCCESS) << body;
  auto metrics = doc["resourceMetrics"].at(0)["scopeMetrics"].at(0)["metrics"];
  auto sum = metrics.at(0)["sum"];
  EXPECT_EQ(int64_t(sum["aggregationTemporality"]), 2);
  EXPECT_EQ(bool(sum["isMonotonic"]), true);
  EXPECT_EQ(std::string_view(sum["dataPoints"].at(1)["asInt"]), "4");
  EXPECT_EQ(std::string_view(metrics.at(1)["sum"]["dataPoints"].at(0)["asInt"]), "-2");
  auto hp = metrics.at(2)["histogram"]["dataPoints"].at(0);
  EXPECT_EQ(std::string_view(hp["count"]), "3");
  EXPECT_EQ(std::string_view(hp["bucketCounts"].at(2)), "1");
  EXPECT_EQ(double(hp["explicitBounds"].at(0)), 0.001);
  EXPECT_EQ(double(hp["max"]), 0.5);
  EXPECT_EQ(double(metrics.at(3)["gauge"]["dataPoints"].at(0)["asDouble"]), 2.5);
}

TEST(OtlpJson, EscapesStrings) {
  SpanData s = testing::sample_span();
  s.set("weird", std::string("a\"b\\c\n\x01"));
  std::string body = encode_traces_json({}, {}, {std::make_shared<SpanData>(s)});
  simdjson::dom::parser parser;
  simdjson::dom::element doc;
  ASSERT_EQ(parser.parse(body).get(doc), simdjson::SUCCESS) << body;
  auto attrs = doc["resourceSpans"].at(0)["scopeSpans"].at(0)["spans"].at(0)["attributes"];
  EXPECT_EQ(std::string_view(attrs.at(5)["value"]["stringValue"]), "a\"b\\c\n\x01");
}

}  // namespace
}  // namespace wstrace::telemetry
