// The dashboard's files, compiled into the binary.
#pragma once

#include <optional>
#include <string_view>

namespace wstrace::dashboard {

struct Asset {
  std::string_view content_type;
  std::string_view body;
};

// The file served at `path` ("/", "/app.js", "/style.css", "/chart.js",
// "/licenses/chart.js.txt"), if it is one.
std::optional<Asset> asset(std::string_view path);

// Bytes of every embedded file (the page's whole weight, uncompressed).
size_t total_bytes();

}  // namespace wstrace::dashboard
