// StreamTable: offsets and epochs, history bounded by size, age and memory,
// recovery (complete or not), History reads, and the sweep of idle streams.
#include "stream/stream_table.h"

#include <gtest/gtest.h>

#include <set>

namespace wstrace::stream {
namespace {

constexpr uint64_t kSecond = 1'000'000'000ull;

std::shared_ptr<const Rules> rules(uint32_t size, uint64_t ttl_ns = 0) {
  ChannelRule r;
  r.match = "room:*";
  r.history_size = size;
  r.history_ttl_ns = ttl_ns;
  r.index = 1;
  return std::make_shared<Rules>(std::vector<ChannelRule>{r});
}

pubsub::Publication* unsealed(std::string_view channel, std::string content, uint64_t at_ns) {
  return pubsub::Publication::make(channel, content, at_ns, TraceContext{}, 1);
}

// Publishes n messages "m<i>" at times start, start+step, ...
void publish(StreamTable& t, std::string_view channel, int n, uint64_t start = 0,
             uint64_t step = 0) {
  for (int i = 0; i < n; ++i) {
    const uint64_t at = start + step * static_cast<uint64_t>(i);
    Stream& s = t.get(channel, at);
    pubsub::Publication* p = unsealed(channel, "m" + std::to_string(s.offset() + 1), at);
    t.append(s, p, at);
    p->unref();  // the table keeps its own reference when it keeps it
  }
}

std::vector<uint64_t> offsets(Range& r) {
  std::vector<uint64_t> out;
  for (auto* p : r.pubs) {
    out.push_back(p->offset());
    p->unref();
  }
  r.pubs.clear();
  return out;
}

TEST(StreamTable, OffsetsAreContiguousPerChannelAndSealTheFrame) {
  StreamTable t(1 << 20);
  Stream& a = t.get("a", 0);
  EXPECT_EQ(a.offset(), 0u);
  EXPECT_EQ(a.epoch().size(), 16u);
  for (uint64_t want = 1; want <= 3; ++want) {
    pubsub::Publication* p = unsealed("a", "x", 0);
    EXPECT_EQ(t.append(a, p, 0), want);
    EXPECT_TRUE(p->sealed());
    EXPECT_EQ(p->offset(), want);
    EXPECT_EQ(p->epoch(), a.epoch());
    p->unref();
  }
  publish(t, "b", 2);
  EXPECT_EQ(t.get("b", 0).offset(), 2u);
  EXPECT_EQ(t.get("a", 0).offset(), 3u);
  EXPECT_NE(t.get("a", 0).epoch(), t.get("b", 0).epoch());
  EXPECT_EQ(t.entries(), 0u);  // no rule: no history
}

TEST(StreamTable, EpochsAreRandomAndDistinct) {
  std::set<std::string> seen;
  for (int i = 0; i < 1000; ++i) seen.insert(new_epoch());
  EXPECT_EQ(seen.size(), 1000u);
}

TEST(StreamTable, HistoryKeepsTheLastHistorySize) {
  StreamTable t(1 << 20);
  t.set_rules(rules(5));
  publish(t, "room:1", 12);
  Stream& s = t.get("room:1", 0);
  EXPECT_EQ(s.entries(), 5u);
  EXPECT_EQ(s.first_kept(), 8u);
  EXPECT_EQ(t.entries(), 5u);
  EXPECT_GT(t.bytes(), 0u);
  publish(t, "other", 3);  // no rule matches
  EXPECT_EQ(t.entries(), 5u);
}

TEST(StreamTable, RecoveryIsCompleteOrNothing) {
  StreamTable t(1 << 20);
  t.set_rules(rules(5));
  publish(t, "room:1", 12);
  Stream& s = t.get("room:1", 0);
  const std::string epoch = s.epoch();
  Range r = t.recover(s, epoch, 9, 0);
  EXPECT_TRUE(r.complete);
  EXPECT_EQ(offsets(r), (std::vector<uint64_t>{10, 11, 12}));
  r = t.recover(s, epoch, 7, 0);  // 8..12 kept: enough
  EXPECT_TRUE(r.complete);
  EXPECT_EQ(offsets(r).size(), 5u);
  r = t.recover(s, epoch, 6, 0);  // 7 is gone
  EXPECT_FALSE(r.complete);
  EXPECT_TRUE(r.pubs.empty());
  r = t.recover(s, epoch, 12, 0);  // nothing missed
  EXPECT_TRUE(r.complete);
  EXPECT_TRUE(r.pubs.empty());
  r = t.recover(s, "another", 9, 0);  // the stream's state was lost since
  EXPECT_FALSE(r.complete);
  EXPECT_FALSE(r.epoch_matched);
  r = t.recover(s, epoch, 13, 0);  // a position it never had
  EXPECT_FALSE(r.complete);
}

TEST(StreamTable, HistoryTtlDropsOldEntries) {
  StreamTable t(1 << 20);
  t.set_rules(rules(100, 10 * kSecond));
  publish(t, "room:1", 10, 0, kSecond);  // at 0..9 s
  Stream& s = t.get("room:1", 9 * kSecond);
  Range r = t.recover(s, s.epoch(), 0, 9 * kSecond);
  EXPECT_TRUE(r.complete);
  EXPECT_EQ(offsets(r).size(), 10u);
  r = t.recover(s, s.epoch(), 0, 14 * kSecond + 1);  // 0..4 s are older than 10 s now
  EXPECT_FALSE(r.complete);
  EXPECT_EQ(s.first_kept(), 6u);
  r = t.recover(s, s.epoch(), 5, 14 * kSecond + 1);
  EXPECT_TRUE(r.complete);
  EXPECT_EQ(offsets(r), (std::vector<uint64_t>{6, 7, 8, 9, 10}));
  t.sweep(100 * kSecond, 1000 * kSecond, [](const std::string&) { return true; });
  EXPECT_EQ(s.entries(), 0u);
  EXPECT_EQ(t.entries(), 0u);
  EXPECT_EQ(t.bytes(), 0u);
}

TEST(StreamTable, TheMemoryBudgetDropsTheOldestAcrossChannels) {
  // Measure one entry, then allow about 10.
  size_t one;
  {
    StreamTable probe(1 << 20);
    probe.set_rules(rules(100));
    publish(probe, "room:x", 1);
    one = probe.bytes();
  }
  StreamTable t(10 * one + one / 2);
  t.set_rules(rules(100));
  publish(t, "room:a", 6);
  publish(t, "room:b", 6);  // 12 entries asked for: the two oldest of a go
  EXPECT_LE(t.bytes(), 10 * one + one / 2);
  EXPECT_EQ(t.entries(), 10u);
  EXPECT_EQ(t.evicted_for_memory(), 2u);
  EXPECT_EQ(t.get("room:a", 0).first_kept(), 3u);
  EXPECT_EQ(t.get("room:b", 0).first_kept(), 1u);
  // Recovery knows what was evicted.
  Stream& a = t.get("room:a", 0);
  EXPECT_FALSE(t.recover(a, a.epoch(), 1, 0).complete);
  Range r = t.recover(a, a.epoch(), 2, 0);
  EXPECT_TRUE(r.complete);
  EXPECT_EQ(offsets(r).size(), 4u);
}

TEST(StreamTable, ManyTrimmedEntriesDoNotGrowTheBookkeeping) {
  // A busy channel trimmed by size while another keeps an old entry: the
  // FIFO of entries must not grow with the publications.
  StreamTable t(1 << 30);
  t.set_rules(rules(3));
  publish(t, "room:quiet", 1);
  publish(t, "room:busy", 100000);
  EXPECT_EQ(t.entries(), 4u);
  EXPECT_EQ(t.get("room:quiet", 0).entries(), 1u);
  // Then the budget still finds the oldest: the quiet one's.
  t.set_memory_budget(t.bytes() - 1);
  publish(t, "room:busy", 1);
  EXPECT_EQ(t.get("room:quiet", 0).entries(), 0u);
  EXPECT_EQ(t.get("room:busy", 0).entries(), 3u);
}

TEST(StreamTable, ReadsForHistory) {
  StreamTable t(1 << 20);
  t.set_rules(rules(10));
  publish(t, "room:1", 15);  // 6..15 kept
  Stream& s = t.get("room:1", 0);
  const std::string_view epoch = s.epoch();
  Range r = t.read(s, nullptr, 0, 3, 0);  // the newest 3
  EXPECT_EQ(offsets(r), (std::vector<uint64_t>{13, 14, 15}));
  r = t.read(s, nullptr, 0, 0, 0);  // all kept
  EXPECT_EQ(offsets(r).size(), 10u);
  r = t.read(s, &epoch, 8, 2, 0);  // after 8, the first 2
  EXPECT_TRUE(r.complete);
  EXPECT_EQ(offsets(r), (std::vector<uint64_t>{9, 10}));
  r = t.read(s, &epoch, 2, 0, 0);  // 3..5 are gone
  EXPECT_FALSE(r.complete);
  EXPECT_EQ(offsets(r).size(), 10u);
  const std::string_view other = "x";
  r = t.read(s, &other, 2, 0, 0);
  EXPECT_FALSE(r.epoch_matched);
  EXPECT_TRUE(r.pubs.empty());
}

TEST(StreamTable, NewRulesApplyOnTheNextUse) {
  StreamTable t(1 << 20);
  t.set_rules(rules(10));
  publish(t, "room:1", 10);
  EXPECT_EQ(t.entries(), 10u);
  t.set_rules(rules(4));
  publish(t, "room:1", 1);
  EXPECT_EQ(t.get("room:1", 0).entries(), 4u);
  t.set_rules(nullptr);  // no rules at all: history goes
  publish(t, "room:1", 1);
  EXPECT_EQ(t.get("room:1", 0).entries(), 0u);
  EXPECT_EQ(t.bytes(), 0u);
}

TEST(StreamTable, IdleStreamsWithoutSubscribersAreForgotten) {
  StreamTable t(1 << 20);
  t.set_rules(rules(10));
  publish(t, "room:kept", 2, 0);  // has history
  publish(t, "plain:busy", 2, 0);
  publish(t, "plain:idle", 2, 0);
  t.get("plain:busy", 50 * kSecond);  // used later
  const std::string idle_epoch = t.get("plain:idle", 0).epoch();
  t.sweep(70 * kSecond, 60 * kSecond, [](const std::string& c) { return c == "plain:sub"; });
  EXPECT_EQ(t.streams(), 2u);
  EXPECT_NE(t.find("room:kept"), nullptr);
  EXPECT_NE(t.find("plain:busy"), nullptr);
  EXPECT_EQ(t.find("plain:idle"), nullptr);
  // Coming back: a new stream, a new epoch (a client's old position is void).
  EXPECT_NE(t.get("plain:idle", 80 * kSecond).epoch(), idle_epoch);
  EXPECT_EQ(t.get("plain:idle", 80 * kSecond).offset(), 0u);
  // A stream somebody subscribes to stays, however idle.
  t.get("plain:sub", 0);
  t.sweep(500 * kSecond, 60 * kSecond, [](const std::string& c) { return c == "plain:sub"; });
  EXPECT_NE(t.find("plain:sub"), nullptr);
}

}  // namespace
}  // namespace wstrace::stream
