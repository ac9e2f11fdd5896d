#include <gtest/gtest.h>
#include <netinet/in.h>

#include <string>

#include "net/socket.h"

namespace wstrace::net {
namespace {

std::optional<Address> parse(std::string_view s, std::string* err = nullptr) {
  std::string e;
  auto a = Address::parse(s, &e);
  if (err) *err = e;
  return a;
}

TEST(Address, Ipv4) {
  auto a = parse("127.0.0.1:8080");
  ASSERT_TRUE(a);
  EXPECT_EQ(a->storage.ss_family, AF_INET);
  EXPECT_EQ(a->len, sizeof(sockaddr_in));
  EXPECT_EQ(a->port(), 8080);
  EXPECT_EQ(a->host(), "127.0.0.1");
  EXPECT_EQ(a->to_string(), "127.0.0.1:8080");
}

TEST(Address, AllInterfaces) {
  for (const char* s : {":9000", "*:9000", "0.0.0.0:9000"}) {
    auto a = parse(s);
    ASSERT_TRUE(a) << s;
    EXPECT_EQ(a->to_string(), "0.0.0.0:9000") << s;
  }
  EXPECT_EQ(parse(":0")->port(), 0);  // port 0: the kernel picks one
}

TEST(Address, Ipv6) {
  auto a = parse("[::1]:443");
  ASSERT_TRUE(a);
  EXPECT_EQ(a->storage.ss_family, AF_INET6);
  EXPECT_EQ(a->len, sizeof(sockaddr_in6));
  EXPECT_EQ(a->port(), 443);
  EXPECT_EQ(a->host(), "::1");
  EXPECT_EQ(a->to_string(), "[::1]:443");
  auto any = parse("[::]:65535");
  ASSERT_TRUE(any);
  EXPECT_EQ(any->to_string(), "[::]:65535");
  auto full = parse("[2001:db8::ff00:42:8329]:1");
  ASSERT_TRUE(full);
  EXPECT_EQ(full->host(), "2001:db8::ff00:42:8329");
}

TEST(Address, Localhost) {
  auto a = parse("localhost:1234");
  ASSERT_TRUE(a);
  EXPECT_EQ(a->port(), 1234);
  EXPECT_TRUE(a->host() == "127.0.0.1" || a->host() == "::1") << a->host();
}

TEST(Address, Errors) {
  for (const char* s : {"", "8080", "127.0.0.1", "127.0.0.1:", "127.0.0.1:http", "1.2.3.4:65536",
                        "1.2.3.4:999999", "1.2.3.4:-1", "1.2.3.4:+80", "1.2.3.4: 80", "[::1]",
                        "[::1]80", "[::1", "[::1]:", "[::1]:x", "[]:"}) {
    std::string err;
    EXPECT_FALSE(parse(s, &err)) << s;
    EXPECT_FALSE(err.empty()) << s;
  }
  // A name that cannot resolve (the .invalid TLD never does, RFC 6761).
  std::string err;
  EXPECT_FALSE(parse("no-such-host.invalid:80", &err));
  EXPECT_NE(err.find("no-such-host.invalid"), std::string::npos) << err;
  // A null error pointer is allowed.
  EXPECT_FALSE(Address::parse("bad", nullptr));
}

TEST(Address, FromSockaddr) {
  auto a = parse("10.1.2.3:77");
  ASSERT_TRUE(a);
  Address b = Address::from(a->sa(), a->len);
  EXPECT_EQ(b.to_string(), "10.1.2.3:77");
  Address empty;
  EXPECT_EQ(empty.port(), 0);
  EXPECT_EQ(empty.host(), "");
}

}  // namespace
}  // namespace wstrace::net
