// redis://[user:password@]host[:port][/db] — I/O-free parsing.
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

// nullopt with `error` set on a malformed URL. Percent-escapes in the user
// and password are decoded.
std::optional<RedisUrl> parse_redis_url(std::string_view url, std::string* error);

}  // namespace wstrace::cluster
