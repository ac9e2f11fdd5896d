// Test-only view of a Frame's reference count. The count is the first member
// of Frame (a standard-layout class), so it sits at the object's address.
#pragma once

#include <atomic>
#include <cstdint>
#include <type_traits>

#include "pubsub/frame.h"

namespace wstrace::pubsub::test {

inline uint32_t refs(const Frame* f) {
  static_assert(sizeof(std::atomic<uint32_t>) == sizeof(uint32_t));
  return reinterpret_cast<const std::atomic<uint32_t>*>(f)->load();
}

}  // namespace wstrace::pubsub::test
