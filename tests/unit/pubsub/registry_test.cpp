// The per-thread channel registry: subscribe/unsubscribe in random orders
// across many subscribers against a model, checking the swap-remove
// back-indices after every step; on_interest transitions; the limits.
#include "pubsub/registry.h"

#include <gtest/gtest.h>

#include <map>
#include <random>
#include <set>
#include <string>
#include <vector>

namespace wstrace::pubsub {
namespace {

using Result = Registry::SubscribeResult;

std::vector<std::string> subscriptions_of(const Subscriber& s) {
  std::vector<std::string> out;
  s.for_each_subscription([&](const std::string& name) { out.push_back(name); });
  return out;
}

// Checks the registry against the model: who is subscribed to what, the
// counters, and both directions of the back-indices as far as the public
// API shows them (a member's slot names its channel).
void check(const Registry& reg, const std::vector<std::unique_ptr<Subscriber>>& subs,
           const std::map<const Subscriber*, std::set<std::string>>& model) {
  size_t total = 0;
  std::map<std::string, std::set<const Subscriber*>> by_channel;
  std::map<const Subscriber*, std::vector<std::string>> names_of;  // in slot order
  for (const auto& s : subs) {
    const auto it = model.find(s.get());
    const std::set<std::string> want = it == model.end() ? std::set<std::string>{} : it->second;
    auto got = subscriptions_of(*s);
    names_of[s.get()] = got;
    ASSERT_EQ(got.size(), s->subscription_count());
    ASSERT_EQ(std::set<std::string>(got.begin(), got.end()), want);
    ASSERT_EQ(got.size(), want.size()) << "duplicate subscription";
    total += want.size();
    for (const auto& ch : want) by_channel[ch].insert(s.get());
  }
  ASSERT_EQ(reg.subscription_count(), total);
  ASSERT_EQ(reg.channel_count(), by_channel.size());
  size_t seen = 0;
  reg.for_each_channel([&](const Channel& ch) {
    ++seen;
    ASSERT_TRUE(by_channel.count(ch.name())) << ch.name();
    ASSERT_EQ(ch.size(), by_channel[ch.name()].size());
    std::set<const Subscriber*> members;
    for (const auto& m : ch.members()) {
      members.insert(m.sub);
      // The member's back-index points at the subscriber's slot for this channel.
      const auto& names = names_of[m.sub];
      ASSERT_LT(m.slot, names.size());
      ASSERT_EQ(names[m.slot], ch.name());
    }
    ASSERT_EQ(members, by_channel[ch.name()]);
  });
  ASSERT_EQ(seen, by_channel.size());
  for (const auto& [name, who] : by_channel) {
    const Channel* ch = reg.find(name);
    ASSERT_NE(ch, nullptr);
    ASSERT_EQ(ch->name(), name);
  }
}

TEST(Registry, SubscribeAndUnsubscribe) {
  Registry reg;
  Subscriber a, b;
  EXPECT_EQ(reg.subscribe(a, "news", 10), Result::Subscribed);
  EXPECT_EQ(reg.subscribe(a, "news", 10), Result::AlreadySubscribed);
  EXPECT_EQ(reg.subscribe(b, "news", 10), Result::Subscribed);
  EXPECT_EQ(reg.subscribe(a, "chat", 10), Result::Subscribed);
  EXPECT_EQ(reg.channel_count(), 2u);
  EXPECT_EQ(reg.subscription_count(), 3u);
  ASSERT_NE(reg.find("news"), nullptr);
  EXPECT_EQ(reg.find("news")->size(), 2u);
  EXPECT_EQ(reg.find("nothing"), nullptr);
  EXPECT_EQ(a.subscription_count(), 2);
  EXPECT_TRUE(reg.unsubscribe(a, "news"));
  EXPECT_FALSE(reg.unsubscribe(a, "news"));
  EXPECT_FALSE(reg.unsubscribe(a, "never"));
  EXPECT_EQ(reg.find("news")->size(), 1u);
  EXPECT_EQ(reg.find("news")->members()[0].sub, &b);
  reg.unsubscribe_all(a);
  reg.unsubscribe_all(b);
  EXPECT_EQ(reg.channel_count(), 0u);
  EXPECT_EQ(reg.subscription_count(), 0u);
  EXPECT_EQ(a.subscription_count(), 0);
  reg.unsubscribe_all(a);  // twice is fine
}

TEST(Registry, MaxSubscriptions) {
  Registry reg;
  Subscriber s;
  for (int i = 0; i < 3; ++i) {
    EXPECT_EQ(reg.subscribe(s, "c" + std::to_string(i), 3), Result::Subscribed);
  }
  EXPECT_EQ(reg.subscribe(s, "c3", 3), Result::TooMany);
  EXPECT_EQ(reg.find("c3"), nullptr);  // no empty channel left behind
  EXPECT_EQ(reg.subscribe(s, "c1", 3), Result::AlreadySubscribed);  // not TooMany
  EXPECT_TRUE(reg.unsubscribe(s, "c0"));
  EXPECT_EQ(reg.subscribe(s, "c3", 3), Result::Subscribed);
  Subscriber none;
  EXPECT_EQ(reg.subscribe(none, "c0", 0), Result::TooMany);
  reg.unsubscribe_all(s);
}

TEST(Registry, SlotCapacityGrowsPast32768) {
  // With a limit above 65535, growing the slot array from 32768 entries used
  // to wrap its uint16_t capacity to 0. (Quadratic: subscribe scans the
  // subscriber's own channels, so this stays just past the boundary.)
  Registry reg;
  Subscriber s;
  const size_t n = 32768 + 3;
  for (size_t i = 0; i < n; ++i) {
    ASSERT_EQ(reg.subscribe(s, std::to_string(i), 1'000'000), Result::Subscribed) << i;
  }
  EXPECT_EQ(s.subscription_count(), n);
  EXPECT_EQ(reg.channel_count(), n);
  EXPECT_TRUE(reg.unsubscribe(s, "20000"));
  EXPECT_EQ(reg.find("20000"), nullptr);
  EXPECT_EQ(reg.find("32770")->members()[0].sub, &s);
  reg.unsubscribe_all(s);
  EXPECT_EQ(reg.channel_count(), 0u);
}

TEST(Registry, InterestTransitions) {
  Registry reg;
  std::vector<std::pair<std::string, bool>> calls;
  reg.on_interest = [&](const std::string& ch, bool active) {
    // Called after the change: the registry already reflects it.
    EXPECT_EQ(reg.find(ch) != nullptr, active) << ch;
    if (active) {
      EXPECT_EQ(reg.find(ch)->size(), 1u);
    }
    calls.emplace_back(ch, active);
  };
  Subscriber a, b;
  reg.subscribe(a, "x", 10);  // first subscriber: active
  reg.subscribe(b, "x", 10);  // second: nothing
  reg.subscribe(a, "x", 10);  // already: nothing
  reg.subscribe(a, "y", 10);
  reg.unsubscribe(a, "x");    // one left: nothing
  reg.unsubscribe(b, "x");    // last: inactive
  reg.unsubscribe(b, "x");    // not subscribed: nothing
  reg.subscribe(b, "x", 10);  // active again
  reg.unsubscribe_all(a);     // y inactive
  reg.unsubscribe_all(b);     // x inactive
  std::vector<std::pair<std::string, bool>> want = {
      {"x", true}, {"y", true}, {"x", false}, {"x", true}, {"y", false}, {"x", false}};
  EXPECT_EQ(calls, want);
}

TEST(Registry, RandomOperationsKeepTheBackIndices) {
  std::mt19937 rng(20240611);
  Registry reg;
  std::set<std::string> active;  // from on_interest
  reg.on_interest = [&](const std::string& ch, bool on) {
    if (on) {
      ASSERT_TRUE(active.insert(ch).second) << "active twice: " << ch;
    } else {
      ASSERT_EQ(active.erase(ch), 1u) << "inactive but was not active: " << ch;
    }
  };
  std::vector<std::unique_ptr<Subscriber>> subs;
  for (int i = 0; i < 40; ++i) subs.push_back(std::make_unique<Subscriber>());
  std::map<const Subscriber*, std::set<std::string>> model;
  const size_t kMax = 12;
  const int kChannels = 25;
  for (int step = 0; step < 6000; ++step) {
    Subscriber& s = *subs[rng() % subs.size()];
    std::string ch = "ch:" + std::to_string(rng() % kChannels);
    const int op = static_cast<int>(rng() % 100);
    auto& mine = model[&s];
    if (op < 55) {
      Result want = mine.count(ch)              ? Result::AlreadySubscribed
                    : mine.size() >= kMax       ? Result::TooMany
                                                : Result::Subscribed;
      ASSERT_EQ(reg.subscribe(s, ch, kMax), want) << "step " << step;
      if (want == Result::Subscribed) mine.insert(ch);
    } else if (op < 97) {
      ASSERT_EQ(reg.unsubscribe(s, ch), mine.erase(ch) == 1) << "step " << step;
    } else {
      reg.unsubscribe_all(s);
      mine.clear();
    }
    ASSERT_NO_FATAL_FAILURE(check(reg, subs, model)) << "step " << step;
    // Interest follows exactly the channels that have members.
    std::set<std::string> with_members;
    for (const auto& [who, chans] : model) with_members.insert(chans.begin(), chans.end());
    ASSERT_EQ(active, with_members) << "step " << step;
  }
  for (auto& s : subs) reg.unsubscribe_all(*s);
  EXPECT_EQ(reg.channel_count(), 0u);
  EXPECT_TRUE(active.empty());
}

}  // namespace
}  // namespace wstrace::pubsub
