// The delivery check of one subscriber for one publisher: which sequence
// numbers arrived, in order or not, once or more often. I/O-free (the worker
// keeps one per publisher of a subscriber's channel; tests drive it directly).
//
// A sequence above the next expected one opens a gap [next, seq); a later
// arrival inside a remembered gap is *late* (reordered) and counts as
// received; anything else below `next` is a *duplicate*. What was sent but
// never received is lost: lost(expected) = expected - unique().
//
// Memory is bounded: at most kMaxGaps gaps are remembered one by one. A gap
// that would exceed the cap (a new one, or the upper part of a split) is
// *forgotten*: its size is added to a count of forgotten missing sequences
// and its bounds widen one coarse range [forgotten_lo, forgotten_hi). An
// arrival below `next` that matches no remembered gap but lies in that range
// while forgotten sequences are still missing is counted late (and received),
// one per forgotten sequence; past that count it is a duplicate. While the
// range is a single gap (everything in it missing) it is exact, and stays so
// as late arrivals take sequences off either end. Once it spans sequences
// that did arrive (two forgotten gaps merged, or a late arrival inside it),
// a repeat of one of those inside the range is counted late in place of a
// forgotten sequence: lost one lower and reordered one higher than the truth
// (or late and duplicate swapped, when the forgotten one arrives too). A track
// only gets there after more than kMaxGaps gaps, so the run fails either way
// (reordered > 0), and the forgotten sequences are reported (`gaps_forgotten`)
// so that such a run says so.
#pragma once

#include <cstddef>
#include <cstdint>
#include <utility>
#include <vector>

namespace wsbench {

class SequenceTrack {
 public:
  static constexpr size_t kMaxGaps = 1024;

  enum class Verdict : uint8_t {
    InOrder,    // the next expected sequence
    Ahead,      // above the next expected one: the ones in between are missing for now
    Late,       // a missing sequence arrived (reordered); it counts as received
    Duplicate,  // received before
  };

  Verdict on(uint64_t seq) {
    if (seq == next_) {
      ++next_;
      ++unique_;
      return Verdict::InOrder;
    }
    if (seq > next_) {
      // Every remembered gap lies below next_: appending keeps them sorted.
      if (gaps_.size() < kMaxGaps) {
        gaps_.emplace_back(next_, seq);
      } else {
        forget(next_, seq);
      }
      next_ = seq + 1;
      ++unique_;
      return Verdict::Ahead;
    }
    // Below next_: the last gap starting at or below seq, if seq is inside it.
    size_t lo = 0, hi = gaps_.size();
    while (lo < hi) {
      const size_t mid = lo + (hi - lo) / 2;
      if (gaps_[mid].first <= seq) {
        lo = mid + 1;
      } else {
        hi = mid;
      }
    }
    if (lo > 0 && seq < gaps_[lo - 1].second) {
      const size_t i = lo - 1;
      auto& g = gaps_[i];
      ++unique_;
      if (seq == g.first) {
        if (++g.first == g.second) gaps_.erase(gaps_.begin() + static_cast<std::ptrdiff_t>(i));
      } else if (seq + 1 == g.second) {
        g.second = seq;
      } else {
        const uint64_t top = g.second;
        g.second = seq;
        if (gaps_.size() < kMaxGaps) {
          gaps_.insert(gaps_.begin() + static_cast<std::ptrdiff_t>(i + 1), {seq + 1, top});
        } else {
          forget(seq + 1, top);
        }
      }
      return Verdict::Late;
    }
    if (forgotten_missing_ > 0 && seq >= forgotten_lo_ && seq < forgotten_hi_) {
      // While the range is one gap (all of it missing) it stays exact from its ends.
      if (forgotten_missing_ == forgotten_hi_ - forgotten_lo_) {
        if (seq == forgotten_lo_) {
          ++forgotten_lo_;
        } else if (seq + 1 == forgotten_hi_) {
          --forgotten_hi_;
        }
      }
      ++unique_;
      if (--forgotten_missing_ == 0) forgotten_lo_ = forgotten_hi_ = 0;
      return Verdict::Late;
    }
    return Verdict::Duplicate;
  }

  uint64_t next() const { return next_; }      // one past the highest sequence received
  uint64_t unique() const { return unique_; }  // distinct sequences received
  // Of `expected` sequences sent (0 .. expected-1), how many never arrived.
  uint64_t lost(uint64_t expected) const { return expected > unique_ ? expected - unique_ : 0; }
  size_t gaps() const { return gaps_.size(); }  // remembered gaps
  // Missing sequences that are not remembered one by one now / ever.
  uint64_t forgotten_missing() const { return forgotten_missing_; }
  uint64_t forgotten_total() const { return forgotten_total_; }

 private:
  void forget(uint64_t from, uint64_t to) {
    if (forgotten_missing_ == 0) {
      forgotten_lo_ = from;
      forgotten_hi_ = to;
    } else {
      if (from < forgotten_lo_) forgotten_lo_ = from;
      if (to > forgotten_hi_) forgotten_hi_ = to;
    }
    forgotten_missing_ += to - from;
    forgotten_total_ += to - from;
  }

  uint64_t next_ = 0;
  uint64_t unique_ = 0;
  std::vector<std::pair<uint64_t, uint64_t>> gaps_;  // missing [from, to), sorted, disjoint
  uint64_t forgotten_lo_ = 0, forgotten_hi_ = 0;
  uint64_t forgotten_missing_ = 0;
  uint64_t forgotten_total_ = 0;
};

}  // namespace wsbench
