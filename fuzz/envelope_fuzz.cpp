// libFuzzer target: the Redis envelope (src/cluster/envelope.h). Arbitrary
// bytes (anyone who can PUBLISH to Redis writes them): an accepted one has
// the tail as its content and encodes back to the same fields. And an
// envelope built from arbitrary fields always decodes to those fields.
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <string>
#include <string_view>

#include "cluster/envelope.h"
#include "fuzz_check.h"

using namespace wstrace::cluster;

namespace {

bool same(const Envelope& a, const Envelope& b) {
  return a.origin_node == b.origin_node && a.published_unix_ns == b.published_unix_ns &&
         a.has_trace == b.has_trace && a.trace.flags == b.trace.flags &&
         std::memcmp(a.trace.trace_id, b.trace.trace_id, 16) == 0 &&
         std::memcmp(a.trace.span_id, b.trace.span_id, 8) == 0 && a.content == b.content;
}

uint64_t u64(const uint8_t* p) {
  uint64_t v;
  std::memcpy(&v, p, 8);
  return v;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string_view in(reinterpret_cast<const char*>(data), size);
  std::string out;

  // Decoding arbitrary bytes.
  if (auto d = decode_envelope(in)) {
    FUZZ_CHECK(size >= kEnvelopeHeader);
    FUZZ_CHECK(d->content.data() == in.data() + kEnvelopeHeader);
    FUZZ_CHECK(d->content.size() == size - kEnvelopeHeader);
    FUZZ_CHECK(!d->has_trace || d->trace.valid());
    encode_envelope(*d, out);
    FUZZ_CHECK(out.size() == size);
    // With a trace every byte is kept; without, the trace bytes are zeroed.
    if (d->has_trace) FUZZ_CHECK(out == in);
    FUZZ_CHECK(out.compare(0, 20, in.substr(0, 20)) == 0);
    auto again = decode_envelope(out);
    FUZZ_CHECK(again && same(*again, *d));
  }

  // Encoding arbitrary fields.
  if (size >= 41) {
    Envelope e;
    e.origin_node = u64(data);
    e.published_unix_ns = u64(data + 8);
    e.trace.flags = data[16];
    std::memcpy(e.trace.trace_id, data + 17, 16);
    std::memcpy(e.trace.span_id, data + 33, 8);
    e.has_trace = (data[16] & 0x80) != 0 && e.trace.valid();
    if (!e.has_trace) e.trace = {};
    e.content = in.substr(41);
    encode_envelope(e, out);
    FUZZ_CHECK(out.size() == kEnvelopeHeader + e.content.size());
    auto d = decode_envelope(out);
    FUZZ_CHECK(d && same(*d, e));
  }
  return 0;
}
