// The dashboard's files, compiled into the binary, each also gzip-compressed
// at build time.
#pragma once

#include <optional>
#include <string_view>

namespace wstrace::dashboard {

struct Asset {
  std::string_view content_type;
  std::string_view body;
  std::string_view gzip;  // the same bytes, gzip -9 (Content-Encoding: gzip)
  std::string_view etag;  // a strong validator of the content, quoted
};

// The file served at `path` ("/", "/app.js", "/style.css", "/chart.js",
// "/licenses/chart.js.txt"), if it is one.
std::optional<Asset> asset(std::string_view path);

// Bytes of every embedded file: uncompressed, and as sent gzip-compressed.
size_t total_bytes();
size_t total_gzip_bytes();

}  // namespace wstrace::dashboard
