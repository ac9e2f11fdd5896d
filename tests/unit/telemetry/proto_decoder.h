// A tiny protobuf wire-format decoder for tests: a message is a list of
// (field, wire type, value) entries; length-delimited values stay raw bytes
// and are decoded again as nested messages where the test expects one.
#pragma once

#include <cstdint>
#include <cstring>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace wstrace::telemetry::testing {

struct Field {
  uint32_t number = 0;
  uint8_t wire = 0;
  uint64_t u = 0;      // varint, fixed64, fixed32
  std::string bytes;   // length-delimited
  double as_double() const {
    double d;
    std::memcpy(&d, &u, 8);
    return d;
  }
};

struct Message {
  std::vector<Field> fields;
  bool ok = true;

  std::vector<const Field*> all(uint32_t n) const {
    std::vector<const Field*> out;
    for (const auto& f : fields) {
      if (f.number == n) {
        out.push_back(&f);
      }
    }
    return out;
  }
  const Field* one(uint32_t n) const {
    for (const auto& f : fields) {
      if (f.number == n) {
        return &f;
      }
    }
    return nullptr;
  }
  bool has(uint32_t n) const { return one(n) != nullptr; }
  uint64_t u(uint32_t n) const { return one(n) ? one(n)->u : 0; }
  std::string str(uint32_t n) const { return one(n) ? one(n)->bytes : std::string(); }
};

inline bool read_varint(std::string_view& in, uint64_t& v) {
  v = 0;
  for (int shift = 0; shift < 64; shift += 7) {
    if (in.empty()) {
      return false;
    }
    auto b = static_cast<uint8_t>(in[0]);
    in.remove_prefix(1);
    v |= uint64_t{b & 0x7fu} << shift;
    if (!(b & 0x80)) {
      return true;
    }
  }
  return false;
}

inline Message decode(std::string_view in) {
  Message m;
  while (!in.empty()) {
    uint64_t key;
    if (!read_varint(in, key)) {
      m.ok = false;
      return m;
    }
    Field f;
    f.number = static_cast<uint32_t>(key >> 3);
    f.wire = static_cast<uint8_t>(key & 7);
    switch (f.wire) {
      case 0:
        if (!read_varint(in, f.u)) {
          m.ok = false;
          return m;
        }
        break;
      case 1:
        if (in.size() < 8) {
          m.ok = false;
          return m;
        }
        std::memcpy(&f.u, in.data(), 8);
        in.remove_prefix(8);
        break;
      case 5: {
        if (in.size() < 4) {
          m.ok = false;
          return m;
        }
        uint32_t v;
        std::memcpy(&v, in.data(), 4);
        f.u = v;
        in.remove_prefix(4);
        break;
      }
      case 2: {
        uint64_t len;
        if (!read_varint(in, len) || len > in.size()) {
          m.ok = false;
          return m;
        }
        f.bytes = std::string(in.substr(0, len));
        in.remove_prefix(len);
        break;
      }
      default:
        m.ok = false;
        return m;
    }
    m.fields.push_back(std::move(f));
  }
  return m;
}

inline Message sub(const Message& m, uint32_t n) {
  const Field* f = m.one(n);
  return f ? decode(f->bytes) : Message{};
}

inline std::vector<uint64_t> packed_fixed64(const std::string& bytes) {
  std::vector<uint64_t> out(bytes.size() / 8);
  std::memcpy(out.data(), bytes.data(), out.size() * 8);
  return out;
}

}  // namespace wstrace::telemetry::testing
