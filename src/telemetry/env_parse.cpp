#include "telemetry/env_parse.h"

#include <cctype>

namespace wstrace::telemetry {

namespace {
int hex_value(char c) {
  if (c >= '0' && c <= '9') {
    return c - '0';
  }
  if (c >= 'a' && c <= 'f') {
    return c - 'a' + 10;
  }
  if (c >= 'A' && c <= 'F') {
    return c - 'A' + 10;
  }
  return -1;
}
}  // namespace

std::string_view trim_blanks(std::string_view s) {
  while (!s.empty() && (s.front() == ' ' || s.front() == '\t')) {
    s.remove_prefix(1);
  }
  while (!s.empty() && (s.back() == ' ' || s.back() == '\t')) {
    s.remove_suffix(1);
  }
  return s;
}

std::optional<std::string> percent_decode(std::string_view s) {
  std::string out;
  out.reserve(s.size());
  for (size_t i = 0; i < s.size(); ++i) {
    if (s[i] != '%') {
      out.push_back(s[i]);
      continue;
    }
    if (i + 2 >= s.size()) {
      return std::nullopt;
    }
    int hi = hex_value(s[i + 1]);
    int lo = hex_value(s[i + 2]);
    if (hi < 0 || lo < 0) {
      return std::nullopt;
    }
    out.push_back(static_cast<char>(hi << 4 | lo));
    i += 2;
  }
  return out;
}

std::optional<KeyValueList> parse_key_value_list(std::string_view s) {
  KeyValueList out;
  while (!s.empty()) {
    size_t comma = s.find(',');
    std::string_view member = trim_blanks(s.substr(0, comma));
    s = comma == std::string_view::npos ? std::string_view() : s.substr(comma + 1);
    if (member.empty()) {
      continue;
    }
    size_t eq = member.find('=');
    if (eq == std::string_view::npos) {
      return std::nullopt;
    }
    std::string_view k = trim_blanks(member.substr(0, eq));
    std::string_view v = trim_blanks(member.substr(eq + 1));
    if (k.empty()) {
      return std::nullopt;
    }
    auto dk = percent_decode(k);
    auto dv = percent_decode(v);
    if (!dk || !dv || dk->empty()) {
      return std::nullopt;
    }
    if (out.size() >= 4096) {
      return std::nullopt;
    }
    out.emplace_back(std::move(*dk), std::move(*dv));
  }
  return out;
}

std::optional<uint64_t> parse_uint(std::string_view s) {
  s = trim_blanks(s);
  if (s.empty() || s.size() > 19) {
    return std::nullopt;
  }
  uint64_t v = 0;
  for (char c : s) {
    if (c < '0' || c > '9') {
      return std::nullopt;
    }
    v = v * 10 + static_cast<uint64_t>(c - '0');
  }
  return v;
}

std::optional<bool> parse_bool(std::string_view s) {
  s = trim_blanks(s);
  auto eq = [&](std::string_view w) {
    if (s.size() != w.size()) {
      return false;
    }
    for (size_t i = 0; i < s.size(); ++i) {
      if (std::tolower(static_cast<unsigned char>(s[i])) != w[i]) {
        return false;
      }
    }
    return true;
  };
  if (eq("true")) {
    return true;
  }
  if (eq("false")) {
    return false;
  }
  return std::nullopt;
}

}  // namespace wstrace::telemetry
