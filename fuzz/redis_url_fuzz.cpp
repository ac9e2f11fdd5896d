// libFuzzer target: parse_redis_url (--redis). A refusal always says why;
// what it accepts is a usable address, and the URL rebuilt from the parsed
// fields (credentials percent-escaped, IPv6 in brackets) parses to the same
// fields.
#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

#include "cluster/redis_url.h"
#include "fuzz_check.h"

using wstrace::cluster::parse_redis_url;
using wstrace::cluster::RedisUrl;

namespace {

std::string escape(std::string_view s) {
  static constexpr char kHex[] = "0123456789ABCDEF";
  std::string out;
  for (char c : s) {
    auto u = static_cast<unsigned char>(c);
    if ((u >= '0' && u <= '9') || (u >= 'a' && u <= 'z') || (u >= 'A' && u <= 'Z')) {
      out.push_back(c);
    } else {
      out.push_back('%');
      out.push_back(kHex[u >> 4]);
      out.push_back(kHex[u & 15]);
    }
  }
  return out;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string_view in(reinterpret_cast<const char*>(data), size);
  std::string error;
  auto u = parse_redis_url(in, &error);
  if (!u) {
    FUZZ_CHECK(!error.empty());
    return 0;
  }
  FUZZ_CHECK(!u->host.empty());
  FUZZ_CHECK(u->port != 0);
  FUZZ_CHECK(u->db >= 0);
  for (char c : u->host) {
    auto b = static_cast<unsigned char>(c);
    FUZZ_CHECK(b > ' ' && b != 0x7F);
  }
  FUZZ_CHECK(u->host.find('/') == std::string::npos && u->host.find('@') == std::string::npos);

  std::string url = "redis://";
  if (!u->user.empty() || !u->password.empty()) {
    url += escape(u->user) + ":" + escape(u->password) + "@";
  }
  const bool bracket = u->host.find(':') != std::string::npos || u->host.front() == '[';
  url += bracket ? "[" + u->host + "]" : u->host;
  url += ":" + std::to_string(u->port) + "/" + std::to_string(u->db);
  std::string again_error;
  auto again = parse_redis_url(url, &again_error);
  FUZZ_CHECK(again.has_value());
  FUZZ_CHECK(again->host == u->host);
  FUZZ_CHECK(again->port == u->port);
  FUZZ_CHECK(again->user == u->user);
  FUZZ_CHECK(again->password == u->password);
  FUZZ_CHECK(again->db == u->db);
  return 0;
}
