// Per-address limits, node-wide: how many connections one client address
// may hold (--max-connections-per-ip) and how fast it may open them
// (--handshake-rate-per-ip, a token bucket). IPv6 addresses count by their
// /64 prefix (one host usually owns a whole /64); IPv4 by the address.
//
// Checked when a connection is accepted, before any TLS or HTTP work, from
// every worker thread: the table is split into shards, each with its own
// lock, so threads rarely wait for each other. An address with no open
// connection and a full bucket is forgotten, so memory follows the addresses
// that are active now.
#pragma once

#include <array>
#include <cstdint>
#include <mutex>
#include <unordered_map>

#include "util/token_bucket.h"

namespace wstrace::server {

class IpLimits {
 public:
  // 0 disables a limit.
  IpLimits(uint32_t max_connections, double handshakes_per_second)
      : max_connections_(max_connections), rate_(handshakes_per_second) {}

  bool enabled() const { return max_connections_ > 0 || rate_ > 0; }

  // The key of an address: `addr` holds 4 (AF_INET) or 16 (AF_INET6) bytes.
  struct Key {
    uint64_t hi = 0, lo = 0;
    bool operator==(const Key& o) const { return hi == o.hi && lo == o.lo; }
  };
  static Key key_of(const uint8_t* addr, int family);

  enum class Verdict : uint8_t { Admitted, TooManyConnections, TooFast };
  // A new connection from `key` at `now_ns`; counted when admitted (release
  // it when the connection ends).
  Verdict admit(const Key& key, uint64_t now_ns);
  void release(const Key& key);
  // Forgets addresses with no connection whose bucket is full again.
  void sweep(uint64_t now_ns);
  // Addresses tracked now (for tests and stats).
  size_t tracked() const;

 private:
  struct Hash {
    size_t operator()(const Key& k) const { return std::hash<uint64_t>{}(k.hi * 0x9e3779b97f4a7c15ull ^ k.lo); }
  };
  struct Entry {
    uint32_t connections = 0;
    TokenBucket handshakes;
  };
  struct Shard {
    mutable std::mutex mu;
    std::unordered_map<Key, Entry, Hash> entries;
  };
  Shard& shard(const Key& k) { return shards_[Hash{}(k) % shards_.size()]; }
  bool forgettable(const Entry& e, uint64_t now_ns);

  const uint32_t max_connections_;
  const double rate_;
  std::array<Shard, 16> shards_;
};

}  // namespace wstrace::server
