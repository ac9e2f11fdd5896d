// The per-(publisher, subscriber) delivery check of wstrace-bench: what it
// calls lost, duplicated and reordered, including past its gap cap.
#include "sequence.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <cstdint>
#include <random>
#include <set>
#include <vector>

namespace wsbench {
namespace {

using V = SequenceTrack::Verdict;

struct Counts {
  uint64_t in_order = 0, ahead = 0, late = 0, duplicate = 0;
};

Counts feed(SequenceTrack& t, const std::vector<uint64_t>& seqs) {
  Counts c;
  for (uint64_t s : seqs) {
    switch (t.on(s)) {
      case V::InOrder: ++c.in_order; break;
      case V::Ahead: ++c.ahead; break;
      case V::Late: ++c.late; break;
      case V::Duplicate: ++c.duplicate; break;
    }
  }
  return c;
}

TEST(SequenceTrack, InOrderIsClean) {
  SequenceTrack t;
  for (uint64_t s = 0; s < 100; ++s) EXPECT_EQ(t.on(s), V::InOrder);
  EXPECT_EQ(t.next(), 100u);
  EXPECT_EQ(t.unique(), 100u);
  EXPECT_EQ(t.lost(100), 0u);
  EXPECT_EQ(t.gaps(), 0u);
}

TEST(SequenceTrack, LostInTheMiddleAndAtTheEnd) {
  SequenceTrack t;
  EXPECT_EQ(t.on(0), V::InOrder);
  EXPECT_EQ(t.on(1), V::InOrder);
  EXPECT_EQ(t.on(4), V::Ahead);  // 2 and 3 missing
  EXPECT_EQ(t.on(5), V::InOrder);
  EXPECT_EQ(t.gaps(), 1u);
  EXPECT_EQ(t.unique(), 4u);
  // 8 were sent: 2, 3 never came, nor 6, 7 (the tail has no gap to remember).
  EXPECT_EQ(t.lost(8), 4u);
  EXPECT_EQ(t.lost(6), 2u);
}

TEST(SequenceTrack, NothingReceivedIsAllLost) {
  SequenceTrack t;
  EXPECT_EQ(t.lost(10), 10u);
  EXPECT_EQ(t.lost(0), 0u);
}

TEST(SequenceTrack, Duplicates) {
  SequenceTrack t;
  EXPECT_EQ(t.on(0), V::InOrder);
  EXPECT_EQ(t.on(0), V::Duplicate);
  EXPECT_EQ(t.on(1), V::InOrder);
  EXPECT_EQ(t.on(3), V::Ahead);
  EXPECT_EQ(t.on(3), V::Duplicate);  // the highest one again
  EXPECT_EQ(t.on(1), V::Duplicate);  // below the gap: received before
  EXPECT_EQ(t.unique(), 3u);
  EXPECT_EQ(t.lost(4), 1u);  // 2; the duplicates do not make up for it
}

TEST(SequenceTrack, Reordered) {
  SequenceTrack t;
  EXPECT_EQ(t.on(0), V::InOrder);
  EXPECT_EQ(t.on(2), V::Ahead);
  EXPECT_EQ(t.on(1), V::Late);
  EXPECT_EQ(t.on(3), V::InOrder);
  EXPECT_EQ(t.gaps(), 0u);
  EXPECT_EQ(t.unique(), 4u);
  EXPECT_EQ(t.lost(4), 0u);
  EXPECT_EQ(t.on(1), V::Duplicate);  // late once, then a repeat
}

TEST(SequenceTrack, LateArrivalsSplitAndCloseAGap) {
  SequenceTrack t;
  EXPECT_EQ(t.on(0), V::InOrder);
  EXPECT_EQ(t.on(6), V::Ahead);  // gap [1, 6)
  EXPECT_EQ(t.on(3), V::Late);   // splits it: [1, 3) [4, 6)
  EXPECT_EQ(t.gaps(), 2u);
  EXPECT_EQ(t.on(5), V::Late);   // [4, 5)
  EXPECT_EQ(t.on(1), V::Late);   // [2, 3)
  EXPECT_EQ(t.on(3), V::Duplicate);
  EXPECT_EQ(t.lost(7), 2u);      // 2 and 4
  EXPECT_EQ(t.on(4), V::Late);
  EXPECT_EQ(t.on(2), V::Late);
  EXPECT_EQ(t.gaps(), 0u);
  EXPECT_EQ(t.lost(7), 0u);
  for (uint64_t s = 0; s < 7; ++s) EXPECT_EQ(t.on(s), V::Duplicate) << s;
}

TEST(SequenceTrack, LateAfterSeveralGaps) {
  SequenceTrack t;
  const Counts c = feed(t, {0, 2, 5, 9, 4, 1, 8, 3, 6, 7});
  EXPECT_EQ(c.in_order, 1u);
  EXPECT_EQ(c.ahead, 3u);
  EXPECT_EQ(c.late, 6u);
  EXPECT_EQ(c.duplicate, 0u);
  EXPECT_EQ(t.gaps(), 0u);
  EXPECT_EQ(t.lost(10), 0u);
}

// 1024 gaps of one: 0, 2, 4, ..., 2048 received; 1, 3, ..., 2047 missing.
void fill_gaps(SequenceTrack& t) {
  for (uint64_t s = 0; s <= 2 * SequenceTrack::kMaxGaps; s += 2) t.on(s);
  ASSERT_EQ(t.gaps(), SequenceTrack::kMaxGaps);
  ASSERT_EQ(t.forgotten_missing(), 0u);
}

TEST(SequenceTrack, LateMessagePastTheGapCapStillCounts) {
  SequenceTrack t;
  fill_gaps(t);
  EXPECT_EQ(t.on(2051), V::Ahead);  // gap 1025, [2049, 2051): not remembered one by one
  EXPECT_EQ(t.gaps(), SequenceTrack::kMaxGaps);
  EXPECT_EQ(t.forgotten_missing(), 2u);
  EXPECT_EQ(t.lost(2052), 1024u + 2u);
  EXPECT_EQ(t.on(2050), V::Late);  // not a duplicate, and received
  EXPECT_EQ(t.on(2050), V::Duplicate);  // a single forgotten gap stays exact from its ends
  EXPECT_EQ(t.on(2049), V::Late);
  EXPECT_EQ(t.forgotten_missing(), 0u);
  EXPECT_EQ(t.on(2049), V::Duplicate);
  EXPECT_EQ(t.lost(2052), 1024u);
  // The remembered ones are still exact.
  for (uint64_t s = 1; s < 2048; s += 2) EXPECT_EQ(t.on(s), V::Late) << s;
  EXPECT_EQ(t.gaps(), 0u);
  EXPECT_EQ(t.lost(2052), 0u);
  EXPECT_EQ(t.forgotten_total(), 2u);
  for (uint64_t s = 0; s < 2052; ++s) ASSERT_EQ(t.on(s), V::Duplicate) << s;
}

TEST(SequenceTrack, SplitPastTheGapCapIsForgottenNotLost) {
  SequenceTrack t;
  t.on(0);
  t.on(100);  // [1, 100)
  for (uint64_t s = 102; t.gaps() < SequenceTrack::kMaxGaps; s += 2) t.on(s);
  const uint64_t top = t.next();
  EXPECT_EQ(t.on(50), V::Late);  // [1, 50) stays, [51, 100) is forgotten
  EXPECT_EQ(t.gaps(), SequenceTrack::kMaxGaps);
  EXPECT_EQ(t.forgotten_missing(), 49u);
  EXPECT_EQ(t.on(99), V::Late);
  EXPECT_EQ(t.on(51), V::Late);
  EXPECT_EQ(t.on(10), V::Late);  // from the remembered part
  EXPECT_EQ(t.on(10), V::Duplicate);
  // Everything comes again: nothing is lost, and every sequence is received
  // once (late or duplicate may swap inside the forgotten range, see above).
  uint64_t late = 0, dup = 0;
  for (uint64_t s = 0; s < top; ++s) {
    const V v = t.on(s);
    late += v == V::Late;
    dup += v == V::Duplicate;
  }
  EXPECT_EQ(t.lost(top), 0u);
  EXPECT_EQ(t.forgotten_missing(), 0u);
  EXPECT_EQ(late + dup, top);
  EXPECT_EQ(t.unique(), top);
}

// The documented approximation: once a range is forgotten, a repeat of a
// sequence that had arrived inside it counts as late in place of a forgotten
// one while forgotten ones are missing. The run fails either way.
TEST(SequenceTrack, DuplicateInsideAForgottenRangeIsCountedLate) {
  SequenceTrack t;
  fill_gaps(t);
  t.on(2051);  // forgets [2049, 2051)
  t.on(2055);  // forgets [2052, 2055): the coarse range is [2049, 2055), 5 missing
  EXPECT_EQ(t.forgotten_missing(), 5u);
  EXPECT_EQ(t.on(2051), V::Late);  // really a duplicate
  EXPECT_EQ(t.lost(2056), 1024u + 4u);  // one fewer than the truth (5)
  // Past the forgotten count nothing more is credited.
  for (uint64_t s : {2049u, 2050u, 2052u, 2053u}) EXPECT_EQ(t.on(s), V::Late) << s;
  EXPECT_EQ(t.forgotten_missing(), 0u);
  EXPECT_EQ(t.on(2054), V::Duplicate);  // really late: the totals still add up
  EXPECT_EQ(t.on(2051), V::Duplicate);
}

TEST(SequenceTrack, LateArrivalInsideAForgottenGap) {
  SequenceTrack t;
  fill_gaps(t);
  t.on(2060);                      // forgets [2049, 2060): 11 missing
  EXPECT_EQ(t.on(2055), V::Late);  // inside: the range now spans a received one
  EXPECT_EQ(t.forgotten_missing(), 10u);
  EXPECT_EQ(t.lost(2061), 1024u + 10u);
  // Documented: a repeat of 2055 is now counted late in place of a forgotten one...
  EXPECT_EQ(t.on(2055), V::Late);
  EXPECT_EQ(t.lost(2061), 1024u + 9u);  // the truth is 10
  // ... and when every forgotten one arrives, the last is counted a duplicate:
  // the totals (11 late, 1 duplicate, 0 lost) are right, not which was which.
  uint64_t late = 0, dup = 0;
  for (uint64_t s = 2049; s < 2060; ++s) {
    if (s == 2055) continue;
    const V v = t.on(s);
    late += v == V::Late;
    dup += v == V::Duplicate;
  }
  EXPECT_EQ(late, 9u);
  EXPECT_EQ(dup, 1u);
  EXPECT_EQ(t.lost(2061), 1024u);
}

TEST(SequenceTrack, ForgottenRangeWithoutArrivalsStaysLost) {
  SequenceTrack t;
  fill_gaps(t);
  t.on(3000);
  EXPECT_EQ(t.forgotten_missing(), 3000u - 2049u);
  EXPECT_EQ(t.lost(3001), 1024u + 951u);
  EXPECT_EQ(t.on(3000), V::Duplicate);
  EXPECT_EQ(t.on(2048), V::Duplicate);  // below the coarse range: received before
}

// Against a reference model (the set of sequences received) on random
// streams with drops, duplicates and reordering; under the gap cap the
// track must agree exactly.
TEST(SequenceTrack, MatchesAReferenceModel) {
  std::mt19937_64 rng(42);
  for (int round = 0; round < 200; ++round) {
    const uint64_t n = 1 + rng() % 3000;
    std::vector<uint64_t> stream;
    for (uint64_t s = 0; s < n; ++s) {
      const uint64_t r = rng() % 100;
      if (r < 5) continue;                 // dropped
      stream.push_back(s);
      if (r < 8) stream.push_back(s);      // duplicated right away
    }
    // Local reordering: swap nearby entries; and a few late duplicates.
    for (size_t i = 0; i + 1 < stream.size(); ++i) {
      if (rng() % 10 == 0) std::swap(stream[i], stream[i + 1 + rng() % std::min<size_t>(8, stream.size() - i - 1)]);
    }
    for (int k = 0; k < 5 && !stream.empty(); ++k) {
      stream.insert(stream.begin() + static_cast<std::ptrdiff_t>(rng() % stream.size()),
                    stream[rng() % stream.size()]);
    }
    SequenceTrack t;
    std::set<uint64_t> seen;
    uint64_t next = 0;
    for (uint64_t s : stream) {
      V want;
      if (seen.count(s)) {
        want = V::Duplicate;
      } else if (s == next) {
        want = V::InOrder;
      } else if (s > next) {
        want = V::Ahead;
      } else {
        want = V::Late;
      }
      seen.insert(s);
      next = std::max(next, s + 1);
      ASSERT_EQ(t.on(s), want) << "round " << round << " seq " << s;
    }
    ASSERT_LT(t.gaps(), SequenceTrack::kMaxGaps);
    EXPECT_EQ(t.unique(), seen.size());
    EXPECT_EQ(t.lost(n), n - seen.size());
    EXPECT_EQ(t.forgotten_total(), 0u);
  }
}

// Past the cap, with no duplicates: still exact (late arrivals of forgotten
// sequences are credited one each).
TEST(SequenceTrack, PastTheCapWithoutDuplicatesStaysExact) {
  std::mt19937_64 rng(7);
  for (int round = 0; round < 20; ++round) {
    const uint64_t n = 10000;
    std::vector<uint64_t> stream;
    std::vector<uint64_t> held;  // delayed to the end, in random order
    for (uint64_t s = 0; s < n; ++s) {
      const uint64_t r = s + 1 == n ? 99 : rng() % 100;  // the last one in order
      if (r < 10) continue;            // lost
      if (r < 40) {
        held.push_back(s);             // late
      } else {
        stream.push_back(s);
      }
    }
    std::shuffle(held.begin(), held.end(), rng);
    SequenceTrack t;
    std::set<uint64_t> seen;
    uint64_t late = 0;
    for (uint64_t s : stream) {
      t.on(s);
      seen.insert(s);
    }
    ASSERT_GT(t.forgotten_total(), 0u);  // the cap was reached
    for (uint64_t s : held) {
      late += t.on(s) == V::Late;
      seen.insert(s);
    }
    EXPECT_EQ(late, held.size());
    EXPECT_EQ(t.unique(), seen.size());
    EXPECT_EQ(t.lost(n), n - seen.size());
  }
}

}  // namespace
}  // namespace wsbench
