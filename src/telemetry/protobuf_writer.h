// A tiny protobuf binary writer: varints, tags, fixed-width fields and nested
// messages (begin()/end() reserve room for the length and close the gap).
#pragma once

#include <bit>
#include <cstdint>
#include <cstring>
#include <string>
#include <string_view>

namespace wstrace::telemetry::proto {

enum WireType : uint8_t { kVarint = 0, kFixed64 = 1, kLen = 2, kFixed32 = 5 };

class Writer {
 public:
  explicit Writer(std::string& out) : out_(out) {}

  void varint(uint64_t v) {
    while (v >= 0x80) {
      out_.push_back(static_cast<char>(v | 0x80));
      v >>= 7;
    }
    out_.push_back(static_cast<char>(v));
  }
  void tag(uint32_t field, WireType wt) { varint(uint64_t{field} << 3 | wt); }

  void uint64_field(uint32_t field, uint64_t v) {
    tag(field, kVarint);
    varint(v);
  }
  void int64_field(uint32_t field, int64_t v) {  // int64: two's complement varint
    tag(field, kVarint);
    varint(static_cast<uint64_t>(v));
  }
  void bool_field(uint32_t field, bool v) {
    tag(field, kVarint);
    varint(v ? 1 : 0);
  }
  void fixed64_field(uint32_t field, uint64_t v) {
    tag(field, kFixed64);
    raw64(v);
  }
  void sfixed64_field(uint32_t field, int64_t v) { fixed64_field(field, static_cast<uint64_t>(v)); }
  void double_field(uint32_t field, double v) { fixed64_field(field, std::bit_cast<uint64_t>(v)); }
  void fixed32_field(uint32_t field, uint32_t v) {
    tag(field, kFixed32);
    for (int i = 0; i < 4; ++i) {
      out_.push_back(static_cast<char>(v >> (8 * i)));
    }
  }
  void bytes_field(uint32_t field, const void* data, size_t n) {
    tag(field, kLen);
    varint(n);
    out_.append(static_cast<const char*>(data), n);
  }
  void string_field(uint32_t field, std::string_view s) { bytes_field(field, s.data(), s.size()); }

  void raw64(uint64_t v) {
    for (int i = 0; i < 8; ++i) {
      out_.push_back(static_cast<char>(v >> (8 * i)));
    }
  }

  // Nested message or packed field: begin() returns a mark for end().
  size_t begin(uint32_t field) {
    tag(field, kLen);
    size_t mark = out_.size();
    out_.append(kLenReserve, '\0');
    return mark;
  }
  void end(size_t mark) {
    size_t body = mark + kLenReserve;
    size_t len = out_.size() - body;
    char tmp[10];  // a 64-bit varint takes at most 10 bytes
    size_t n = 0;
    uint64_t v = len;
    while (v >= 0x80) {
      tmp[n++] = static_cast<char>(v | 0x80);
      v >>= 7;
    }
    tmp[n++] = static_cast<char>(v);
    // Shrinks (or, past 2^35 bytes, grows) the reserved bytes to the varint.
    out_.replace(mark, kLenReserve, tmp, n);
  }

 private:
  static constexpr size_t kLenReserve = 5;  // lengths < 2^35
  std::string& out_;
};

}  // namespace wstrace::telemetry::proto
