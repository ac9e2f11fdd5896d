// The hashed timer wheel: deadlines never fire early, deadlines several
// turns away, rescheduling and cancelling from inside fire(), and a
// randomised run against the definition.
#include "net/timer_wheel.h"

#include <gtest/gtest.h>

#include <map>
#include <random>
#include <vector>

namespace wstrace::net {
namespace {

constexpr uint64_t kStart = 1'000'000'000;
constexpr uint64_t kTick = 100;

struct Timer {
  WheelNode node;  // first member: the node's address is the timer's
  int id = 0;
  int fired = 0;
  uint32_t fired_at_tick = 0;
  uint64_t fired_at_ns = 0;
};

Timer* of(WheelNode* n) { return reinterpret_cast<Timer*>(n); }

TEST(TimerWheel, FiresAtItsTickNotBefore) {
  TimerWheel w(kStart, kTick, 8);
  Timer t;
  w.schedule(&t.node, 5);
  EXPECT_TRUE(t.node.linked());
  auto fire = [&](WheelNode* n) {
    ++of(n)->fired;
    of(n)->fired_at_tick = w.current();
    EXPECT_FALSE(n->linked());  // unlinked before the call
  };
  w.advance(kStart + 5 * kTick - 1, fire);
  EXPECT_EQ(t.fired, 0);
  EXPECT_EQ(w.current(), 4u);
  w.advance(kStart + 5 * kTick, fire);
  EXPECT_EQ(t.fired, 1);
  EXPECT_EQ(t.fired_at_tick, 5u);
  EXPECT_FALSE(t.node.linked());
  w.advance(kStart + 100 * kTick, fire);
  EXPECT_EQ(t.fired, 1);  // once
}

TEST(TimerWheel, TimeBeforeTheStartDoesNothing) {
  TimerWheel w(kStart, kTick, 8);
  Timer t;
  w.schedule(&t.node, 1);
  w.advance(0, [&](WheelNode*) { ADD_FAILURE(); });
  w.advance(kStart, [&](WheelNode*) { ADD_FAILURE(); });
  EXPECT_EQ(w.current(), 0u);
}

TEST(TimerWheel, DeadlinesSeveralTurnsAway) {
  TimerWheel w(kStart, kTick, 8);
  Timer t;
  w.schedule(&t.node, 100);  // slot 100 % 8 = 4 is visited 12 times before
  for (uint64_t tick = 1; tick < 100; ++tick) {
    w.advance(kStart + tick * kTick, [&](WheelNode*) { ADD_FAILURE() << "early at " << tick; });
  }
  int fired = 0;
  w.advance(kStart + 100 * kTick, [&](WheelNode*) {
    ++fired;
    EXPECT_EQ(w.current(), 100u);
  });
  EXPECT_EQ(fired, 1);
}

TEST(TimerWheel, OneBigJumpFiresEachAtItsOwnTick) {
  TimerWheel w(kStart, kTick, 16);
  std::vector<Timer> timers(50);
  for (int i = 0; i < 50; ++i) {
    timers[i].id = i;
    w.schedule(&timers[i].node, static_cast<uint32_t>(1 + i * 7));  // up to 22 turns away
  }
  std::vector<int> order;
  w.advance(kStart + 10'000 * kTick, [&](WheelNode* n) {
    EXPECT_EQ(w.current(), n->due);
    order.push_back(of(n)->id);
  });
  ASSERT_EQ(order.size(), 50u);
  for (int i = 0; i < 50; ++i) EXPECT_EQ(order[i], i);  // in deadline order
}

TEST(TimerWheel, PastDeadlinesFireOnTheNextTick) {
  TimerWheel w(kStart, kTick, 8);
  w.advance(kStart + 10 * kTick, [](WheelNode*) {});
  Timer t;
  w.schedule(&t.node, 3);   // in the past
  EXPECT_EQ(t.node.due, 11u);
  Timer u;
  w.schedule(&u.node, 10);  // now
  EXPECT_EQ(u.node.due, 11u);
  int fired = 0;
  w.advance(kStart + 11 * kTick, [&](WheelNode*) { ++fired; });
  EXPECT_EQ(fired, 2);
}

TEST(TimerWheel, CancelAndReschedule) {
  TimerWheel w(kStart, kTick, 8);
  Timer a, b;
  w.schedule(&a.node, 3);
  w.schedule(&b.node, 3);
  TimerWheel::cancel(&a.node);
  EXPECT_FALSE(a.node.linked());
  TimerWheel::cancel(&a.node);  // harmless
  w.schedule(&b.node, 6);        // moving a scheduled node
  std::vector<Timer*> fired;
  auto fire = [&](WheelNode* n) { fired.push_back(of(n)); };
  w.advance(kStart + 5 * kTick, fire);
  EXPECT_TRUE(fired.empty());
  w.advance(kStart + 6 * kTick, fire);
  EXPECT_EQ(fired, std::vector<Timer*>{&b});
}

TEST(TimerWheel, RescheduleInsideFire) {
  TimerWheel w(kStart, kTick, 8);
  Timer t;
  w.schedule(&t.node, 2);
  std::vector<uint32_t> ticks;
  auto fire = [&](WheelNode* n) {
    ticks.push_back(w.current());
    // A deadline exactly one turn away lands in the slot being processed.
    if (ticks.size() < 4) w.schedule(n, w.current() + 8);
  };
  w.advance(kStart + 100 * kTick, fire);
  EXPECT_EQ(ticks, (std::vector<uint32_t>{2, 10, 18, 26}));
  // Rescheduling for the very next tick from inside fire.
  TimerWheel w2(kStart, kTick, 4);
  Timer u;
  w2.schedule(&u.node, 1);
  int count = 0;
  w2.advance(kStart + 10 * kTick, [&](WheelNode* n) {
    ++count;
    if (count < 5) w2.schedule(n, w2.current() + 1);
  });
  EXPECT_EQ(count, 5);
}

TEST(TimerWheel, FireMayCancelOrMoveOtherDueNodes) {
  TimerWheel w(kStart, kTick, 8);
  Timer a, b, c;
  a.id = 1, b.id = 2, c.id = 3;
  w.schedule(&a.node, 4);
  w.schedule(&b.node, 4);
  w.schedule(&c.node, 4);
  std::vector<int> fired;
  w.advance(kStart + 4 * kTick, [&](WheelNode* n) {
    fired.push_back(of(n)->id);
    if (of(n)->id == 1) {
      TimerWheel::cancel(&b.node);       // b is due in this same tick: it must not fire
      w.schedule(&c.node, w.current() + 3);  // c is moved later
    }
  });
  EXPECT_EQ(fired, std::vector<int>{1});
  w.advance(kStart + 7 * kTick, [&](WheelNode* n) { fired.push_back(of(n)->id); });
  EXPECT_EQ(fired, (std::vector<int>{1, 3}));
  EXPECT_FALSE(b.node.linked());
}

TEST(TimerWheel, TickAfterNeverFiresEarly) {
  // Scheduling "ns from now" right after an advance to any point inside a
  // tick: the node must not fire before now + ns.
  std::mt19937_64 rng(11);
  for (int trial = 0; trial < 2000; ++trial) {
    TimerWheel w(kStart, kTick, 16);
    uint64_t now = kStart + rng() % (50 * kTick);
    w.advance(now, [](WheelNode*) {});
    uint64_t ns = rng() % (40 * kTick);
    Timer t;
    w.schedule(&t.node, w.tick_after(ns));
    const uint64_t deadline = now + ns;
    // Walk time forward in small random steps.
    uint64_t at = now;
    while (t.fired == 0) {
      at += 1 + rng() % (kTick / 3);
      w.advance(at, [&](WheelNode* n) {
        ++of(n)->fired;
        of(n)->fired_at_ns = at;
      });
      ASSERT_LT(at, deadline + 3 * kTick) << "never fired";
    }
    ASSERT_GE(t.fired_at_ns, deadline) << "trial " << trial << ": scheduled at " << now
                                        << " for " << ns << "ns";
    // ... and not much later either: within two ticks of the deadline.
    ASSERT_LE(t.fired_at_ns, deadline + 2 * kTick + kTick / 3);
  }
}

TEST(TimerWheel, RandomisedAgainstTheDefinition) {
  std::mt19937 rng(31337);
  TimerWheel w(kStart, kTick, 64);
  std::vector<Timer> timers(500);
  std::map<Timer*, uint32_t> scheduled;  // timer -> due tick
  for (int step = 0; step < 3000; ++step) {
    // Random schedule / cancel.
    for (int k = 0; k < 3; ++k) {
      Timer& t = timers[rng() % timers.size()];
      if (rng() % 4 == 0) {
        TimerWheel::cancel(&t.node);
        scheduled.erase(&t);
      } else {
        uint32_t due = w.current() + 1 + rng() % 500;  // up to ~8 turns away
        w.schedule(&t.node, due);
        scheduled[&t] = due;
      }
    }
    uint64_t now = kStart + (static_cast<uint64_t>(w.current()) + rng() % 5) * kTick + rng() % kTick;
    std::vector<Timer*> fired;
    w.advance(now, [&](WheelNode* n) {
      Timer* t = of(n);
      ASSERT_EQ(w.current(), n->due);
      ASSERT_TRUE(scheduled.count(t));
      ASSERT_EQ(scheduled[t], n->due);
      fired.push_back(t);
    });
    for (Timer* t : fired) scheduled.erase(t);
    // Nothing still scheduled is overdue; every remaining node is linked.
    const uint32_t current = static_cast<uint32_t>((now - kStart) / kTick);
    ASSERT_EQ(w.current(), current);
    for (auto [t, due] : scheduled) {
      ASSERT_GT(due, current);
      ASSERT_TRUE(t->node.linked());
    }
  }
}

}  // namespace
}  // namespace wstrace::net
