// A growable byte buffer that always keeps kPadding readable bytes past its
// end (simdjson reads up to 64 bytes past a document). 16 bytes when empty,
// and it allocates nothing until something is appended.
#pragma once

#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <new>
#include <string_view>
#include <utility>

namespace wstrace {

class Buffer {
 public:
  static constexpr uint32_t kPadding = 64;

  Buffer() = default;
  ~Buffer() { std::free(data_); }
  Buffer(const Buffer&) = delete;
  Buffer& operator=(const Buffer&) = delete;
  Buffer(Buffer&& o) noexcept
      : data_(std::exchange(o.data_, nullptr)),
        size_(std::exchange(o.size_, 0)),
        cap_(std::exchange(o.cap_, 0)) {}
  Buffer& operator=(Buffer&& o) noexcept {
    if (this != &o) {
      std::free(data_);
      data_ = std::exchange(o.data_, nullptr);
      size_ = std::exchange(o.size_, 0);
      cap_ = std::exchange(o.cap_, 0);
    }
    return *this;
  }

  uint8_t* data() { return data_; }
  const uint8_t* data() const { return data_; }
  size_t size() const { return size_; }
  size_t capacity() const { return cap_; }
  bool empty() const { return size_ == 0; }
  std::string_view view() const {
    return {reinterpret_cast<const char*>(data_), size_};
  }

  // Ensures room for `n` bytes in total (plus padding).
  void reserve(size_t n) {
    if (n <= cap_) return;
    size_t want = cap_ ? cap_ : 256;
    while (want < n) want *= 2;
    auto* p = static_cast<uint8_t*>(std::realloc(data_, want + kPadding));
    if (p == nullptr) std::abort();  // out of memory: nothing sensible left to do
    data_ = p;
    cap_ = static_cast<uint32_t>(want);
  }
  // Room for `n` more bytes; returns where they go (commit with grow()).
  uint8_t* prepare(size_t n) {
    reserve(size_ + n);
    return data_ + size_;
  }
  void grow(size_t n) { size_ += static_cast<uint32_t>(n); }
  void append(const void* p, size_t n) {
    if (n == 0) return;  // an empty buffer has no storage: memcpy(nullptr, ..., 0) is UB
    std::memcpy(prepare(n), p, n);
    size_ += static_cast<uint32_t>(n);
  }
  void append(std::string_view s) { append(s.data(), s.size()); }
  void push_back(uint8_t b) { *prepare(1) = b; ++size_; }
  void resize(size_t n) {
    reserve(n);
    size_ = static_cast<uint32_t>(n);
  }
  void clear() { size_ = 0; }
  // Drops the first `n` bytes.
  void consume(size_t n) {
    if (n >= size_) {
      size_ = 0;
      return;
    }
    std::memmove(data_, data_ + n, size_ - n);
    size_ -= static_cast<uint32_t>(n);
  }
  // Frees the memory (an idle connection holds none).
  void release() {
    std::free(data_);
    data_ = nullptr;
    size_ = cap_ = 0;
  }

 private:
  uint8_t* data_ = nullptr;
  uint32_t size_ = 0;
  uint32_t cap_ = 0;
};

}  // namespace wstrace
