// Parsing of human-written sizes ("64KiB", "1MiB", "512") and durations
// ("500ms", "30s", "2m"). Used by the configuration; never on the data plane.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

namespace wstrace {

// Bytes. Accepts a plain integer or a number followed by B, KB, KiB, MB, MiB,
// GB, GiB (case-insensitive; KB = 1000, KiB = 1024). Fractions like "1.5MiB"
// are accepted. Returns nullopt on anything else.
std::optional<uint64_t> parse_size(std::string_view text);

// Nanoseconds. Accepts a number followed by ns, us, ms, s, m or h; a bare
// number means seconds; "0" is zero.
std::optional<uint64_t> parse_duration_ns(std::string_view text);

std::string format_size(uint64_t bytes);
std::string format_duration_ns(uint64_t ns);

}  // namespace wstrace
