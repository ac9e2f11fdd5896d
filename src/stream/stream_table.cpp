#include "stream/stream_table.h"

#include <algorithm>
#include <random>

namespace wstrace::stream {

std::string new_epoch() {
  static thread_local std::mt19937_64 rng{std::random_device{}() ^
                                          (uint64_t{std::random_device{}()} << 32)};
  static constexpr char kHex[] = "0123456789abcdef";
  uint64_t v = rng();
  std::string out(16, '0');
  for (int i = 15; i >= 0; --i) {
    out[static_cast<size_t>(i)] = kHex[v & 15];
    v >>= 4;
  }
  return out;
}

StreamTable::~StreamTable() {
  for (auto& [name, s] : streams_) {
    for (auto& e : s->history_) e.pub->unref();
  }
}

void StreamTable::set_rules(std::shared_ptr<const Rules> rules) {
  rules_ = rules ? std::move(rules) : std::make_shared<Rules>();
  ++rules_generation_;
}

void StreamTable::refresh_rule(Stream& s) {
  if (s.rules_generation_ == rules_generation_) return;
  s.rule_ = rules_->find(s.name_);
  s.rules_generation_ = rules_generation_;
}

Stream& StreamTable::get(std::string_view channel, uint64_t now_ns) {
  auto it = streams_.find(channel);
  if (it != streams_.end()) {
    it->second->last_used_ns_ = now_ns;
    return *it->second;
  }
  auto s = std::make_unique<Stream>();
  s->name_.assign(channel);
  s->epoch_ = new_epoch();
  s->last_used_ns_ = now_ns;
  s->serial_ = next_serial_++;
  Stream& ref = *s;
  by_serial_[ref.serial_] = &ref;
  streams_.emplace(std::string_view(ref.name_), std::move(s));
  return ref;
}

Stream* StreamTable::find(std::string_view channel) {
  auto it = streams_.find(channel);
  return it == streams_.end() ? nullptr : it->second.get();
}

void StreamTable::pop_front(Stream& s) {
  const auto& e = s.history_.front();
  s.bytes_ -= e.bytes;
  bytes_ -= e.bytes;
  --entries_;
  e.pub->unref();
  s.history_.pop_front();
}

void StreamTable::trim(Stream& s, uint64_t now_ns) {
  const ChannelRule* r = s.rule_;
  const size_t keep = r ? r->history_size : 0;
  while (s.history_.size() > keep) pop_front(s);
  if (r != nullptr && r->history_ttl_ns > 0) {
    while (!s.history_.empty() && now_ns > s.history_.front().unix_ns &&
           now_ns - s.history_.front().unix_ns > r->history_ttl_ns) {
      pop_front(s);
    }
  }
}

void StreamTable::enforce_budget() {
  while (bytes_ > budget_ && !fifo_.empty()) {
    auto [serial, offset, seq] = fifo_.front();
    fifo_.pop_front();
    auto it = by_serial_.find(serial);
    if (it == by_serial_.end()) continue;  // the stream is gone
    Stream& s = *it->second;
    if (s.history_.empty() || s.history_.front().offset != offset) continue;  // trimmed already
    pop_front(s);
    ++evicted_for_memory_;
  }
}

uint64_t StreamTable::append(Stream& s, pubsub::Publication* p, uint64_t now_ns) {
  refresh_rule(s);
  const uint64_t offset = ++s.offset_;
  p->seal(s.epoch_, offset, scratch_, s.rule_ != nullptr && s.rule_->propagate);
  s.last_used_ns_ = now_ns;
  if (s.rule_ != nullptr && s.rule_->has_history()) {
    p->ref();
    const size_t bytes = p->memory_bytes();
    const uint64_t seq = next_seq_++;
    s.history_.push_back({offset, p->published_unix_ns(), p, bytes, seq});
    s.bytes_ += bytes;
    bytes_ += bytes;
    ++entries_;
    fifo_.push_back({s.serial_, offset, seq});
    trim(s, now_ns);
    enforce_budget();
    if (fifo_.size() > 2 * entries_ + 64) compact_fifo();
  } else if (!s.history_.empty()) {
    trim(s, now_ns);  // the rule changed: the old history goes
  }
  return offset;
}

Range StreamTable::recover(Stream& s, std::string_view epoch, uint64_t since, uint64_t now_ns) {
  refresh_rule(s);
  trim(s, now_ns);
  s.last_used_ns_ = now_ns;
  Range out;
  out.epoch_matched = epoch == s.epoch_;
  if (!out.epoch_matched || since > s.offset_) return out;
  if (since == s.offset_) {
    out.complete = true;  // nothing missed
    return out;
  }
  if (s.first_kept() > since + 1) return out;  // trimmed: some are gone
  out.complete = true;
  for (const auto& e : s.history_) {
    if (e.offset <= since) continue;
    e.pub->ref();
    out.pubs.push_back(e.pub);
  }
  return out;
}

Range StreamTable::read(Stream& s, const std::string_view* epoch, uint64_t since, size_t limit,
                        uint64_t now_ns) {
  refresh_rule(s);
  trim(s, now_ns);
  s.last_used_ns_ = now_ns;
  Range out;
  out.epoch_matched = epoch == nullptr || *epoch == s.epoch_;
  if (!out.epoch_matched) return out;
  size_t begin = 0;
  if (epoch != nullptr) {
    out.complete = since >= s.offset_ || s.first_kept() <= since + 1;
    while (begin < s.history_.size() && s.history_[begin].offset <= since) ++begin;
  } else {
    out.complete = true;
    if (limit > 0 && s.history_.size() > limit) begin = s.history_.size() - limit;
  }
  for (size_t i = begin; i < s.history_.size(); ++i) {
    if (limit > 0 && out.pubs.size() >= limit) break;
    s.history_[i].pub->ref();
    out.pubs.push_back(s.history_[i].pub);
  }
  return out;
}

void StreamTable::sweep(uint64_t now_ns, uint64_t idle_ns,
                        const std::function<bool(const std::string&)>& in_use) {
  for (auto it = streams_.begin(); it != streams_.end();) {
    Stream& s = *it->second;
    refresh_rule(s);
    trim(s, now_ns);
    if (s.history_.empty() && now_ns > s.last_used_ns_ && now_ns - s.last_used_ns_ > idle_ns &&
        !in_use(s.name_)) {
      by_serial_.erase(s.serial_);
      it = streams_.erase(it);
    } else {
      ++it;
    }
  }
  if (fifo_.size() > 2 * entries_ + 64) compact_fifo();
}

void StreamTable::compact_fifo() {
  fifo_.clear();
  for (const auto& [name, s] : streams_) {
    for (const auto& e : s->history_) fifo_.push_back({s->serial_, e.offset, e.seq});
  }
  std::sort(fifo_.begin(), fifo_.end(),
            [](const FifoRecord& a, const FifoRecord& b) { return a.seq < b.seq; });
}

}  // namespace wstrace::stream
