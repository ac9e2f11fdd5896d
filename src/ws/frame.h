// RFC 6455 §5.2 frame headers: parsing (no I/O, no allocation) and writing,
// and the masking transform. Semantic checks (which opcodes, which bits are
// allowed when) belong to the Receiver, not here.
#pragma once

#include <cstddef>
#include <cstdint>
#include <cstring>

namespace wstrace::ws {

enum class Opcode : uint8_t {
  Continuation = 0x0,
  Text = 0x1,
  Binary = 0x2,
  Close = 0x8,
  Ping = 0x9,
  Pong = 0xA,
};

inline bool is_control(uint8_t opcode) { return (opcode & 0x8) != 0; }

constexpr size_t kMaxHeaderSize = 14;     // 2 + 8 (64-bit length) + 4 (mask)
constexpr size_t kMaxControlPayload = 125;

struct FrameHeader {
  bool fin = false;
  bool rsv1 = false;
  bool rsv2 = false;
  bool rsv3 = false;
  uint8_t opcode = 0;
  bool masked = false;
  uint8_t header_size = 0;
  uint8_t mask[4] = {0, 0, 0, 0};
  uint64_t payload_size = 0;
};

enum class HeaderStatus : uint8_t { Ok, NeedMore, BadLength };

// Parses the header at `p`. NeedMore: fewer than header_size bytes available.
// BadLength: a 64-bit length with the most significant bit set (§5.2).
inline HeaderStatus parse_header(const uint8_t* p, size_t n, FrameHeader& h) {
  if (n < 2) return HeaderStatus::NeedMore;
  h.fin = (p[0] & 0x80) != 0;
  h.rsv1 = (p[0] & 0x40) != 0;
  h.rsv2 = (p[0] & 0x20) != 0;
  h.rsv3 = (p[0] & 0x10) != 0;
  h.opcode = p[0] & 0x0F;
  h.masked = (p[1] & 0x80) != 0;
  uint64_t len = p[1] & 0x7F;
  size_t pos = 2;
  if (len == 126) {
    if (n < 4) return HeaderStatus::NeedMore;
    len = (uint64_t{p[2]} << 8) | p[3];
    pos = 4;
  } else if (len == 127) {
    if (n < 10) return HeaderStatus::NeedMore;
    len = 0;
    for (int i = 0; i < 8; ++i) len = (len << 8) | p[2 + i];
    if (len >> 63) return HeaderStatus::BadLength;
    pos = 10;
  }
  if (h.masked) {
    if (n < pos + 4) return HeaderStatus::NeedMore;
    std::memcpy(h.mask, p + pos, 4);
    pos += 4;
  }
  h.header_size = static_cast<uint8_t>(pos);
  h.payload_size = len;
  return HeaderStatus::Ok;
}

// Writes a frame header into `out` (at least kMaxHeaderSize bytes) and returns
// its size. `mask` null: an unmasked server frame; else a client frame.
inline size_t write_header(uint8_t* out, Opcode op, uint64_t payload_size, bool fin = true,
                           bool rsv1 = false, const uint8_t* mask = nullptr) {
  out[0] = static_cast<uint8_t>((fin ? 0x80 : 0) | (rsv1 ? 0x40 : 0) | static_cast<uint8_t>(op));
  const uint8_t mask_bit = mask != nullptr ? 0x80 : 0;
  size_t pos;
  if (payload_size < 126) {
    out[1] = static_cast<uint8_t>(mask_bit | payload_size);
    pos = 2;
  } else if (payload_size <= 0xFFFF) {
    out[1] = mask_bit | 126;
    out[2] = static_cast<uint8_t>(payload_size >> 8);
    out[3] = static_cast<uint8_t>(payload_size);
    pos = 4;
  } else {
    out[1] = mask_bit | 127;
    for (int i = 0; i < 8; ++i) out[2 + i] = static_cast<uint8_t>(payload_size >> (56 - 8 * i));
    pos = 10;
  }
  if (mask != nullptr) {
    std::memcpy(out + pos, mask, 4);
    pos += 4;
  }
  return pos;
}

inline size_t header_size_for(uint64_t payload_size, bool masked = false) {
  size_t base = payload_size < 126 ? 2 : payload_size <= 0xFFFF ? 4 : 10;
  return base + (masked ? 4 : 0);
}

// XORs `data` with the 4-byte mask, as if `data` started at byte `offset` of
// the payload (so a payload can be unmasked in pieces).
void apply_mask(uint8_t* data, size_t n, const uint8_t mask[4], size_t offset = 0);

}  // namespace wstrace::ws
