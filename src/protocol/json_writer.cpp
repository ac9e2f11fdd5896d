#include "protocol/json_writer.h"

#include "util/json.h"

namespace wstrace::protocol {

size_t json_string_size(std::string_view s) { return json::string_size(s); }

void append_json_string(Buffer& out, std::string_view s) {
  auto* start = reinterpret_cast<char*>(out.prepare(s.size() * 6 + 2));
  char* p = start;
  *p++ = '"';
  p = json::write_escaped(p, s);
  *p++ = '"';
  out.grow(static_cast<size_t>(p - start));
}

}  // namespace wstrace::protocol
