// libFuzzer target: the permessage-deflate Inflater on arbitrary compressed
// data (size limit, window sizes, context kept or reset), and the round trip
// Deflater -> Inflater on the same bytes taken as a message.
#include <cstddef>
#include <cstdint>
#include <cstring>

#include "fuzz_check.h"
#include "util/buffer.h"
#include "ws/deflate.h"

using namespace wstrace;
using namespace wstrace::ws;

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size < 2) return 0;
  const int bits = 9 + data[0] % 7;
  const bool reset = data[0] & 0x80;
  static constexpr size_t kMaxes[] = {0, 1, 100, 4096, 1 << 16, 1 << 20};
  const size_t max = kMaxes[data[1] % 6];
  data += 2;
  size -= 2;

  // Arbitrary bytes as two messages of one stream.
  Inflater inf(bits);
  const size_t cut = size / 2;
  for (int i = 0; i < 2; ++i) {
    const uint8_t* p = i == 0 ? data : data + cut;
    const size_t n = i == 0 ? cut : size - cut;
    Buffer out;
    out.append("pre");
    Inflater::Result r = inf.inflate_message(p, n, out, max, reset);
    FUZZ_CHECK(std::memcmp(out.data(), "pre", 3) == 0);
    if (r == Inflater::Result::Ok) FUZZ_CHECK(out.size() - 3 <= max);
    if (r == Inflater::Result::TooBig) FUZZ_CHECK(out.size() - 3 > max);
  }

  // Our own compressed form always comes back whole.
  Deflater d(bits);
  Buffer z;
  FUZZ_CHECK(d.compress(data, size, z));
  FUZZ_CHECK(z.size() > 0);
  Inflater back(bits);
  Buffer out;
  FUZZ_CHECK(back.inflate_message(z.data(), z.size(), out, size, true) == Inflater::Result::Ok);
  FUZZ_CHECK(out.size() == size && (size == 0 || std::memcmp(out.data(), data, size) == 0));
  if (size > 0) {
    Buffer small;
    FUZZ_CHECK(back.inflate_message(z.data(), z.size(), small, size - 1, true) ==
               Inflater::Result::TooBig);
  }
  return 0;
}
