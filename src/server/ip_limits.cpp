#include "server/ip_limits.h"

#include <sys/socket.h>

#include <cstring>

namespace wstrace::server {

IpLimits::Key IpLimits::key_of(const uint8_t* addr, int family) {
  Key k;
  if (family == AF_INET6) {
    static const uint8_t kMapped[12] = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff};
    if (std::memcmp(addr, kMapped, 12) == 0) {
      // An IPv4 address seen through an IPv6 socket is that IPv4 address.
      uint32_t v4;
      std::memcpy(&v4, addr + 12, 4);
      k.lo = v4;
      return k;
    }
    std::memcpy(&k.hi, addr, 8);  // the /64 prefix; the host part is ignored
    k.lo = 1ull << 63;            // apart from every IPv4 key
    return k;
  }
  uint32_t v4;
  std::memcpy(&v4, addr, 4);
  k.lo = v4;
  return k;
}

bool IpLimits::forgettable(const Entry& e, uint64_t now_ns) {
  if (e.connections > 0) return false;
  return rate_ <= 0 || e.handshakes.full(rate_, rate_ < 1 ? 1 : rate_, now_ns);
}

void IpLimits::sweep(uint64_t now_ns) {
  for (auto& s : shards_) {
    std::lock_guard lock(s.mu);
    for (auto it = s.entries.begin(); it != s.entries.end();) {
      it = forgettable(it->second, now_ns) ? s.entries.erase(it) : std::next(it);
    }
  }
}

IpLimits::Verdict IpLimits::admit(const Key& key, uint64_t now_ns) {
  Shard& s = shard(key);
  std::lock_guard lock(s.mu);
  auto [it, fresh] = s.entries.try_emplace(key);
  Entry& e = it->second;
  const double burst = rate_ < 1 ? 1 : rate_;
  if (fresh) e.handshakes.reset(burst, now_ns);
  if (max_connections_ > 0 && e.connections >= max_connections_) return Verdict::TooManyConnections;
  if (rate_ > 0 && !e.handshakes.take(rate_, burst, now_ns)) {
    if (e.connections == 0 && fresh) s.entries.erase(it);
    return Verdict::TooFast;
  }
  ++e.connections;
  return Verdict::Admitted;
}

void IpLimits::release(const Key& key) {
  Shard& s = shard(key);
  std::lock_guard lock(s.mu);
  auto it = s.entries.find(key);
  if (it == s.entries.end()) return;
  if (it->second.connections > 0) --it->second.connections;
  // Forgotten once idle; with a rate limit only when its bucket is full
  // again (else a client could reset its bucket by closing).
  if (it->second.connections == 0 && rate_ <= 0) s.entries.erase(it);
}

size_t IpLimits::tracked() const {
  size_t n = 0;
  for (const auto& s : shards_) {
    std::lock_guard lock(s.mu);
    n += s.entries.size();
  }
  return n;
}

}  // namespace wstrace::server
