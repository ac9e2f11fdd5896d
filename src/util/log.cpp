#include "util/log.h"

#include <unistd.h>

#include <cstdio>
#include <cstring>
#include <ctime>

#include "util/clock.h"
#include "util/json.h"

namespace wstrace::log {
namespace detail {
Level g_level = Level::Info;
}
namespace {

Format g_format = Format::Text;

// "<32 hex trace id> <16 hex span id>" or empty when no span is current.
// The span current on this thread, as raw ids: set for every handled message,
// so it is two small copies; the hex is made only when a line is written.
struct CurrentSpan {
  uint8_t trace_id[16];
  uint8_t span_id[8];
  bool set;
};
thread_local CurrentSpan t_span{};

void append_hex(std::string& out, const uint8_t* p, size_t n) {
  static constexpr char kHex[] = "0123456789abcdef";
  for (size_t i = 0; i < n; ++i) {
    out += kHex[p[i] >> 4];
    out += kHex[p[i] & 15];
  }
}

constexpr const char* kLevelNames[] = {"trace", "debug", "info", "warn", "error", "off"};
constexpr const char* kLevelText[] = {"TRACE", "DEBUG", "INFO ", "WARN ", "ERROR", "OFF  "};

void append_json_string(std::string& out, std::string_view s) { json::append_string(out, s); }

bool needs_quotes(std::string_view s) {
  if (s.empty()) return true;
  for (char c : s) {
    if (c == ' ' || c == '"' || c == '=' || static_cast<unsigned char>(c) < 0x20) return true;
  }
  return false;
}

void append_value(std::string& out, const Field& f, bool json) {
  char buf[32];
  switch (f.kind) {
    case Field::Kind::Str:
      if (json || needs_quotes(f.str)) {
        append_json_string(out, f.str);
      } else {
        out += f.str;
      }
      return;
    case Field::Kind::Int:
      std::snprintf(buf, sizeof buf, "%lld", static_cast<long long>(f.i));
      break;
    case Field::Kind::Uint:
      std::snprintf(buf, sizeof buf, "%llu", static_cast<unsigned long long>(f.u));
      break;
    case Field::Kind::Double:
      std::snprintf(buf, sizeof buf, "%.6g", f.d);
      break;
    case Field::Kind::Bool:
      out += f.u ? "true" : "false";
      return;
  }
  out += buf;
}

void append_time(std::string& out, uint64_t unix_ns) {
  time_t secs = static_cast<time_t>(unix_ns / 1'000'000'000ull);
  tm t;
  gmtime_r(&secs, &t);
  char buf[64];
  std::snprintf(buf, sizeof buf, "%04d-%02d-%02dT%02d:%02d:%02d.%03uZ", t.tm_year + 1900,
                t.tm_mon + 1, t.tm_mday, t.tm_hour, t.tm_min, t.tm_sec,
                static_cast<unsigned>((unix_ns / 1'000'000ull) % 1000));
  out += buf;
}

}  // namespace

const char* level_name(Level level) { return kLevelNames[static_cast<int>(level)]; }

bool parse_level(std::string_view text, Level& out) {
  for (int i = 0; i <= static_cast<int>(Level::Off); ++i) {
    if (text == kLevelNames[i]) {
      out = static_cast<Level>(i);
      return true;
    }
  }
  if (text == "warning") {
    out = Level::Warn;
    return true;
  }
  return false;
}

bool parse_format(std::string_view text, Format& out) {
  if (text == "text") {
    out = Format::Text;
    return true;
  }
  if (text == "json") {
    out = Format::Json;
    return true;
  }
  return false;
}

void configure(Level level, Format format) {
  detail::g_level = level;
  g_format = format;
}

Level level() { return detail::g_level; }

std::string format_line(Format format, Level level, std::string_view msg,
                        std::initializer_list<Field> fields, uint64_t unix_ns) {
  std::string out;
  out.reserve(128);
  const bool json = format == Format::Json;
  if (json) {
    out += "{\"ts\":\"";
    append_time(out, unix_ns);
    out += "\",\"level\":\"";
    out += kLevelNames[static_cast<int>(level)];
    out += "\",\"msg\":";
    append_json_string(out, msg);
    if (t_span.set) {
      out += ",\"trace_id\":\"";
      append_hex(out, t_span.trace_id, 16);
      out += "\",\"span_id\":\"";
      append_hex(out, t_span.span_id, 8);
      out += '"';
    }
    for (const auto& f : fields) {
      out += ',';
      append_json_string(out, f.key);
      out += ':';
      append_value(out, f, true);
    }
    out += "}\n";
  } else {
    append_time(out, unix_ns);
    out += ' ';
    out += kLevelText[static_cast<int>(level)];
    out += ' ';
    out += msg;
    for (const auto& f : fields) {
      out += ' ';
      out += f.key;
      out += '=';
      append_value(out, f, false);
    }
    if (t_span.set) {
      out += " trace_id=";
      append_hex(out, t_span.trace_id, 16);
      out += " span_id=";
      append_hex(out, t_span.span_id, 8);
    }
    out += '\n';
  }
  return out;
}

void write(Level level, std::string_view msg, std::initializer_list<Field> fields) {
  std::string line = format_line(g_format, level, msg, fields, unix_ns());
  // One write per line: atomic for pipes up to PIPE_BUF and in practice for
  // terminals and files, so threads do not interleave.
  const char* p = line.data();
  size_t left = line.size();
  while (left > 0) {
    ssize_t n = ::write(STDERR_FILENO, p, left);
    if (n <= 0) break;
    p += n;
    left -= static_cast<size_t>(n);
  }
}

bool span_current() { return t_span.set; }

ScopedLogSpan::ScopedLogSpan(const uint8_t trace_id[16], const uint8_t span_id[8]) {
  if (trace_id == nullptr || span_id == nullptr) {
    active_ = false;
    return;
  }
  static_assert(sizeof saved_ == sizeof(CurrentSpan));
  std::memcpy(saved_, &t_span, sizeof saved_);
  std::memcpy(t_span.trace_id, trace_id, 16);
  std::memcpy(t_span.span_id, span_id, 8);
  t_span.set = true;
}

ScopedLogSpan::~ScopedLogSpan() {
  if (active_) std::memcpy(&t_span, saved_, sizeof saved_);
}

}  // namespace wstrace::log
