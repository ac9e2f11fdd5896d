#include "pubsub/publication.h"

#include "protocol/protocol.h"

namespace wstrace::pubsub {

ws::Deflater& DeflaterSet::get(uint8_t window_bits) {
  auto& slot = by_bits_[window_bits & 15];
  if (!slot) slot = std::make_unique<ws::Deflater>(window_bits);
  return *slot;
}

Publication* Publication::make(std::string_view channel, std::string_view content,
                               uint64_t published_unix_ns, const TraceContext& trace,
                               uint64_t origin_node) {
  auto* p = new Publication();
  p->channel_.assign(channel);
  p->content_.assign(content);
  p->content_size_ = content.size();
  p->published_unix_ns_ = published_unix_ns;
  p->trace_ = trace;
  p->origin_node_ = origin_node;
  return p;
}

void Publication::seal(std::string_view epoch, uint64_t offset, Buffer& scratch, bool propagate) {
  epoch_.assign(epoch);
  offset_ = offset;
  scratch.clear();
  char tp[55];
  std::string_view traceparent;
  if (propagate && trace_.valid()) {
    format_traceparent(trace_, tp);
    traceparent = std::string_view(tp, sizeof tp);
  }
  protocol::encode_message(scratch, channel_, content_, offset, traceparent);
  plain_ = Frame::make(ws::Opcode::Text, scratch.data(), scratch.size(), false,
                       published_unix_ns_);
}

Publication* Publication::make_gap(std::string_view channel, std::string_view epoch,
                                   uint64_t from, uint64_t to, std::string_view previous_epoch,
                                   Buffer& scratch) {
  auto* p = new Publication();
  p->channel_.assign(channel);
  p->epoch_.assign(epoch);
  p->offset_ = to;
  p->gap_from_ = from == 0 ? 1 : from;
  scratch.clear();
  protocol::encode_gap(scratch, channel, epoch, p->gap_from_, to, previous_epoch);
  p->plain_ = Frame::make(ws::Opcode::Text, scratch.data(), scratch.size());
  return p;
}

size_t Publication::memory_bytes() const {
  size_t n = sizeof(Publication) + channel_.capacity() + content_.capacity() + epoch_.capacity();
  if (plain_ != nullptr) n += plain_->size() + 32;
  for (const auto& slot : deflated_) {
    Frame* f = slot.load(std::memory_order_relaxed);
    if (f != nullptr && f != plain_) n += f->size() + 32;
  }
  return n;
}

Publication::~Publication() {
  if (plain_ != nullptr) plain_->unref();
  for (auto& slot : deflated_) {
    if (Frame* f = slot.load(std::memory_order_relaxed)) f->unref();
  }
}

Frame* Publication::deflated(uint8_t window_bits, DeflaterSet& deflaters) {
  const size_t n = plain_->payload_size();
  if (n < kCompressMin) return plain_;
  // Without context takeover each message is its own deflate stream, so a
  // stream made with a 32 KiB window only refers back within the message: a
  // message no longer than the client's window can share the 15-bit variant.
  // Most clients accept 15 bits, so usually there is exactly one variant.
  uint8_t bits = window_bits;
  if (bits < 9) bits = 9;
  if (bits > 15 || n <= (size_t{1} << bits)) bits = 15;
  auto& slot = deflated_[bits - 8];
  Frame* f = slot.load(std::memory_order_acquire);
  if (f != nullptr) return f;

  Buffer& out = deflaters.scratch();
  out.clear();
  const uint8_t* payload = plain_->data() + (plain_->size() - n);
  Frame* made;
  if (deflaters.get(bits).compress(payload, n, out) && out.size() < n) {
    made = Frame::make(ws::Opcode::Text, out.data(), out.size(), /*rsv1=*/true,
                       published_unix_ns_);
  } else {
    made = plain_;
    made->ref();
  }
  Frame* expected = nullptr;
  if (slot.compare_exchange_strong(expected, made, std::memory_order_acq_rel)) return made;
  made->unref();  // another thread built it first
  return expected;
}

}  // namespace wstrace::pubsub
