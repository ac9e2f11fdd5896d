#include "pubsub/frame.h"

#include <cstdlib>
#include <cstring>
#include <new>

namespace wstrace::pubsub {

Frame* Frame::make(ws::Opcode op, const uint8_t* payload, size_t n, bool rsv1,
                   uint64_t published_unix_ns) {
  const size_t header = ws::header_size_for(n);
  const uint32_t stamps = published_unix_ns != 0 ? 1 : 0;
  void* mem = std::malloc(sizeof(Frame) + header + n + sizeof(uint64_t) * stamps);
  if (mem == nullptr) std::abort();  // out of memory
  auto* f = new (mem) Frame();
  ws::write_header(f->bytes_, op, n, true, rsv1);
  if (n > 0) std::memcpy(f->bytes_ + header, payload, n);
  f->size_ = static_cast<uint32_t>(header + n);
  f->payload_size_ = static_cast<uint32_t>(n);
  if (stamps) {
    std::memcpy(f->bytes_ + f->size_, &published_unix_ns, sizeof published_unix_ns);
    f->stamps_ = stamps;
  }
  return f;
}

Frame* Frame::make_raw(std::string_view bytes) {
  void* mem = std::malloc(sizeof(Frame) + bytes.size());
  if (mem == nullptr) std::abort();  // out of memory
  auto* f = new (mem) Frame();
  std::memcpy(f->bytes_, bytes.data(), bytes.size());
  f->size_ = static_cast<uint32_t>(bytes.size());
  f->payload_size_ = static_cast<uint32_t>(bytes.size());
  return f;
}

Frame* Frame::concat(Frame* const* frames, size_t n) {
  size_t total = 0;
  uint32_t stamps = 0;
  for (size_t i = 0; i < n; ++i) {
    total += frames[i]->size();
    stamps += frames[i]->stamps_;
  }
  void* mem = std::malloc(sizeof(Frame) + total + sizeof(uint64_t) * stamps);
  if (mem == nullptr) std::abort();  // out of memory
  auto* f = new (mem) Frame();
  uint8_t* p = f->bytes_;
  for (size_t i = 0; i < n; ++i) {
    std::memcpy(p, frames[i]->data(), frames[i]->size());
    p += frames[i]->size();
  }
  f->size_ = static_cast<uint32_t>(total);
  f->payload_size_ = static_cast<uint32_t>(total);
  for (size_t i = 0; i < n; ++i) {
    const uint32_t k = frames[i]->stamps_;
    if (k == 0) continue;
    std::memcpy(p, frames[i]->bytes_ + frames[i]->size_, sizeof(uint64_t) * k);
    p += sizeof(uint64_t) * k;
  }
  f->stamps_ = stamps;
  return f;
}

void Frame::destroy() {
  this->~Frame();
  std::free(this);
}

}  // namespace wstrace::pubsub
