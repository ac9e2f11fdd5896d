// libFuzzer target: what travels on a channel's Redis Pub/Sub channel
// (src/cluster/envelope.h: decode_pubsub, markers, history entry ids).
// Arbitrary bytes (anyone who can PUBLISH to Redis writes them): an accepted
// publication has a valid epoch, an offset >= 1 and its envelope as the
// tail; an accepted marker encodes back to the same bytes.
#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

#include "cluster/envelope.h"
#include "fuzz_check.h"

using namespace wstrace::cluster;

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string_view in(reinterpret_cast<const char*>(data), size);
  if (auto m = decode_pubsub(in)) {
    if (m->kind == PubsubMessage::Kind::Publication) {
      FUZZ_CHECK(valid_epoch(m->epoch));
      FUZZ_CHECK(m->offset >= 1);
      FUZZ_CHECK(m->envelope.data() + m->envelope.size() == in.data() + in.size());
      const std::string head = "P" + std::string(m->epoch) + ":";
      FUZZ_CHECK(in.substr(0, head.size()) == head);
    } else {
      const std::string again = encode_marker(m->node, m->read);
      auto back = decode_pubsub(again);
      FUZZ_CHECK(back && back->kind == PubsubMessage::Kind::Marker);
      FUZZ_CHECK(back->node == m->node && back->read == m->read);
    }
  }
  if (auto id = parse_entry_id(in)) {
    FUZZ_CHECK(*id >= 1);
    FUZZ_CHECK(in == std::to_string(*id) + "-0" || in.find_first_not_of("0123456789-") ==
                                                       std::string_view::npos);
  }
  return 0;
}
