#include "server/channel_metrics.h"

#include <gtest/gtest.h>

namespace wstrace::server {
namespace {

int64_t value(const std::vector<telemetry::Point>& points, const std::string& channel) {
  for (const auto& p : points) {
    if (p.labels.size() == 1 && p.labels[0].second == channel) return p.as_int;
  }
  return -1;
}

TEST(ChannelMetrics, LabelsTheBusiestAndSumsTheRest) {
  ChannelMetrics m(2, [] { return ChannelMetrics::Sample{}; });
  ChannelMetrics::Sample s;
  s.published = {{"a", 5}, {"b", 3}, {"c", 1}, {"d", 7}};
  s.subscribers = {{"a", 2}, {"b", 1}, {"d", 4}};
  std::vector<telemetry::Point> pub, subs;
  m.points(s, pub, subs);
  // First collection: the labels count everything.
  EXPECT_EQ(value(pub, "d"), 7);
  EXPECT_EQ(value(pub, "a"), 5);
  EXPECT_EQ(value(pub, "other"), 4);
  EXPECT_EQ(value(pub, "b"), -1);
  EXPECT_EQ(value(subs, "d"), 4);
  EXPECT_EQ(value(subs, "a"), 2);
  EXPECT_EQ(value(subs, "other"), 1);
  EXPECT_EQ(pub.size(), 3u);  // bounded: N + other
}

TEST(ChannelMetrics, EverySeriesStaysMonotonic) {
  ChannelMetrics m(2, [] { return ChannelMetrics::Sample{}; });
  ChannelMetrics::Sample s;
  s.published = {{"a", 10}};
  std::vector<telemetry::Point> p1, sub;
  m.points(s, p1, sub);
  EXPECT_EQ(value(p1, "a"), 10);
  EXPECT_EQ(value(p1, "other"), 0);
  // "b" shows up after "other" already reported nothing for it... then "c"
  // grows in "other" before a slot opens: labels never take counts back.
  s.published = {{"a", 12}, {"b", 4}};
  std::vector<telemetry::Point> p2;
  m.points(s, p2, sub);
  EXPECT_EQ(value(p2, "a"), 12);
  EXPECT_EQ(value(p2, "b"), 4);  // "other" had reported 0: b may count from zero
  s.published = {{"a", 12}, {"b", 6}, {"c", 9}};
  std::vector<telemetry::Point> p3;
  m.points(s, p3, sub);
  EXPECT_EQ(value(p3, "c"), -1);  // no slot left: c stays in other
  EXPECT_EQ(value(p3, "other"), 9);
  EXPECT_GE(value(p3, "b"), value(p2, "b"));
}

TEST(ChannelMetrics, ALateLabelCountsFromWhenItGotIt) {
  ChannelMetrics m(1, [] { return ChannelMetrics::Sample{}; });
  ChannelMetrics::Sample s;
  s.published = {{"x", 3}, {"y", 1}};
  std::vector<telemetry::Point> p1, sub;
  m.points(s, p1, sub);  // x labelled, other = 1
  EXPECT_EQ(value(p1, "other"), 1);
  ChannelMetrics m2(2, [] { return ChannelMetrics::Sample{}; });
  ChannelMetrics::Sample t;
  t.published = {{"x", 3}};
  std::vector<telemetry::Point> q1;
  m2.points(t, q1, sub);  // x labelled; one slot free; other = 0
  t.published = {{"x", 3}, {"y", 5}, {"z", 2}};
  std::vector<telemetry::Point> q2;
  m2.points(t, q2, sub);
  // Taking y's 5 from "other" would not make it go below 0: y counts from zero.
  EXPECT_EQ(value(q2, "y"), 5);
  EXPECT_EQ(value(q2, "other"), 2);
  t.published = {{"x", 3}, {"y", 5}, {"z", 2}, {"w", 50}};
  std::vector<telemetry::Point> q3;
  m2.points(t, q3, sub);
  EXPECT_EQ(value(q3, "w"), -1);  // full
  EXPECT_EQ(value(q3, "other"), 52);
}

}  // namespace
}  // namespace wstrace::server
