// Fixed-size object slots carved from 64 KiB blocks, for objects that live in
// large numbers (connections). No per-object malloc header, no per-object
// index: each block is aligned to its size and starts with a bitmap of the
// live slots, so the owner can still iterate every live object.
#pragma once

#include <sys/mman.h>

#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <new>
#include <utility>
#include <vector>

namespace wstrace {

template <typename T>
class SlabPool {
 public:
  static constexpr size_t kBlock = 64 * 1024;
  static constexpr size_t kSlot = (sizeof(T) + alignof(T) - 1) & ~(alignof(T) - 1);
  // The live bitmap, sized for the most slots a block could hold, in whole
  // cache lines.
  static constexpr size_t kHeader = ((kBlock / kSlot + 63) / 64 * 8 + 63) / 64 * 64;
  static constexpr size_t kPerBlock = (kBlock - kHeader) / kSlot;
  static_assert((kPerBlock + 63) / 64 * 8 <= kHeader, "bitmap must fit the block header");
  static_assert(alignof(T) <= kHeader);

  SlabPool() = default;
  SlabPool(const SlabPool&) = delete;
  SlabPool& operator=(const SlabPool&) = delete;
  // Live objects must have been destroyed by the owner first.
  ~SlabPool() {
    for (auto [p, n] : regions_) munmap(p, n);
  }

  template <typename... Args>
  T* create(Args&&... args) {
    if (free_ == nullptr) grow();
    void* slot = free_;
    free_ = *static_cast<void**>(slot);
    set_live(slot, true);
    ++size_;
    return new (slot) T(std::forward<Args>(args)...);
  }

  void destroy(T* obj) {
    obj->~T();
    set_live(obj, false);
    *reinterpret_cast<void**>(obj) = free_;
    free_ = obj;
    --size_;
  }

  size_t size() const { return size_; }

  // f(T*) for every live object. f must not create objects; destroying the
  // one it is given is fine.
  template <typename F>
  void for_each(F&& f) const {
    for (char* b : blocks_) {
      const auto* bits = reinterpret_cast<const uint64_t*>(b);
      for (size_t w = 0; w * 64 < kPerBlock; ++w) {
        uint64_t word = bits[w];
        while (word != 0) {
          size_t i = w * 64 + static_cast<size_t>(__builtin_ctzll(word));
          word &= word - 1;
          f(reinterpret_cast<T*>(b + kHeader + i * kSlot));
        }
      }
    }
  }

 private:
  // Blocks come from our own mappings, kBlocksPerRegion at a time: malloc's
  // aligned allocations would waste (and touch) memory around each block, and
  // untouched pages of a mapping cost nothing.
  static constexpr size_t kBlocksPerRegion = 32;

  char* next_block() {
    if (region_next_ == region_end_) {
      size_t len = kBlock * (kBlocksPerRegion + 1);  // + 1 block of slack to align
      void* p = mmap(nullptr, len, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
      if (p == MAP_FAILED) std::abort();  // out of memory
      regions_.emplace_back(p, len);
      auto start = (reinterpret_cast<uintptr_t>(p) + kBlock - 1) & ~(uintptr_t{kBlock} - 1);
      region_next_ = reinterpret_cast<char*>(start);
      region_end_ = region_next_ + kBlock * kBlocksPerRegion;
    }
    char* b = region_next_;
    region_next_ += kBlock;
    return b;
  }

  void grow() {
    char* b = next_block();
    for (size_t i = 0; i < kHeader / 8; ++i) reinterpret_cast<uint64_t*>(b)[i] = 0;
    blocks_.push_back(b);
    for (size_t i = kPerBlock; i-- > 0;) {
      void* slot = b + kHeader + i * kSlot;
      *static_cast<void**>(slot) = free_;
      free_ = slot;
    }
  }
  static void set_live(void* slot, bool live) {
    auto addr = reinterpret_cast<uintptr_t>(slot);
    char* b = reinterpret_cast<char*>(addr & ~(uintptr_t{kBlock} - 1));
    size_t i = (addr - reinterpret_cast<uintptr_t>(b) - kHeader) / kSlot;
    auto* bits = reinterpret_cast<uint64_t*>(b);
    if (live) {
      bits[i / 64] |= uint64_t{1} << (i % 64);
    } else {
      bits[i / 64] &= ~(uint64_t{1} << (i % 64));
    }
  }

  std::vector<char*> blocks_;
  std::vector<std::pair<void*, size_t>> regions_;
  char* region_next_ = nullptr;
  char* region_end_ = nullptr;
  void* free_ = nullptr;
  size_t size_ = 0;
};

}  // namespace wstrace
