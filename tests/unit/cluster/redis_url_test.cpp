#include "cluster/redis_url.h"

#include <gtest/gtest.h>

#include <string>

namespace wstrace::cluster {
namespace {

RedisUrl ok(std::string_view url) {
  std::string error;
  auto u = parse_redis_url(url, &error);
  EXPECT_TRUE(u.has_value()) << url << ": " << error;
  return u.value_or(RedisUrl{});
}

// The error text for a URL that must be refused.
std::string refused(std::string_view url) {
  std::string error;
  auto u = parse_redis_url(url, &error);
  EXPECT_FALSE(u.has_value()) << url << " was accepted (host " << (u ? u->host : "") << ")";
  EXPECT_FALSE(error.empty()) << url;
  return error;
}

TEST(RedisUrl, HostAndDefaultPort) {
  auto u = ok("redis://127.0.0.1");
  EXPECT_EQ(u.host, "127.0.0.1");
  EXPECT_EQ(u.port, 6379);
  EXPECT_EQ(u.user, "");
  EXPECT_EQ(u.password, "");
  EXPECT_EQ(u.db, 0);
  EXPECT_EQ(ok("redis://redis.internal").host, "redis.internal");
}

TEST(RedisUrl, Port) {
  auto u = ok("redis://localhost:6380");
  EXPECT_EQ(u.host, "localhost");
  EXPECT_EQ(u.port, 6380);
  EXPECT_EQ(ok("redis://h:1").port, 1);
  EXPECT_EQ(ok("redis://h:65535").port, 65535);
}

TEST(RedisUrl, UserAndPassword) {
  auto u = ok("redis://alice:s3cret@h:7000");
  EXPECT_EQ(u.user, "alice");
  EXPECT_EQ(u.password, "s3cret");
  EXPECT_EQ(u.host, "h");
  EXPECT_EQ(u.port, 7000);
  // Only the first ':' separates: the password may contain more.
  u = ok("redis://alice:a:b@h");
  EXPECT_EQ(u.user, "alice");
  EXPECT_EQ(u.password, "a:b");
}

TEST(RedisUrl, PasswordOnly) {
  auto u = ok("redis://:s3cret@h");
  EXPECT_EQ(u.user, "");
  EXPECT_EQ(u.password, "s3cret");
  // Without ':' the credentials are the password (as redis-cli reads them).
  u = ok("redis://s3cret@h");
  EXPECT_EQ(u.user, "");
  EXPECT_EQ(u.password, "s3cret");
  // Empty credentials: no AUTH.
  u = ok("redis://@h");
  EXPECT_EQ(u.password, "");
}

TEST(RedisUrl, PercentEscapesInCredentials) {
  auto u = ok("redis://us%40er:p%3Aa%2Fss%20word%25@h");
  EXPECT_EQ(u.user, "us@er");
  EXPECT_EQ(u.password, "p:a/ss word%");
  // A raw '@' in the password: the last '@' ends the credentials.
  u = ok("redis://:p@ss@h");
  EXPECT_EQ(u.password, "p@ss");
  EXPECT_EQ(u.host, "h");
  u = ok("redis://:%00%ff@h");
  EXPECT_EQ(u.password, std::string("\0\xff", 2));
}

TEST(RedisUrl, BadPercentEscapes) {
  for (const char* url : {"redis://:%@h", "redis://:%4@h", "redis://:%zz@h", "redis://:%-1@h",
                          "redis://:%+1@h", "redis://:% 1@h", "redis://u%g0:p@h"}) {
    EXPECT_EQ(refused(url), "bad percent-escape in the credentials") << url;
  }
}

TEST(RedisUrl, Database) {
  auto u = ok("redis://h:6379/3");
  EXPECT_EQ(u.db, 3);
  EXPECT_EQ(u.port, 6379);
  EXPECT_EQ(ok("redis://h/15").db, 15);
  EXPECT_EQ(ok("redis://h/").db, 0);
  EXPECT_EQ(ok("redis://u:p@h:1/2").db, 2);
  for (const char* url :
       {"redis://h/x", "redis://h/-1", "redis://h/1x", "redis://h/1/2", "redis://h/99999999999"}) {
    EXPECT_EQ(refused(url), "the database after '/' must be a number") << url;
  }
}

TEST(RedisUrl, Ipv6Literal) {
  auto u = ok("redis://[::1]:6380");
  EXPECT_EQ(u.host, "::1");
  EXPECT_EQ(u.port, 6380);
  u = ok("redis://u:p@[2001:db8::7]/1");
  EXPECT_EQ(u.host, "2001:db8::7");
  EXPECT_EQ(u.port, 6379);
  EXPECT_EQ(u.db, 1);
  EXPECT_EQ(refused("redis://[::1"), "unterminated [ipv6] host");
  EXPECT_EQ(refused("redis://[::1]6379"), "expected :port after ]");
  EXPECT_EQ(refused("redis://[]:6379"), "missing host");
  // Without brackets an IPv6 address cannot be told from host:port.
  const std::string colons =
      "more than one ':' after the host (an IPv6 address goes in brackets: redis://[::1]:6379)";
  EXPECT_EQ(refused("redis://::1"), colons);
  EXPECT_EQ(refused("redis://fe80::1:6379"), colons);
  EXPECT_EQ(refused("redis://h:6379:"), colons);
}

TEST(RedisUrl, BadPort) {
  for (const char* url :
       {"redis://h:0", "redis://h:65536", "redis://h:99999999999", "redis://h:-1", "redis://h:+1",
        "redis://h:http", "redis://h:63 79", "redis://h:", "redis://[::1]:", "redis://[::1]:x"}) {
    EXPECT_EQ(refused(url), "the port must be a number between 1 and 65535") << url;
  }
}

TEST(RedisUrl, MissingOrBadHost) {
  for (const char* url :
       {"redis://", "redis://:6379", "redis://u:p@", "redis://u:p@:1", "redis:///0"}) {
    EXPECT_EQ(refused(url), "missing host") << url;
  }
  EXPECT_EQ(refused("redis://ho st"), "the host has a space or a control character");
  EXPECT_EQ(refused("redis://h\t:1"), "the host has a space or a control character");
  EXPECT_EQ(refused(std::string_view("redis://h\0x", 11)),
            "the host has a space or a control character");
  EXPECT_EQ(refused("redis://[:: 1]"), "the host has a space or a control character");
}

TEST(RedisUrl, Schemes) {
  EXPECT_EQ(refused("rediss://h:6380"), "TLS (rediss://) is not supported; use redis://");
  const std::string expected = "expected redis://[user:password@]host[:port][/db]";
  for (const char* url : {"", "h:6379", "redis:/h", "redis:h", "http://h", "unix:///tmp/redis.sock",
                          "REDIS://h", " redis://h", "rediss:/h"}) {
    EXPECT_EQ(refused(url), expected) << url;
  }
}

TEST(RedisUrl, ErrorMayBeNull) {
  EXPECT_FALSE(parse_redis_url("http://h", nullptr));
  EXPECT_TRUE(parse_redis_url("redis://h", nullptr));
}

}  // namespace
}  // namespace wstrace::cluster
