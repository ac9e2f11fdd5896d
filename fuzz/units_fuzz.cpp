// libFuzzer target: parse_size and parse_duration_ns (the configuration's
// value parsers). A parsed value formats back to text that parses to it.
#include <cstddef>
#include <cstdint>
#include <string_view>

#include "fuzz_check.h"
#include "util/units.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string_view in(reinterpret_cast<const char*>(data), size);
  if (auto v = wstrace::parse_size(in)) {
    auto back = wstrace::parse_size(wstrace::format_size(*v));
    FUZZ_CHECK(back && *back == *v);
  }
  if (auto v = wstrace::parse_duration_ns(in)) {
    auto back = wstrace::parse_duration_ns(wstrace::format_duration_ns(*v));
    FUZZ_CHECK(back && *back == *v);
  }
  return 0;
}
