// The streams of the channels one thread owns (in-process mode): for each
// channel its epoch (the generation of the stream: new when its state was
// lost), the last offset given out and the history its rule keeps, bounded
// by count, age and this thread's share of --history-memory.
//
// Only the owner thread touches a StreamTable, so nothing here is locked.
// History entries are the publications themselves (one reference each): the
// frames a recovering subscriber gets are the ones every live subscriber got.
#pragma once

#include <cstddef>
#include <cstdint>
#include <deque>
#include <functional>
#include <memory>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include "pubsub/publication.h"
#include "stream/rules.h"

namespace wstrace::stream {

// A new random epoch: 16 hex digits.
std::string new_epoch();

class Stream {
 public:
  const std::string& name() const { return name_; }
  const std::string& epoch() const { return epoch_; }
  uint64_t offset() const { return offset_; }  // the last position given out (0: none)
  // The oldest offset still in the history (offset() + 1 when it is empty).
  uint64_t first_kept() const { return history_.empty() ? offset_ + 1 : history_.front().offset; }
  size_t entries() const { return history_.size(); }
  size_t bytes() const { return bytes_; }
  const ChannelRule* rule() const { return rule_; }

 private:
  friend class StreamTable;
  struct Entry {
    uint64_t offset;
    uint64_t unix_ns;            // published at (history_ttl counts from here)
    pubsub::Publication* pub;    // one reference held
    size_t bytes;                // charged to the memory budget
    uint64_t seq;                // order of arrival across the table's streams
  };
  std::string name_;
  std::string epoch_;
  uint64_t offset_ = 0;
  std::deque<Entry> history_;
  size_t bytes_ = 0;
  uint64_t last_used_ns_ = 0;
  uint64_t serial_ = 0;          // identifies this stream in the memory FIFO
  const ChannelRule* rule_ = nullptr;
  uint64_t rules_generation_ = 0;
};

// What a reader gets: publications after a position, with references held
// for the reader (release them with unref()).
struct Range {
  std::vector<pubsub::Publication*> pubs;
  // The history reached back to the position asked for and the epoch
  // matched: nothing between it and the stream's offset is missing.
  bool complete = false;
  bool epoch_matched = false;
};

class StreamTable {
 public:
  explicit StreamTable(size_t memory_budget) : budget_(memory_budget) {}
  ~StreamTable();
  StreamTable(const StreamTable&) = delete;
  StreamTable& operator=(const StreamTable&) = delete;

  // New rules (at start and on SIGHUP): each stream picks its rule again on
  // its next use; history beyond a smaller size is trimmed then.
  void set_rules(std::shared_ptr<const Rules> rules);
  void set_memory_budget(size_t bytes) { budget_ = bytes; }

  // The stream of `channel`, created (offset 0, a new epoch) when missing.
  Stream& get(std::string_view channel, uint64_t now_ns);
  Stream* find(std::string_view channel);

  // Gives `p` (unsealed) the next offset of `s`, seals it (its frame is
  // built here, once) and keeps it in the history when the channel's rule
  // says so (taking a reference). Returns the offset.
  uint64_t append(Stream& s, pubsub::Publication* p, uint64_t now_ns);

  // Recovery: everything after `since` in epoch `epoch`, if the history
  // still has all of it (complete), else nothing.
  Range recover(Stream& s, std::string_view epoch, uint64_t since, uint64_t now_ns);
  // History: up to `limit` (0: all kept) publications after `since` (oldest
  // first), or without a position the newest `limit` ones.
  Range read(Stream& s, const std::string_view* epoch, uint64_t since, size_t limit,
             uint64_t now_ns);

  // Drops expired history, and streams idle for `idle_ns` with no history
  // left that `in_use` says nobody subscribes to.
  void sweep(uint64_t now_ns, uint64_t idle_ns,
             const std::function<bool(const std::string&)>& in_use);

  size_t bytes() const { return bytes_; }
  size_t entries() const { return entries_; }
  size_t streams() const { return streams_.size(); }
  uint64_t evicted_for_memory() const { return evicted_for_memory_; }
  template <typename F>
  void for_each(F&& f) const {
    for (const auto& [name, s] : streams_) f(*s);
  }

 private:
  void refresh_rule(Stream& s);
  void trim(Stream& s, uint64_t now_ns);
  void pop_front(Stream& s);
  void enforce_budget();
  void compact_fifo();

  size_t budget_;
  Buffer scratch_;
  std::shared_ptr<const Rules> rules_ = std::make_shared<Rules>();
  uint64_t rules_generation_ = 1;
  std::unordered_map<std::string_view, std::unique_ptr<Stream>> streams_;
  std::unordered_map<uint64_t, Stream*> by_serial_;
  // Every kept entry in the order it was added, across streams: the oldest
  // goes first when the memory budget is exceeded. Entries already trimmed
  // from their stream are skipped when they reach the front, and the whole
  // FIFO is rebuilt from the streams when stale records outnumber the rest.
  struct FifoRecord {
    uint64_t serial;  // the stream
    uint64_t offset;
    uint64_t seq;
  };
  std::deque<FifoRecord> fifo_;
  uint64_t next_seq_ = 1;
  uint64_t next_serial_ = 1;
  size_t bytes_ = 0;
  size_t entries_ = 0;
  uint64_t evicted_for_memory_ = 0;
};

}  // namespace wstrace::stream
