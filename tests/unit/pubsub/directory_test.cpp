#include "pubsub/directory.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <string>
#include <thread>
#include <vector>

namespace wstrace::pubsub {
namespace {

TEST(Directory, NodeWideTransitions) {
  Directory d;
  std::vector<std::pair<std::string, bool>> calls;
  d.set_listener([&](const std::string& ch, bool active) { calls.emplace_back(ch, active); });
  d.update("a", true);   // thread 1 gains a: node-wide active
  d.update("a", true);   // thread 2 gains a: no change
  d.update("b", true);
  EXPECT_EQ(d.size(), 2u);
  d.update("a", false);  // thread 1 loses a: still active on thread 2
  d.update("a", false);  // thread 2 loses a: inactive
  d.update("zzz", false);  // unknown: ignored
  EXPECT_EQ(d.size(), 1u);
  EXPECT_EQ(d.channels(), std::vector<std::string>{"b"});
  std::vector<std::pair<std::string, bool>> want = {{"a", true}, {"b", true}, {"a", false}};
  EXPECT_EQ(calls, want);
}

TEST(Directory, ConcurrentUpdatesBalance) {
  Directory d;
  int active = 0;
  int max_active = 0;
  d.set_listener([&](const std::string&, bool a) {
    active += a ? 1 : -1;  // called under the directory's lock
    max_active = std::max(max_active, active);
  });
  std::vector<std::thread> threads;
  for (int t = 0; t < 4; ++t) {
    threads.emplace_back([&d] {
      for (int i = 0; i < 2000; ++i) {
        d.update("ch" + std::to_string(i % 7), true);
        d.update("ch" + std::to_string(i % 7), false);
      }
    });
  }
  for (auto& t : threads) t.join();
  EXPECT_EQ(active, 0);
  EXPECT_LE(max_active, 7);
  EXPECT_EQ(d.size(), 0u);
}

}  // namespace
}  // namespace wstrace::pubsub
