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
thread_local char t_span[50] = {0};

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
    if (t_span[0] != 0) {
      out += ",\"trace_id\":\"";
      out.append(t_span, 32);
      out += "\",\"span_id\":\"";
      out.append(t_span + 33, 16);
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
    if (t_span[0] != 0) {
      out += " trace_id=";
      out.append(t_span, 32);
      out += " span_id=";
      out.append(t_span + 33, 16);
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

bool span_current() { return t_span[0] != 0; }

ScopedLogSpan::ScopedLogSpan(const uint8_t trace_id[16], const uint8_t span_id[8]) {
  if (trace_id == nullptr || span_id == nullptr) {
    active_ = false;
    return;
  }
  std::memcpy(saved_, t_span, sizeof saved_);
  static constexpr char kHex[] = "0123456789abcdef";
  for (int i = 0; i < 16; ++i) {
    t_span[2 * i] = kHex[trace_id[i] >> 4];
    t_span[2 * i + 1] = kHex[trace_id[i] & 15];
  }
  t_span[32] = ' ';
  for (int i = 0; i < 8; ++i) {
    t_span[33 + 2 * i] = kHex[span_id[i] >> 4];
    t_span[34 + 2 * i] = kHex[span_id[i] & 15];
  }
  t_span[49] = 0;
}

ScopedLogSpan::~ScopedLogSpan() {
  if (active_) std::memcpy(t_span, saved_, sizeof saved_);
}

}  // namespace wstrace::log
