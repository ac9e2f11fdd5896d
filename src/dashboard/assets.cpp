#include "dashboard/assets.h"

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

namespace wstrace::dashboard {
namespace {

struct Entry {
  std::string_view path;
  std::string_view content_type;
  const char* begin;
  const char* end;
};

const Entry kEntries[] = {
    {"/", "text/html; charset=utf-8", wstrace_dash_index, wstrace_dash_index_end},
    {"/app.js", "text/javascript; charset=utf-8", wstrace_dash_app, wstrace_dash_app_end},
    {"/style.css", "text/css; charset=utf-8", wstrace_dash_style, wstrace_dash_style_end},
    {"/chart.js", "text/javascript; charset=utf-8", wstrace_dash_chart, wstrace_dash_chart_end},
    {"/licenses/chart.js.txt", "text/plain; charset=utf-8", wstrace_dash_chart_license,
     wstrace_dash_chart_license_end},
};

}  // namespace

std::optional<Asset> asset(std::string_view path) {
  if (path == "/index.html") path = "/";
  for (const auto& e : kEntries) {
    if (e.path == path) return Asset{e.content_type, std::string_view(e.begin, static_cast<size_t>(e.end - e.begin))};
  }
  return std::nullopt;
}

size_t total_bytes() {
  size_t n = 0;
  for (const auto& e : kEntries) n += static_cast<size_t>(e.end - e.begin);
  return n;
}

}  // namespace wstrace::dashboard
