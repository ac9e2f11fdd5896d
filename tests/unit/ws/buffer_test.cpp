// util/Buffer. It lives in the ws test binary because tests/unit/util is
// registered by tests/unit/CMakeLists.txt; the receiver and inflater are its
// main users.
#include "util/buffer.h"

#include <gtest/gtest.h>

#include <string>

namespace wstrace {
namespace {

TEST(Buffer, EmptyHoldsNoMemory) {
  Buffer b;
  EXPECT_EQ(b.data(), nullptr);
  EXPECT_EQ(b.size(), 0u);
  EXPECT_EQ(b.capacity(), 0u);
  EXPECT_TRUE(b.empty());
  EXPECT_EQ(b.view(), "");
}

TEST(Buffer, AppendConsumeAndPadding) {
  Buffer b;
  b.append("hello ");
  b.append(std::string_view("world"));
  b.push_back('!');
  EXPECT_EQ(b.view(), "hello world!");
  EXPECT_GE(b.capacity(), b.size());
  // kPadding readable bytes past the end (simdjson reads them).
  volatile uint8_t last = b.data()[b.capacity() + Buffer::kPadding - 1];
  (void)last;
  b.consume(6);
  EXPECT_EQ(b.view(), "world!");
  b.consume(100);
  EXPECT_TRUE(b.empty());
}

TEST(Buffer, PrepareAndGrow) {
  Buffer b;
  b.append("ab");
  uint8_t* p = b.prepare(3000);
  std::memset(p, 'x', 3000);
  b.grow(1000);  // only part of the room is committed
  EXPECT_EQ(b.size(), 1002u);
  EXPECT_EQ(b.view().substr(0, 3), "abx");
  b.resize(1);
  EXPECT_EQ(b.view(), "a");
}

TEST(Buffer, MoveAndRelease) {
  Buffer a;
  a.append("data");
  Buffer b(std::move(a));
  EXPECT_EQ(b.view(), "data");
  EXPECT_EQ(a.data(), nullptr);  // NOLINT(bugprone-use-after-move): the moved-from state is specified
  Buffer c;
  c.append("other");
  c = std::move(b);
  EXPECT_EQ(c.view(), "data");
  c.release();
  EXPECT_EQ(c.data(), nullptr);
  EXPECT_EQ(c.capacity(), 0u);
  c.append("again");
  EXPECT_EQ(c.view(), "again");
}

}  // namespace
}  // namespace wstrace
