#include "dashboard/assets.h"

#include <cstdint>
#include <cstdio>

#include "assets_files.h"

// Each file between a start and an end symbol in .rodata.
#define WSTRACE_EMBED(sym, file)                                                  \
  __asm__(".section .rodata\n.balign 16\n.global " #sym "\n" #sym ":\n.incbin \"" \
          file "\"\n.global " #sym "_end\n" #sym "_end:\n.byte 0\n.previous\n");  \
  extern "C" const char sym[];                                                    \
  extern "C" const char sym##_end[];

WSTRACE_EMBED(wstrace_dash_index, WSTRACE_DASHBOARD_WEB "/index.html")
WSTRACE_EMBED(wstrace_dash_app, WSTRACE_DASHBOARD_WEB "/app.js")
WSTRACE_EMBED(wstrace_dash_style, WSTRACE_DASHBOARD_WEB "/style.css")
WSTRACE_EMBED(wstrace_dash_chart, WSTRACE_DASHBOARD_CHARTJS)
WSTRACE_EMBED(wstrace_dash_chart_license, WSTRACE_DASHBOARD_CHARTJS_LICENSE)
WSTRACE_EMBED(wstrace_dash_index_gz, WSTRACE_DASHBOARD_GZ "/index.html.gz")
WSTRACE_EMBED(wstrace_dash_app_gz, WSTRACE_DASHBOARD_GZ "/app.js.gz")
WSTRACE_EMBED(wstrace_dash_style_gz, WSTRACE_DASHBOARD_GZ "/style.css.gz")
WSTRACE_EMBED(wstrace_dash_chart_gz, WSTRACE_DASHBOARD_GZ "/chart.js.gz")
WSTRACE_EMBED(wstrace_dash_chart_license_gz, WSTRACE_DASHBOARD_GZ "/chart.js.txt.gz")

namespace wstrace::dashboard {
namespace {

struct Entry {
  std::string_view path;
  std::string_view content_type;
  const char* begin;
  const char* end;
  const char* gz_begin;
  const char* gz_end;
};

#define WSTRACE_ENTRY(path, type, sym) \
  {path, type, sym, sym##_end, sym##_gz, sym##_gz_end}

const Entry kEntries[] = {
    WSTRACE_ENTRY("/", "text/html; charset=utf-8", wstrace_dash_index),
    WSTRACE_ENTRY("/app.js", "text/javascript; charset=utf-8", wstrace_dash_app),
    WSTRACE_ENTRY("/style.css", "text/css; charset=utf-8", wstrace_dash_style),
    WSTRACE_ENTRY("/chart.js", "text/javascript; charset=utf-8", wstrace_dash_chart),
    WSTRACE_ENTRY("/licenses/chart.js.txt", "text/plain; charset=utf-8", wstrace_dash_chart_license),
};
constexpr size_t kCount = sizeof kEntries / sizeof kEntries[0];

// "\"<FNV-1a 64 of the content, hex>\"", computed once.
struct Etags {
  char text[kCount][19];
  Etags() {
    for (size_t i = 0; i < kCount; ++i) {
      uint64_t h = 0xcbf29ce484222325ull;
      for (const char* p = kEntries[i].begin; p != kEntries[i].end; ++p) {
        h = (h ^ static_cast<unsigned char>(*p)) * 0x100000001b3ull;
      }
      std::snprintf(text[i], sizeof text[i], "\"%016llx\"", static_cast<unsigned long long>(h));
    }
  }
};

std::string_view span(const char* b, const char* e) {
  return std::string_view(b, static_cast<size_t>(e - b));
}

}  // namespace

std::optional<Asset> asset(std::string_view path) {
  static const Etags etags;
  if (path == "/index.html") path = "/";
  for (size_t i = 0; i < kCount; ++i) {
    const Entry& e = kEntries[i];
    if (e.path == path) {
      return Asset{e.content_type, span(e.begin, e.end), span(e.gz_begin, e.gz_end),
                   std::string_view(etags.text[i], 18)};
    }
  }
  return std::nullopt;
}

size_t total_bytes() {
  size_t n = 0;
  for (const auto& e : kEntries) n += static_cast<size_t>(e.end - e.begin);
  return n;
}

size_t total_gzip_bytes() {
  size_t n = 0;
  for (const auto& e : kEntries) n += static_cast<size_t>(e.gz_end - e.gz_begin);
  return n;
}

}  // namespace wstrace::dashboard
