// OutQueue: partial writes, the bytes counted against --max-backpressure,
// drop_unstarted keeping a partly written head, ring growth, and every
// reference given back.
#include "pubsub/out_queue.h"

#include <gtest/gtest.h>

#include <random>
#include <string>
#include <vector>

#include "refs.h"

namespace wstrace::pubsub {
namespace {

using test::refs;

Frame* frame_of(size_t payload) {
  return Frame::make(ws::Opcode::Binary, std::string(payload, 'x'));
}

uint64_t expected_bytes(const std::vector<std::pair<Frame*, uint32_t>>& q) {
  uint64_t n = 0;
  for (auto [f, off] : q) n += f->size() - off + OutQueue::kEntryOverhead;
  return n;
}

TEST(OutQueue, ConsumeReportsEachWrittenFrame) {
  OutQueue q;
  const uint8_t payload[] = {'m'};
  Frame* stamped = Frame::make(ws::Opcode::Text, payload, 1, false, 77);
  Frame* other = frame_of(10);
  q.push(stamped);
  q.push(other);
  std::vector<uint64_t> written;
  auto note = [&](const Frame& f) { written.push_back(f.stamp_count() ? f.stamp(0) : 0); };
  EXPECT_EQ(q.consume(2, note), 0u);  // partly written: not reported
  EXPECT_TRUE(written.empty());
  EXPECT_EQ(q.consume(1 + 5, note), 1u);
  EXPECT_EQ(written, std::vector<uint64_t>{77});
  EXPECT_EQ(q.drop_unstarted(), 0u);  // the head is partly written
  EXPECT_EQ(q.consume(7, note), 1u);
  EXPECT_EQ(written, (std::vector<uint64_t>{77, 0}));
  EXPECT_TRUE(q.empty());
}

TEST(OutQueue, EmptyQueue) {
  OutQueue q;
  EXPECT_TRUE(q.empty());
  EXPECT_EQ(q.bytes(), 0u);
  EXPECT_EQ(q.consume(100), 0u);
  EXPECT_EQ(q.drop_unstarted(), 0u);
  EXPECT_FALSE(q.front_partial());
  iovec iov[4];
  EXPECT_EQ(q.fill(iov, 4), 0);
  q.shrink();
}

TEST(OutQueue, PartialWritesAndAccounting) {
  Frame* a = frame_of(10);   // 12 bytes
  Frame* b = frame_of(200);  // 204 bytes
  Frame* c = frame_of(3);    // 5 bytes
  OutQueue q;
  for (Frame* f : {a, b, c}) {
    f->ref();  // the test keeps its own reference
    q.push(f);
  }
  EXPECT_EQ(q.count(), 3u);
  EXPECT_EQ(q.bytes(), 12u + 204u + 5u + 3 * OutQueue::kEntryOverhead);
  iovec iov[8];
  ASSERT_EQ(q.fill(iov, 8), 3);
  EXPECT_EQ(iov[0].iov_base, a->data());
  EXPECT_EQ(iov[0].iov_len, 12u);
  EXPECT_EQ(iov[2].iov_len, 5u);
  ASSERT_EQ(q.fill(iov, 2), 2);

  // 5 bytes of a written.
  EXPECT_EQ(q.consume(5), 0u);
  EXPECT_TRUE(q.front_partial());
  EXPECT_EQ(q.bytes(), 7u + 204u + 5u + 3 * OutQueue::kEntryOverhead);
  ASSERT_EQ(q.fill(iov, 8), 3);
  EXPECT_EQ(iov[0].iov_base, a->data() + 5);
  EXPECT_EQ(iov[0].iov_len, 7u);
  EXPECT_EQ(refs(a), 2u);

  // The rest of a and 100 bytes of b.
  EXPECT_EQ(q.consume(7 + 100), 1u);
  EXPECT_EQ(refs(a), 1u);  // the queue's reference is gone
  EXPECT_EQ(q.count(), 2u);
  EXPECT_TRUE(q.front_partial());
  EXPECT_EQ(q.bytes(), 104u + 5u + 2 * OutQueue::kEntryOverhead);
  ASSERT_EQ(q.fill(iov, 8), 2);
  EXPECT_EQ(iov[0].iov_base, b->data() + 100);

  // Everything, and more than there is.
  EXPECT_EQ(q.consume(1000), 2u);
  EXPECT_TRUE(q.empty());
  EXPECT_EQ(q.bytes(), 0u);
  EXPECT_FALSE(q.front_partial());
  EXPECT_EQ(refs(b), 1u);
  EXPECT_EQ(refs(c), 1u);
  for (Frame* f : {a, b, c}) f->unref();
}

TEST(OutQueue, PushWithAnOffset) {
  Frame* f = frame_of(50);  // 52 bytes
  f->ref();
  OutQueue q;
  q.push(f, 30);
  EXPECT_EQ(q.bytes(), 22u + OutQueue::kEntryOverhead);
  EXPECT_TRUE(q.front_partial());
  iovec iov[1];
  ASSERT_EQ(q.fill(iov, 1), 1);
  EXPECT_EQ(iov[0].iov_base, f->data() + 30);
  EXPECT_EQ(iov[0].iov_len, 22u);
  EXPECT_EQ(q.consume(22), 1u);
  EXPECT_EQ(refs(f), 1u);
  f->unref();
}

TEST(OutQueue, DropUnstartedKeepsAPartlyWrittenHead) {
  std::vector<Frame*> frames;
  OutQueue q;
  for (int i = 0; i < 5; ++i) {
    frames.push_back(frame_of(100));
    frames.back()->ref();
    q.push(frames.back());
  }
  q.consume(1);
  EXPECT_EQ(q.drop_unstarted(), 4u);
  EXPECT_EQ(q.count(), 1u);
  EXPECT_EQ(q.bytes(), 101u + OutQueue::kEntryOverhead);
  EXPECT_EQ(refs(frames[0]), 2u);
  for (int i = 1; i < 5; ++i) EXPECT_EQ(refs(frames[i]), 1u) << i;
  iovec iov[2];
  ASSERT_EQ(q.fill(iov, 2), 1);
  EXPECT_EQ(iov[0].iov_base, frames[0]->data() + 1);
  // A frame queued after the drop goes behind the partial head.
  frames[1]->ref();
  q.push(frames[1]);
  ASSERT_EQ(q.fill(iov, 2), 2);
  EXPECT_EQ(iov[1].iov_base, frames[1]->data());
  EXPECT_EQ(q.consume(101 + 102), 2u);
  EXPECT_TRUE(q.empty());
  for (Frame* f : frames) {
    EXPECT_EQ(refs(f), 1u);
    f->unref();
  }
}

TEST(OutQueue, DropUnstartedWithoutAPartialHeadDropsAll) {
  Frame* f = frame_of(10);
  OutQueue q;
  for (int i = 0; i < 3; ++i) {
    f->ref();
    q.push(f);
  }
  EXPECT_EQ(refs(f), 4u);
  EXPECT_EQ(q.drop_unstarted(), 3u);
  EXPECT_TRUE(q.empty());
  EXPECT_EQ(q.bytes(), 0u);
  EXPECT_EQ(refs(f), 1u);
  f->unref();
}

// A TLS record OpenSSL holds after a blocked write covers the first
// `committed` unwritten bytes: every frame starting inside them stays.
TEST(OutQueue, DropUnstartedKeepsTheFramesOfACommittedRecord) {
  std::vector<Frame*> frames;
  OutQueue q;
  for (int i = 0; i < 6; ++i) {
    frames.push_back(frame_of(100));  // 102 bytes each
    frames.back()->ref();
    q.push(frames.back());
  }
  q.consume(2);  // head: 100 bytes left
  // 100 + 102 = 202 bytes before the third frame: committed 203 reaches into it.
  EXPECT_EQ(q.drop_unstarted(203), 3u);
  EXPECT_EQ(q.count(), 3u);
  EXPECT_EQ(q.bytes(), 100u + 102 + 102 + 3 * OutQueue::kEntryOverhead);
  EXPECT_EQ(q.drop_unstarted(202), 1u);  // exactly two frames' worth
  EXPECT_EQ(q.count(), 2u);
  EXPECT_EQ(q.drop_unstarted(1), 1u);  // the head only
  EXPECT_EQ(q.count(), 1u);
  q.clear();
  for (Frame* f : frames) {
    EXPECT_EQ(refs(f), 1u);
    f->unref();
  }
  // A committed head that is not partly written stays too.
  Frame* f = frame_of(10);
  f->ref();
  q.push(f);
  f->ref();
  q.push(f);
  EXPECT_EQ(q.drop_unstarted(5), 1u);
  EXPECT_EQ(q.count(), 1u);
  q.clear();
  EXPECT_EQ(refs(f), 1u);
  f->unref();
}

TEST(OutQueue, ClearAndDestructorReleaseEverything) {
  Frame* f = frame_of(10);
  {
    OutQueue q;
    for (int i = 0; i < 20; ++i) {
      f->ref();
      q.push(f);
    }
    q.consume(3);
    EXPECT_EQ(refs(f), 21u);
    q.clear();
    EXPECT_EQ(refs(f), 1u);
    EXPECT_EQ(q.bytes(), 0u);
    for (int i = 0; i < 20; ++i) {
      f->ref();
      q.push(f);
    }
    q.consume(5);
  }
  EXPECT_EQ(refs(f), 1u);
  f->unref();
}

TEST(OutQueue, ShrinkOnlyWhenEmpty) {
  Frame* f = frame_of(1);
  OutQueue q;
  f->ref();
  q.push(f);
  q.shrink();  // not empty: nothing happens
  EXPECT_EQ(q.count(), 1u);
  EXPECT_EQ(q.consume(3), 1u);
  q.shrink();
  f->ref();
  q.push(f);  // usable again after shrinking
  EXPECT_EQ(q.count(), 1u);
  q.clear();
  EXPECT_EQ(refs(f), 1u);
  f->unref();
}

// A model of the queue driven at random through wrap-arounds and growth.
TEST(OutQueue, RandomisedAgainstAModel) {
  std::mt19937 rng(77);
  std::vector<Frame*> pool;
  for (int i = 0; i < 16; ++i) pool.push_back(frame_of(rng() % 300));
  std::vector<std::pair<Frame*, uint32_t>> model;  // frame, offset
  OutQueue q;
  for (int step = 0; step < 20000; ++step) {
    int op = static_cast<int>(rng() % 10);
    if (op < 5) {
      Frame* f = pool[rng() % pool.size()];
      f->ref();
      q.push(f);
      model.emplace_back(f, 0);
    } else if (op < 9) {
      size_t total = 0;
      for (auto [f, off] : model) total += f->size() - off;
      size_t n = total == 0 ? 0 : rng() % (total + 1);
      uint32_t done = q.consume(n);
      uint32_t want_done = 0;
      while (n > 0 && !model.empty()) {
        size_t left = model.front().first->size() - model.front().second;
        if (n < left) {
          model.front().second += static_cast<uint32_t>(n);
          break;
        }
        n -= left;
        model.erase(model.begin());
        ++want_done;
      }
      ASSERT_EQ(done, want_done);
    } else {
      uint32_t dropped = q.drop_unstarted();
      size_t keep = !model.empty() && model.front().second > 0 ? 1 : 0;
      ASSERT_EQ(dropped, model.size() - keep);
      model.resize(keep);
    }
    ASSERT_EQ(q.count(), model.size());
    ASSERT_EQ(q.bytes(), expected_bytes(model));
    ASSERT_EQ(q.front_partial(), !model.empty() && model.front().second > 0);
    iovec iov[64];
    int n = q.fill(iov, 64);
    ASSERT_EQ(static_cast<size_t>(n), std::min<size_t>(64, model.size()));
    for (int i = 0; i < n; ++i) {
      ASSERT_EQ(iov[i].iov_base, model[i].first->data() + model[i].second);
      ASSERT_EQ(iov[i].iov_len, model[i].first->size() - model[i].second);
    }
    // Every frame's count is the pool's 1 plus its entries in the queue.
    if (step % 97 == 0) {
      for (Frame* f : pool) {
        uint32_t in_queue = 0;
        for (auto [g, off] : model) in_queue += g == f;
        ASSERT_EQ(refs(f), 1 + in_queue);
      }
    }
  }
  q.clear();
  for (Frame* f : pool) {
    EXPECT_EQ(refs(f), 1u);
    f->unref();
  }
}

}  // namespace
}  // namespace wstrace::pubsub
