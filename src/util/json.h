// JSON string escaping, shared by everything that writes JSON (logs, the
// client protocol, OTLP/JSON, the admin API). Input must be UTF-8; only '"',
// '\\' and control characters are escaped.
#pragma once

#include <charconv>
#include <cstdint>
#include <cstring>
#include <string>
#include <string_view>

namespace wstrace::json {

// 0: copy the byte as is; otherwise the escape's second character ('u' for \u00XX).
inline constexpr auto kEscape = [] {
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

// Writes the escaped form of `s` (without quotes) at `p`, which must have room
// for 6 * s.size() bytes; returns the end.
inline char* write_escaped(char* p, std::string_view s) {
  static constexpr char kHex[] = "0123456789abcdef";
  size_t i = 0;
  const size_t n = s.size();
  while (i < n) {
    size_t run = i;  // copy runs that need no escaping in one go
    while (run < n && kEscape.v[static_cast<unsigned char>(s[run])] == 0) ++run;
    std::memcpy(p, s.data() + i, run - i);
    p += run - i;
    i = run;
    if (i == n) break;
    auto c = static_cast<unsigned char>(s[i++]);
    char e = kEscape.v[c];
    *p++ = '\\';
    if (e == 'u') {
      *p++ = 'u';
      *p++ = '0';
      *p++ = '0';
      *p++ = kHex[c >> 4];
      *p++ = kHex[c & 15];
    } else {
      *p++ = e;
    }
  }
  return p;
}

// Appends `s` as a JSON string literal, quotes included.
inline void append_string(std::string& out, std::string_view s) {
  const size_t start = out.size();
  out.resize(start + s.size() * 6 + 2);
  char* p = out.data() + start;
  *p++ = '"';
  p = write_escaped(p, s);
  *p++ = '"';
  out.resize(static_cast<size_t>(p - out.data()));
}

// Length append_string would add.
inline size_t string_size(std::string_view s) {
  size_t n = 2;
  for (char ch : s) {
    char e = kEscape.v[static_cast<unsigned char>(ch)];
    n += e == 0 ? 1 : e == 'u' ? 6 : 2;
  }
  return n;
}

// A finite double in its shortest form that reads back as the same value.
inline void append_finite_double(std::string& out, double v) {
  char buf[32];
  auto r = std::to_chars(buf, buf + sizeof buf, v, std::chars_format::general);
  out.append(buf, static_cast<size_t>(r.ptr - buf));
}

}  // namespace wstrace::json
