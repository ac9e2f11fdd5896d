#include "util/units.h"

#include <cctype>
#include <charconv>
#include <cmath>

namespace wstrace {
namespace {

bool iequals(std::string_view a, std::string_view b) {
  if (a.size() != b.size()) return false;
  for (size_t i = 0; i < a.size(); ++i) {
    if (std::tolower(static_cast<unsigned char>(a[i])) !=
        std::tolower(static_cast<unsigned char>(b[i]))) {
      return false;
    }
  }
  return true;
}

std::string_view trim(std::string_view s) {
  while (!s.empty() && std::isspace(static_cast<unsigned char>(s.front()))) s.remove_prefix(1);
  while (!s.empty() && std::isspace(static_cast<unsigned char>(s.back()))) s.remove_suffix(1);
  return s;
}

// Splits "12.5MiB" into 12.5 and "MiB".
bool split_number(std::string_view text, double& number, std::string_view& unit) {
  text = trim(text);
  size_t i = 0;
  while (i < text.size() && (std::isdigit(static_cast<unsigned char>(text[i])) || text[i] == '.')) {
    ++i;
  }
  if (i == 0) return false;
  auto [ptr, ec] = std::from_chars(text.data(), text.data() + i, number);
  if (ec != std::errc() || ptr != text.data() + i || !std::isfinite(number) || number < 0) {
    return false;
  }
  unit = trim(text.substr(i));
  return true;
}

// Rounds to the nearest integer; nullopt past what a uint64_t holds.
// (std::llround goes through a signed 64-bit integer and returned garbage
// above 2^63.)
std::optional<uint64_t> to_u64(double v) {
  v = std::round(v);
  if (!(v < 18446744073709551616.0)) return std::nullopt;  // 2^64
  return static_cast<uint64_t>(v);
}

}  // namespace

std::optional<uint64_t> parse_size(std::string_view text) {
  double number = 0;
  std::string_view unit;
  if (!split_number(text, number, unit)) return std::nullopt;
  struct Unit {
    const char* name;
    double factor;
  };
  static constexpr Unit kUnits[] = {{"", 1},           {"b", 1},
                                    {"kb", 1e3},       {"kib", 1024.0},
                                    {"k", 1024.0},     {"mb", 1e6},
                                    {"mib", 1048576.0}, {"m", 1048576.0},
                                    {"gb", 1e9},       {"gib", 1073741824.0},
                                    {"g", 1073741824.0}};
  for (const auto& u : kUnits) {
    if (iequals(unit, u.name)) {
      return to_u64(number * u.factor);
    }
  }
  return std::nullopt;
}

std::optional<uint64_t> parse_duration_ns(std::string_view text) {
  double number = 0;
  std::string_view unit;
  if (!split_number(text, number, unit)) return std::nullopt;
  struct Unit {
    const char* name;
    double factor;
  };
  static constexpr Unit kUnits[] = {{"", 1e9},  {"ns", 1},      {"us", 1e3},     {"ms", 1e6},
                                    {"s", 1e9}, {"m", 60e9},    {"min", 60e9},   {"h", 3600e9}};
  for (const auto& u : kUnits) {
    if (iequals(unit, u.name)) {
      return to_u64(number * u.factor);
    }
  }
  return std::nullopt;
}

std::string format_size(uint64_t bytes) {
  if (bytes >= 1073741824ull && bytes % 1073741824ull == 0) {
    return std::to_string(bytes / 1073741824ull) + "GiB";
  }
  if (bytes >= 1048576ull && bytes % 1048576ull == 0) {
    return std::to_string(bytes / 1048576ull) + "MiB";
  }
  if (bytes >= 1024 && bytes % 1024 == 0) return std::to_string(bytes / 1024) + "KiB";
  return std::to_string(bytes) + "B";
}

std::string format_duration_ns(uint64_t ns) {
  if (ns == 0) return "0s";
  if (ns % 3600'000'000'000ull == 0) return std::to_string(ns / 3600'000'000'000ull) + "h";
  if (ns % 60'000'000'000ull == 0) return std::to_string(ns / 60'000'000'000ull) + "m";
  if (ns % 1'000'000'000ull == 0) return std::to_string(ns / 1'000'000'000ull) + "s";
  if (ns % 1'000'000ull == 0) return std::to_string(ns / 1'000'000ull) + "ms";
  if (ns % 1'000ull == 0) return std::to_string(ns / 1'000ull) + "us";
  return std::to_string(ns) + "ns";
}

}  // namespace wstrace
