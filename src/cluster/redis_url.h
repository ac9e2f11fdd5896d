// redis://[user:password@]host[:port][/db] — I/O-free parsing.
//
// - An IPv6 address goes in brackets: redis://[::1]:6379.
// - Credentials without ':' are a password alone (as redis-cli -u reads them):
//   redis://secret@host and redis://:secret@host are the same.
// - The port defaults to 6379; a ':' must be followed by one (1..65535).
// - /db is checked (a number) and kept, but Pub/Sub ignores databases.
// - rediss:// (TLS) is refused with an error that says so.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

namespace wstrace::cluster {

struct RedisUrl {
  std::string host;
  uint16_t port = 6379;
  std::string user;      // empty: AUTH with the password only (or no AUTH)
  std::string password;  // empty: no AUTH
  int db = 0;
};

// nullopt with `error` set to a sentence saying what is wrong. Percent-escapes
// (%XX, two hex digits) in the user and password are decoded.
std::optional<RedisUrl> parse_redis_url(std::string_view url, std::string* error);

}  // namespace wstrace::cluster
