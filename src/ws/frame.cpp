#include "ws/frame.h"

namespace wstrace::ws {

void apply_mask(uint8_t* data, size_t n, const uint8_t mask[4], size_t offset) {
  uint8_t m[4];
  for (int i = 0; i < 4; ++i) m[i] = mask[(offset + static_cast<size_t>(i)) & 3];
  size_t i = 0;
  // Eight bytes at a time; the compiler vectorises the loop further.
  uint64_t m64;
  uint32_t m32;
  std::memcpy(&m32, m, 4);
  m64 = (uint64_t{m32} << 32) | m32;
  for (; i + 8 <= n; i += 8) {
    uint64_t v;
    std::memcpy(&v, data + i, 8);
    v ^= m64;
    std::memcpy(data + i, &v, 8);
  }
  for (; i < n; ++i) data[i] ^= m[i & 3];
}

}  // namespace wstrace::ws
