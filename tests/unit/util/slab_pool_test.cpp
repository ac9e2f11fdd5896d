#include "util/slab_pool.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <random>
#include <set>

namespace wstrace {
namespace {

struct Obj {
  explicit Obj(int v) : value(v) { ++alive; }
  ~Obj() { --alive; }
  int value;
  char pad[100];
  static inline int alive = 0;
};

TEST(SlabPool, IteratesExactlyTheLiveObjects) {
  SlabPool<Obj> pool;
  std::mt19937 rng(7);
  std::set<Obj*> live;
  // Several blocks' worth, freed and reused in random order.
  for (int round = 0; round < 5000; ++round) {
    if (live.empty() || rng() % 3 != 0) {
      live.insert(pool.create(round));
    } else {
      auto it = live.begin();
      std::advance(it, rng() % live.size());
      pool.destroy(*it);
      live.erase(it);
    }
  }
  ASSERT_GT(live.size(), SlabPool<Obj>::kPerBlock * 2);
  EXPECT_EQ(pool.size(), live.size());
  EXPECT_EQ(Obj::alive, static_cast<int>(live.size()));
  std::set<Obj*> seen;
  pool.for_each([&](Obj* o) { seen.insert(o); });
  EXPECT_EQ(seen, live);
  // Objects are aligned and do not overlap.
  for (Obj* o : live) EXPECT_EQ(reinterpret_cast<uintptr_t>(o) % alignof(Obj), 0u);
  std::vector<Obj*> sorted(live.begin(), live.end());
  for (size_t i = 1; i < sorted.size(); ++i) {
    EXPECT_GE(reinterpret_cast<char*>(sorted[i]) - reinterpret_cast<char*>(sorted[i - 1]),
              static_cast<ptrdiff_t>(sizeof(Obj)));
  }
  // Destroying from inside for_each is allowed.
  pool.for_each([&](Obj* o) { pool.destroy(o); });
  EXPECT_EQ(pool.size(), 0u);
  EXPECT_EQ(Obj::alive, 0);
}

TEST(SlabPool, ReusesFreedSlots) {
  SlabPool<Obj> pool;
  Obj* a = pool.create(1);
  pool.destroy(a);
  Obj* b = pool.create(2);
  EXPECT_EQ(a, b);
  EXPECT_EQ(b->value, 2);
  pool.destroy(b);
}

}  // namespace
}  // namespace wstrace
