// IpLimits: connections per address, the handshake rate as a token bucket,
// IPv6 counted per /64, IPv4-mapped addresses as IPv4, forgetting idle ones.
#include "server/ip_limits.h"

#include <arpa/inet.h>
#include <gtest/gtest.h>
#include <sys/socket.h>

namespace wstrace::server {
namespace {

constexpr uint64_t kSecond = 1'000'000'000ull;

IpLimits::Key v4(const char* text) {
  uint8_t a[4];
  inet_pton(AF_INET, text, a);
  return IpLimits::key_of(a, AF_INET);
}
IpLimits::Key v6(const char* text) {
  uint8_t a[16];
  inet_pton(AF_INET6, text, a);
  return IpLimits::key_of(a, AF_INET6);
}

TEST(IpLimits, ConnectionsPerAddress) {
  IpLimits l(2, 0);
  EXPECT_TRUE(l.enabled());
  EXPECT_EQ(l.admit(v4("10.0.0.1"), 0), IpLimits::Verdict::Admitted);
  EXPECT_EQ(l.admit(v4("10.0.0.1"), 0), IpLimits::Verdict::Admitted);
  EXPECT_EQ(l.admit(v4("10.0.0.1"), 0), IpLimits::Verdict::TooManyConnections);
  EXPECT_EQ(l.admit(v4("10.0.0.2"), 0), IpLimits::Verdict::Admitted);
  l.release(v4("10.0.0.1"));
  EXPECT_EQ(l.admit(v4("10.0.0.1"), 0), IpLimits::Verdict::Admitted);
  l.release(v4("10.0.0.1"));
  l.release(v4("10.0.0.1"));
  l.release(v4("10.0.0.2"));
  EXPECT_EQ(l.tracked(), 0u);  // nothing kept for idle addresses
}

TEST(IpLimits, Ipv6CountsPerSlash64AndMappedIpv4AsIpv4) {
  IpLimits l(1, 0);
  EXPECT_EQ(l.admit(v6("2001:db8:1:2::1"), 0), IpLimits::Verdict::Admitted);
  EXPECT_EQ(l.admit(v6("2001:db8:1:2:ffff::9"), 0), IpLimits::Verdict::TooManyConnections);
  EXPECT_EQ(l.admit(v6("2001:db8:1:3::1"), 0), IpLimits::Verdict::Admitted);
  EXPECT_EQ(l.admit(v4("192.0.2.7"), 0), IpLimits::Verdict::Admitted);
  EXPECT_EQ(l.admit(v6("::ffff:192.0.2.7"), 0), IpLimits::Verdict::TooManyConnections);
  EXPECT_FALSE(v6("::1") == v4("0.0.0.1"));
}

TEST(IpLimits, HandshakeRateIsATokenBucket) {
  IpLimits l(0, 5);
  const auto k = v4("10.0.0.9");
  for (int i = 0; i < 5; ++i) {
    EXPECT_EQ(l.admit(k, 0), IpLimits::Verdict::Admitted);
    l.release(k);
  }
  EXPECT_EQ(l.admit(k, 0), IpLimits::Verdict::TooFast);
  EXPECT_EQ(l.admit(k, kSecond / 5), IpLimits::Verdict::Admitted);  // one more after 200 ms
  l.release(k);
  // Closing does not reset the bucket; the sweep forgets it once full again.
  EXPECT_EQ(l.tracked(), 1u);
  l.sweep(kSecond / 5);
  EXPECT_EQ(l.tracked(), 1u);
  l.sweep(5 * kSecond);
  EXPECT_EQ(l.tracked(), 0u);
}

TEST(IpLimits, DisabledLimitsAdmitEverything) {
  IpLimits l(0, 0);
  EXPECT_FALSE(l.enabled());
  for (int i = 0; i < 1000; ++i) EXPECT_EQ(l.admit(v4("10.0.0.1"), 0), IpLimits::Verdict::Admitted);
}

}  // namespace
}  // namespace wstrace::server
