#include "cluster/redis_url.h"

#include <charconv>

namespace wstrace::cluster {
namespace {

int hex_digit(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  return -1;
}

// %XX is exactly two hex digits (from_chars would also take "-1").
bool percent_decode(std::string_view in, std::string& out) {
  out.clear();
  for (size_t i = 0; i < in.size(); ++i) {
    if (in[i] != '%') {
      out.push_back(in[i]);
      continue;
    }
    if (i + 2 >= in.size()) return false;
    int hi = hex_digit(in[i + 1]), lo = hex_digit(in[i + 2]);
    if (hi < 0 || lo < 0) return false;
    out.push_back(static_cast<char>(hi * 16 + lo));
    i += 2;
  }
  return true;
}

bool plain_host(std::string_view host) {
  for (char c : host) {
    auto u = static_cast<unsigned char>(c);
    if (u <= ' ' || u == 0x7F) return false;
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
  bool has_port = false;  // a ':' after the host, so a port must follow
  if (hostport.front() == '[') {
    size_t close = hostport.find(']');
    if (close == std::string_view::npos) return fail("unterminated [ipv6] host");
    host = hostport.substr(1, close - 1);
    if (close + 1 < hostport.size()) {
      if (hostport[close + 1] != ':') return fail("expected :port after ]");
      port = hostport.substr(close + 2);
      has_port = true;
    }
  } else {
    size_t colon = hostport.rfind(':');
    if (colon != std::string_view::npos) {
      host = hostport.substr(0, colon);
      port = hostport.substr(colon + 1);
      has_port = true;
      if (host.find(':') != std::string_view::npos) {
        return fail(
            "more than one ':' after the host (an IPv6 address goes in brackets: "
            "redis://[::1]:6379)");
      }
    }
  }
  if (host.empty()) return fail("missing host");
  if (!plain_host(host)) return fail("the host has a space or a control character");
  out.host = std::string(host);
  if (has_port) {
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
