#include "protocol/json_writer.h"

#include <cstring>

namespace wstrace::protocol {
namespace {

// 0: copy as is; otherwise the escape's second character ('u' = \u00XX).
constexpr auto kEscape = [] {
  struct Table {
    char v[256];
  } t{};
  for (int c = 0; c < 0x20; ++c) t.v[c] = 'u';
  t.v[static_cast<int>('\b')] = 'b';
  t.v[static_cast<int>('\f')] = 'f';
  t.v[static_cast<int>('\n')] = 'n';
  t.v[static_cast<int>('\r')] = 'r';
  t.v[static_cast<int>('\t')] = 't';
  t.v[static_cast<int>('"')] = '"';
  t.v[static_cast<int>('\\')] = '\\';
  return t;
}();

}  // namespace

size_t json_string_size(std::string_view s) {
  size_t n = 2;
  for (char ch : s) {
    char e = kEscape.v[static_cast<unsigned char>(ch)];
    n += e == 0 ? 1 : e == 'u' ? 6 : 2;
  }
  return n;
}

void append_json_string(Buffer& out, std::string_view s) {
  uint8_t* p = out.prepare(s.size() * 6 + 2);
  uint8_t* start = p;
  *p++ = '"';
  size_t i = 0;
  const size_t n = s.size();
  while (i < n) {
    // Copy runs that need no escaping in one go.
    size_t run = i;
    while (run < n && kEscape.v[static_cast<unsigned char>(s[run])] == 0) ++run;
    std::memcpy(p, s.data() + i, run - i);
    p += run - i;
    i = run;
    if (i == n) break;
    auto c = static_cast<unsigned char>(s[i++]);
    char e = kEscape.v[c];
    *p++ = '\\';
    if (e == 'u') {
      static constexpr char kHex[] = "0123456789abcdef";
      *p++ = 'u';
      *p++ = '0';
      *p++ = '0';
      *p++ = static_cast<uint8_t>(kHex[c >> 4]);
      *p++ = static_cast<uint8_t>(kHex[c & 15]);
    } else {
      *p++ = static_cast<uint8_t>(e);
    }
  }
  *p++ = '"';
  out.grow(static_cast<size_t>(p - start));
}

}  // namespace wstrace::protocol
