#include "telemetry/tracer.h"

#include <gtest/gtest.h>
#include <simdjson.h>

#include "telemetry/span_ring.h"

namespace wstrace::telemetry {
namespace {

TEST(Text, LiteralAndOwned) {
  Text a = "websocket.connection";
  Text b = Text::copy(std::string("dyn") + "amic");
  Text c = b;  // shares the owned copy
  EXPECT_EQ(a.view(), "websocket.connection");
  EXPECT_EQ(c.view(), "dynamic");
  EXPECT_TRUE(Text().empty());
  EXPECT_EQ(Text::literal(std::string_view("lit")).view(), "lit");
}

TEST(Span, SetReplacesAndTypes) {
  SpanData s;
  s.set("a", 1).set("b", "str").set("c", 2.5).set("d", true).set("a", uint16_t{7});
  ASSERT_EQ(s.attributes.size(), 4u);
  EXPECT_EQ(std::get<int64_t>(s.attributes[0].value), 7);
  EXPECT_EQ(std::get<std::string>(s.attributes[1].value), "str");
  EXPECT_EQ(std::get<double>(s.attributes[2].value), 2.5);
  EXPECT_EQ(std::get<bool>(s.attributes[3].value), true);
  s.set_status(StatusCode::Ok, "ignored");
  EXPECT_TRUE(s.status.message.empty());
}

TEST(Span, LimitsDropAndCount) {
  SpanData s;
  for (int i = 0; i < 10; ++i) {
    s.set(Text::copy("k" + std::to_string(i)), i);
    s.add_event("e", 1, {{"x", 1}, {"y", 2}, {"z", 3}});
    s.add_link(SpanContext{}, {{"x", 1}});
  }
  s.set("long", std::string("h\xc3\xa9llo"));  // é is 2 bytes: cut before it
  SpanLimits l;
  l.attribute_count = 11;
  l.event_count = 4;
  l.link_count = 3;
  l.attributes_per_event = 2;
  l.attribute_value_length = 2;
  apply_limits(s, l);
  EXPECT_EQ(s.attributes.size(), 11u);
  EXPECT_EQ(std::get<std::string>(s.attributes[10].value), "h");
  EXPECT_EQ(s.events.size(), 4u);
  EXPECT_EQ(s.dropped_events_count, 6u);
  EXPECT_EQ(s.events[0].attributes.size(), 2u);
  EXPECT_EQ(s.events[0].dropped_attributes_count, 1u);
  EXPECT_EQ(s.links.size(), 3u);
  EXPECT_EQ(s.dropped_links_count, 7u);
}

TEST(Tracer, DisabledIsNoOpButPropagates) {
  Tracer t;
  EXPECT_FALSE(t.enabled());
  SpanStart root = t.start(nullptr);
  EXPECT_FALSE(root.valid());
  EXPECT_FALSE(root.sampled());
  auto parent = parse_traceparent("00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01");
  SpanStart child = t.start(&*parent);
  EXPECT_EQ(child.trace_id, parent->trace_id);
  EXPECT_EQ(format_traceparent(child.context()), format_traceparent(*parent));
  EXPECT_FALSE(t.will_export(child, true));
  t.end(t.record(child, "x", SpanKind::Internal), 0, true);
  EXPECT_EQ(t.spans_ended(), 0u);
}

TEST(Tracer, StartChildAndRecord) {
  SpanRing ring(10);
  Tracer t(Sampler::always_on(), {}, &ring, nullptr);
  SpanStart parent = t.start(nullptr, 100);
  EXPECT_TRUE(parent.valid());
  EXPECT_TRUE(parent.sampled());
  EXPECT_FALSE(parent.parent_span_id.valid());
  SpanContext pc = parent.context();
  SpanStart child = t.start(&pc, 200);
  EXPECT_EQ(child.trace_id, parent.trace_id);
  EXPECT_EQ(child.parent_span_id, parent.span_id);
  EXPECT_FALSE(child.parent_remote);
  SpanData d = t.record(child, "websocket.message.handle", SpanKind::Consumer);
  d.set("messaging.system", "wstrace");
  t.end(std::move(d), 300);
  auto spans = ring.recent();
  ASSERT_EQ(spans.size(), 1u);
  EXPECT_EQ(spans[0]->name.view(), "websocket.message.handle");
  EXPECT_EQ(spans[0]->start_unix_ns, 200u);
  EXPECT_EQ(spans[0]->end_unix_ns, 300u);
  EXPECT_EQ(spans[0]->parent_span_id, parent.span_id);
}

TEST(Tracer, RemoteParentMarked) {
  Tracer t(Sampler(), {}, nullptr, nullptr);
  auto parent = parse_traceparent("00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-00");
  SpanStart s = t.start(&*parent);
  EXPECT_TRUE(s.parent_remote);
  EXPECT_FALSE(s.sampled());  // parent-based follows the remote parent
  EXPECT_TRUE(s.valid());     // ids exist anyway
}

TEST(Tracer, RootDecidedByAnotherSpan) {
  // A message's new trace follows its connection's decision (parent-based),
  // but keeps nothing else of it.
  Tracer pb(Sampler(), {}, nullptr, nullptr);
  SpanContext conn;
  conn.trace_id = new_trace_id();
  conn.span_id = new_span_id();
  conn.trace_flags = 0;
  SpanStart s = pb.start_root_decided_by(conn, 42);
  EXPECT_TRUE(s.valid());
  EXPECT_FALSE(s.sampled());
  EXPECT_FALSE(s.parent_span_id.valid());
  EXPECT_FALSE(s.parent_remote);
  EXPECT_NE(s.trace_id, conn.trace_id);
  EXPECT_EQ(s.start_unix_ns, 42u);
  conn.trace_flags = kFlagSampled;
  EXPECT_TRUE(pb.start_root_decided_by(conn).sampled());
  Tracer off(Sampler::parent_based(Sampler::Type::ParentBasedAlwaysOff), {}, nullptr, nullptr);
  EXPECT_TRUE(off.start_root_decided_by(conn).sampled());
  EXPECT_FALSE(off.start(nullptr).sampled());
  // Samplers that ignore parents decide as for any root.
  Tracer never(Sampler::always_off(), {}, nullptr, nullptr);
  EXPECT_FALSE(never.start_root_decided_by(conn).sampled());
  EXPECT_FALSE(Tracer().start_root_decided_by(conn).valid());  // disabled
}

TEST(Tracer, UnsampledDroppedUnlessForced) {
  SpanRing ring(10);
  Tracer t(Sampler::always_off(), {}, &ring, nullptr);
  SpanStart s = t.start(nullptr);
  EXPECT_FALSE(s.sampled());
  EXPECT_TRUE(s.valid());
  EXPECT_FALSE(t.will_export(s));
  EXPECT_TRUE(t.will_export(s, true));
  t.end(t.record(s, "normal", SpanKind::Server));
  EXPECT_TRUE(ring.recent().empty());
  t.end(t.record(s, "abnormal", SpanKind::Server), 0, /*force=*/true);
  auto spans = ring.recent();
  ASSERT_EQ(spans.size(), 1u);
  EXPECT_EQ(spans[0]->name.view(), "abnormal");
  EXPECT_FALSE(spans[0]->sampled());
}

TEST(SpanRing, NewestFirstFilterLimitAndWrap) {
  SpanRing ring(3);
  Tracer t(Sampler::always_on(), {}, &ring, nullptr);
  TraceId first;
  for (int i = 0; i < 5; ++i) {
    SpanStart s = t.start(nullptr, 10);
    if (i == 3) {
      first = s.trace_id;
    }
    t.end(t.record(s, Text::copy("s" + std::to_string(i)), SpanKind::Internal), 100 + i);
  }
  auto all = ring.recent();
  ASSERT_EQ(all.size(), 3u);
  EXPECT_EQ(all[0]->name.view(), "s4");
  EXPECT_EQ(all[2]->name.view(), "s2");
  EXPECT_EQ(ring.recent(std::nullopt, 1).size(), 1u);
  auto one = ring.recent(first);
  ASSERT_EQ(one.size(), 1u);
  EXPECT_EQ(one[0]->name.view(), "s3");

  std::string json = render_recent_spans_json(ring, first.hex(), 0);
  simdjson::dom::parser parser;
  simdjson::dom::element doc;
  ASSERT_EQ(parser.parse(json).get(doc), simdjson::SUCCESS) << json;
  EXPECT_EQ(simdjson::dom::array(doc["spans"]).size(), 1u);
  EXPECT_EQ(std::string_view(doc["spans"].at(0)["name"]), "s3");
  EXPECT_EQ(std::string_view(doc["spans"].at(0)["kind"]), "INTERNAL");
  EXPECT_EQ(render_recent_spans_json(ring, "nothex", 0), "{\"spans\":[]}");
  ASSERT_EQ(parser.parse(render_recent_spans_json(ring, "", 2)).get(doc), simdjson::SUCCESS);
  EXPECT_EQ(simdjson::dom::array(doc["spans"]).size(), 2u);
}

TEST(SpanRing, FullRecordRendersAsJson) {
  SpanRing ring(4);
  Tracer t(Sampler::always_on(), {}, &ring, nullptr);
  SpanStart s = t.start(nullptr, 1);
  SpanData d = t.record(s, "websocket.connection", SpanKind::Server);
  d.set("k", "v\"q").set("n", 3).add_event("ev", 2, {{"a", true}});
  d.add_link(s.context(), {{"l", 1.5}});
  d.set_status(StatusCode::Error, "boom");
  t.end(std::move(d), 5);
  simdjson::dom::parser parser;
  simdjson::dom::element doc;
  std::string json = render_recent_spans_json(ring, "", 0);
  ASSERT_EQ(parser.parse(json).get(doc), simdjson::SUCCESS) << json;
  auto sp = doc["spans"].at(0);
  EXPECT_EQ(std::string_view(sp["attributes"]["k"]), "v\"q");
  EXPECT_EQ(int64_t(sp["attributes"]["n"]), 3);
  EXPECT_EQ(std::string_view(sp["status"]["code"]), "ERROR");
  EXPECT_EQ(bool(sp["events"].at(0)["attributes"]["a"]), true);
  EXPECT_EQ(double(sp["links"].at(0)["attributes"]["l"]), 1.5);
  EXPECT_TRUE(sp["parent_span_id"].is_null());
}

}  // namespace
}  // namespace wstrace::telemetry
