// Internal helpers shared by the key and token parsers.
#pragma once

#include <simdjson.h>

#include <algorithm>
#include <string>
#include <string_view>
#include <vector>

namespace wstrace::auth::detail {

// Whether the object has a member name twice. RFC 7515 §4, RFC 7517 §4 and
// RFC 7519 §4 let a recipient refuse that, and we do: JSON parsers disagree
// about which of the two counts.
inline bool has_duplicate_member(simdjson::dom::object obj) {
  std::vector<std::string_view> names;
  for (auto field : obj) names.push_back(field.key);
  std::sort(names.begin(), names.end());
  return std::adjacent_find(names.begin(), names.end()) != names.end();
}

// Text from a key file or a token, safe to put in a message: printable ASCII
// ('?' for anything else), at most 64 characters.
inline std::string printable(std::string_view s) {
  std::string out;
  for (char c : s.substr(0, 64)) out.push_back(c >= 0x20 && c < 0x7f ? c : '?');
  if (s.size() > 64) out += "...";
  return out;
}

}  // namespace wstrace::auth::detail
