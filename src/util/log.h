// Logging: one line per event, human-readable text or JSON, written to stderr
// with a single write() so lines from different threads never interleave.
//
//   WS_LOG(Info, "listening", {"addr", addr}, {"threads", n});
//
// A line written while a span is current on this thread (see ScopedLogSpan)
// carries that span's trace_id and span_id.
#pragma once

#include <cstdint>
#include <initializer_list>
#include <string>
#include <string_view>

namespace wstrace::log {

enum class Level : uint8_t { Trace, Debug, Info, Warn, Error, Off };
enum class Format : uint8_t { Text, Json };

bool parse_level(std::string_view text, Level& out);
const char* level_name(Level level);  // "info", ...
bool parse_format(std::string_view text, Format& out);

void configure(Level level, Format format);
Level level();
inline bool enabled(Level l);

// One key=value of a log line.
struct Field {
  enum class Kind : uint8_t { Str, Int, Uint, Double, Bool };
  Field(std::string_view k, std::string_view v) : key(k), kind(Kind::Str), str(v) {}
  Field(std::string_view k, const char* v) : key(k), kind(Kind::Str), str(v) {}
  Field(std::string_view k, const std::string& v) : key(k), kind(Kind::Str), str(v) {}
  Field(std::string_view k, bool v) : key(k), kind(Kind::Bool), u(v ? 1 : 0) {}
  Field(std::string_view k, double v) : key(k), kind(Kind::Double), d(v) {}
  template <typename T>
    requires std::is_integral_v<T>
  Field(std::string_view k, T v) : key(k) {
    if constexpr (std::is_signed_v<T>) {
      kind = Kind::Int;
      i = v;
    } else {
      kind = Kind::Uint;
      u = v;
    }
  }
  std::string_view key;
  Kind kind;
  std::string_view str;
  union {
    int64_t i;
    uint64_t u = 0;
    double d;
  };
};

void write(Level level, std::string_view msg, std::initializer_list<Field> fields = {});

// Formats one line without writing it (used by tests).
std::string format_line(Format format, Level level, std::string_view msg,
                        std::initializer_list<Field> fields, uint64_t unix_ns);

// Whether a span is current for logging on this thread.
bool span_current();

// While alive, log lines from this thread carry the given trace and span id.
// Null ids: does nothing.
class ScopedLogSpan {
 public:
  ScopedLogSpan(const uint8_t trace_id[16], const uint8_t span_id[8]);
  ScopedLogSpan() : active_(false) {}
  ~ScopedLogSpan();
  ScopedLogSpan(const ScopedLogSpan&) = delete;
  ScopedLogSpan& operator=(const ScopedLogSpan&) = delete;

 private:
  unsigned char saved_[25];  // the previous span's ids and flag, restored at the end
  bool active_ = true;
};

namespace detail {
extern Level g_level;
}
inline bool enabled(Level l) { return l >= detail::g_level; }

}  // namespace wstrace::log

#define WS_LOG(lvl, msg, ...)                                                 \
  do {                                                                        \
    if (::wstrace::log::enabled(::wstrace::log::Level::lvl)) {                \
      ::wstrace::log::write(::wstrace::log::Level::lvl, msg, {__VA_ARGS__});  \
    }                                                                         \
  } while (0)
