#include "cluster/redis_url.h"

#include <charconv>

namespace wstrace::cluster {
namespace {

bool percent_decode(std::string_view in, std::string& out) {
  out.clear();
  for (size_t i = 0; i < in.size(); ++i) {
    if (in[i] != '%') {
      out.push_back(in[i]);
      continue;
    }
    if (i + 2 >= in.size()) return false;
    int v = 0;
    auto r = std::from_chars(in.data() + i + 1, in.data() + i + 3, v, 16);
    if (r.ec != std::errc() || r.ptr != in.data() + i + 3) return false;
    out.push_back(static_cast<char>(v));
    i += 2;
  }
  return true;
}

}  // namespace

std::optional<RedisUrl> parse_redis_url(std::string_view url, std::string* error) {
  auto fail = [&](const char* why) -> std::optional<RedisUrl> {
    if (error) *error = why;
    return std::nullopt;
  };
  constexpr std::string_view kScheme = "redis://";
  if (url.substr(0, kScheme.size()) != kScheme) {
    if (url.substr(0, 9) == "rediss://") return fail("TLS (rediss://) is not supported; use redis://");
    return fail("expected redis://[user:password@]host[:port][/db]");
  }
  std::string_view rest = url.substr(kScheme.size());
  RedisUrl out;
  size_t at = rest.rfind('@');
  if (at != std::string_view::npos) {
    std::string_view cred = rest.substr(0, at);
    rest = rest.substr(at + 1);
    size_t colon = cred.find(':');
    std::string_view user = colon == std::string_view::npos ? std::string_view{} : cred.substr(0, colon);
    std::string_view pass = colon == std::string_view::npos ? cred : cred.substr(colon + 1);
    if (!percent_decode(user, out.user) || !percent_decode(pass, out.password)) {
      return fail("bad percent-escape in the credentials");
    }
  }
  size_t slash = rest.find('/');
  std::string_view hostport = rest.substr(0, slash);
  if (slash != std::string_view::npos) {
    std::string_view db = rest.substr(slash + 1);
    if (!db.empty()) {
      auto r = std::from_chars(db.data(), db.data() + db.size(), out.db);
      if (r.ec != std::errc() || r.ptr != db.data() + db.size() || out.db < 0 || out.db > 1000000) {
        return fail("the database after '/' must be a number");
      }
    }
  }
  if (hostport.empty()) return fail("missing host");
  std::string_view host = hostport;
  std::string_view port;
  if (hostport.front() == '[') {
    size_t close = hostport.find(']');
    if (close == std::string_view::npos) return fail("unterminated [ipv6] host");
    host = hostport.substr(1, close - 1);
    if (close + 1 < hostport.size()) {
      if (hostport[close + 1] != ':') return fail("expected :port after ]");
      port = hostport.substr(close + 2);
    }
  } else {
    size_t colon = hostport.rfind(':');
    if (colon != std::string_view::npos) {
      host = hostport.substr(0, colon);
      port = hostport.substr(colon + 1);
    }
  }
  if (host.empty()) return fail("missing host");
  out.host = std::string(host);
  if (!port.empty()) {
    unsigned p = 0;
    auto r = std::from_chars(port.data(), port.data() + port.size(), p);
    if (r.ec != std::errc() || r.ptr != port.data() + port.size() || p == 0 || p > 65535) {
      return fail("the port must be a number between 1 and 65535");
    }
    out.port = static_cast<uint16_t>(p);
  }
  return out;
}

}  // namespace wstrace::cluster
