// libFuzzer target: the permessage-deflate Inflater on arbitrary compressed
// data (size limit, window sizes, context kept or reset), inflating a message
// in parts (as its frames arrive) giving what inflating it whole gives, and
// the round trip Deflater -> Inflater on the same bytes taken as a message.
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

  // In three parts, cut anywhere.
  {
    Inflater whole_inf(bits), parts_inf(bits);
    Buffer whole, parts;
    const Inflater::Result rw = whole_inf.inflate_message(data, size, whole, max, true);
    const size_t c1 = size ? data[0] % (size + 1) : 0;
    const size_t c2 = c1 + (size - c1) / 2;
    Inflater::Result rp = parts_inf.inflate_part(data, c1, parts, 0, max);
    if (rp == Inflater::Result::Ok) rp = parts_inf.inflate_part(data + c1, c2 - c1, parts, 0, max);
    if (rp == Inflater::Result::Ok) rp = parts_inf.inflate_part(data + c2, size - c2, parts, 0, max);
    if (rp == Inflater::Result::Ok) rp = parts_inf.finish_message(parts, 0, max, true);
    // Not always the same result: zlib accepts a distance past the window
    // when the bytes it points at are still in the same call's output, so a
    // stream invalid for its window can pass or fail depending on how it is
    // cut. Whatever both decode is the same bytes, and a message too big
    // whole is never accepted in parts.
    if (rw == Inflater::Result::TooBig) FUZZ_CHECK(rp != Inflater::Result::Ok);
    if (rp == Inflater::Result::Ok && rw == Inflater::Result::Ok) {
      FUZZ_CHECK(whole.size() == parts.size() &&
                 (whole.size() == 0 || std::memcmp(whole.data(), parts.data(), whole.size()) == 0));
    }
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
