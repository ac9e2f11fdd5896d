#include "pubsub/frame.h"

#include <cstdlib>
#include <cstring>
#include <new>

namespace wstrace::pubsub {

Frame* Frame::make(ws::Opcode op, const uint8_t* payload, size_t n, bool rsv1) {
  const size_t header = ws::header_size_for(n);
  void* mem = std::malloc(sizeof(Frame) + header + n);
  if (mem == nullptr) std::abort();  // out of memory
  auto* f = new (mem) Frame();
  ws::write_header(f->bytes_, op, n, true, rsv1);
  if (n > 0) std::memcpy(f->bytes_ + header, payload, n);
  f->size_ = static_cast<uint32_t>(header + n);
  f->payload_size_ = static_cast<uint32_t>(n);
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
  for (size_t i = 0; i < n; ++i) total += frames[i]->size();
  void* mem = std::malloc(sizeof(Frame) + total);
  if (mem == nullptr) std::abort();  // out of memory
  auto* f = new (mem) Frame();
  uint8_t* p = f->bytes_;
  for (size_t i = 0; i < n; ++i) {
    std::memcpy(p, frames[i]->data(), frames[i]->size());
    p += frames[i]->size();
  }
  f->size_ = static_cast<uint32_t>(total);
  f->payload_size_ = static_cast<uint32_t>(total);
  return f;
}

void Frame::destroy() {
  this->~Frame();
  std::free(this);
}

}  // namespace wstrace::pubsub
