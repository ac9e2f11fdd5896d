// Socket helpers: address parsing and formatting, listening sockets, and the
// per-socket options every connection gets.
#pragma once

#include <netinet/in.h>
#include <sys/socket.h>

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

namespace wstrace::net {

// An IPv4 or IPv6 socket address.
struct Address {
  sockaddr_storage storage{};
  socklen_t len = 0;

  // "host:port", "[v6]:port", ":port" (all interfaces). Host names are
  // resolved (first result). Returns nullopt with `error` set on failure.
  static std::optional<Address> parse(std::string_view text, std::string* error);
  static Address from(const sockaddr* sa, socklen_t len);

  uint16_t port() const;
  std::string host() const;      // "127.0.0.1", "::1"
  std::string to_string() const; // "127.0.0.1:8080", "[::1]:8080"
  const sockaddr* sa() const { return reinterpret_cast<const sockaddr*>(&storage); }
};

// A non-blocking listening socket. `reuse_port` lets several threads each
// bind their own socket to the same address (the kernel spreads connections).
// Returns the fd or -errno.
int listen_on(const Address& addr, bool reuse_port, int backlog = 4096);

// The address a socket is bound to (to learn the port after binding port 0).
std::optional<Address> local_address(int fd);

// Options every accepted connection gets: TCP_NODELAY (frames are already
// corked in user space; Nagle would only add latency) and, when
// `send_buffer` > 0, SO_SNDBUF = send_buffer (the kernel doubles it for its
// bookkeeping and stops autotuning it).
void tune_accepted(int fd, uint32_t send_buffer = 0);

// Raises RLIMIT_NOFILE's soft limit to the hard limit; returns the new soft limit.
uint64_t raise_fd_limit();

}  // namespace wstrace::net
