// HTTP/1.1 request heads: an I/O-free parser with hard limits. The parsed
// request holds views into the caller's buffer.
#pragma once

#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

namespace wstrace::http {

struct Header {
  std::string_view name;
  std::string_view value;
};

struct Request {
  static constexpr size_t kMaxHeaders = 64;

  std::string_view method;
  std::string_view target;  // as sent: path plus optional ?query
  std::string_view path;
  std::string_view query;   // without '?'
  int version_major = 1;
  int version_minor = 1;
  Header headers[kMaxHeaders];
  size_t header_count = 0;

  // First header with this name (case-insensitive).
  std::optional<std::string_view> header(std::string_view name) const;
  // All values of a header joined with ", " (RFC 9110 §5.3) into `out`.
  bool header_joined(std::string_view name, std::string& out) const;
  // Whether a comma-separated header contains `token` (case-insensitive).
  bool header_has_token(std::string_view name, std::string_view token) const;
};

enum class ParseStatus : uint8_t {
  Complete,
  NeedMore,
  BadRequest,       // 400
  HeadersTooLarge,  // 431
};

// Parses the request head at the start of `buf`. On Complete, `*head_size`
// is the number of bytes up to and including the blank line. A head longer
// than `max_head` bytes (or with more than kMaxHeaders headers) is
// HeadersTooLarge, decided as soon as that many bytes have arrived.
ParseStatus parse_request(std::string_view buf, size_t max_head, Request& req, size_t* head_size);

// Case-insensitive ASCII comparison.
bool iequals(std::string_view a, std::string_view b);

// Value of `name` in an application/x-www-form-urlencoded query string,
// percent-decoded. nullopt when absent or malformed.
std::optional<std::string> query_param(std::string_view query, std::string_view name);

}  // namespace wstrace::http
