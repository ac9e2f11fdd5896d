// Parsers for the string-valued OTEL_* variables: the `k=v,k2=v2` lists of
// OTEL_RESOURCE_ATTRIBUTES and OTEL_EXPORTER_OTLP_HEADERS (percent-decoded),
// and the integer / boolean ones. I/O-free; fuzzed by fuzz/telemetry_env_fuzz.cpp.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace wstrace::telemetry {

using KeyValueList = std::vector<std::pair<std::string, std::string>>;

// RFC 3986 percent-decoding; nullopt on a malformed escape. '+' stays '+'.
std::optional<std::string> percent_decode(std::string_view s);

// "k=v, k2 = v2": comma-separated, blanks around keys and values trimmed, both
// percent-decoded, empty members skipped. nullopt (the whole value is to be
// discarded, per the OpenTelemetry spec) when a member has no '=', an empty
// key, or a bad escape. At most 4096 members.
std::optional<KeyValueList> parse_key_value_list(std::string_view s);

// Non-negative decimal integer, surrounding blanks allowed.
std::optional<uint64_t> parse_uint(std::string_view s);

// "true"/"false", case-insensitive, surrounding blanks allowed.
std::optional<bool> parse_bool(std::string_view s);

std::string_view trim_blanks(std::string_view s);

}  // namespace wstrace::telemetry
