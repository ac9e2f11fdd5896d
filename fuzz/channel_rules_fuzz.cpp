// libFuzzer target: channel rules (src/stream/rules.h). The input is read as
// rules, one "key=value" per line with a kind prefix (s: text, i: integer,
// b: boolean, other: anything) and "--" between rules: build_rules must
// either accept them, with every rule's match a valid glob, or refuse with a
// message naming a rule. Then every accepted glob is matched against names
// taken from the input, which must not hang or crash.
#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "fuzz_check.h"
#include "stream/rules.h"

using namespace wstrace::stream;

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string_view in(reinterpret_cast<const char*>(data), size);
  std::vector<RawRule> raw(1);
  std::vector<std::string> names;
  size_t start = 0, line = 1;
  while (start <= in.size()) {
    size_t end = in.find('\n', start);
    if (end == std::string_view::npos) end = in.size();
    std::string_view l = in.substr(start, end - start);
    if (l == "--") {
      raw.emplace_back();
    } else if (size_t eq = l.find('='); eq != std::string_view::npos && eq >= 1) {
      RawValue v;
      switch (l[0]) {
        case 's': v.kind = RawValue::Kind::String; break;
        case 'i': v.kind = RawValue::Kind::Integer; break;
        case 'b': v.kind = RawValue::Kind::Boolean; break;
        default: v.kind = RawValue::Kind::Other; break;
      }
      v.text = std::string(l.substr(eq + 1));
      v.line = line;
      raw.back().emplace_back(std::string(l.substr(1, eq - 1)), std::move(v));
    } else if (l.size() <= 128) {
      names.emplace_back(l);
    }
    ++line;
    if (end == in.size()) break;
    start = end + 1;
  }
  std::vector<ChannelRule> rules;
  std::string error;
  if (build_rules(raw, rules, error)) {
    FUZZ_CHECK(rules.size() == raw.size());
    for (const auto& r : rules) {
      FUZZ_CHECK(!r.match.empty() && r.match.size() <= 256);
      for (const auto& n : names) (void)glob_match(r.match, n);
      FUZZ_CHECK(glob_match(r.match, r.match) || r.match.find('?') != std::string::npos ||
                 r.match.find('*') != std::string::npos);
    }
    Rules set(rules);
    for (const auto& n : names) {
      const ChannelRule* hit = set.find(n);
      if (hit != nullptr) FUZZ_CHECK(glob_match(hit->match, n));
    }
  } else {
    FUZZ_CHECK(error.rfind("channel rule ", 0) == 0);
  }
  return 0;
}
