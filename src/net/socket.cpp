#include "net/socket.h"

#include <arpa/inet.h>
#include <fcntl.h>
#include <netdb.h>
#include <netinet/tcp.h>
#include <sys/resource.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

namespace wstrace::net {

std::optional<Address> Address::parse(std::string_view text, std::string* error) {
  std::string host;
  std::string port;
  if (text.find('\0') != std::string_view::npos) {
    if (error) *error = "address contains a NUL byte";
    return std::nullopt;
  }
  bool bracketed = false;
  if (!text.empty() && text.front() == '[') {
    size_t close = text.find(']');
    if (close == std::string_view::npos || close + 1 >= text.size() || text[close + 1] != ':' ||
        close == 1) {
      if (error) *error = "expected [ipv6]:port";
      return std::nullopt;
    }
    host = std::string(text.substr(1, close - 1));
    port = std::string(text.substr(close + 2));
    bracketed = true;
  } else {
    size_t colon = text.rfind(':');
    if (colon == std::string_view::npos) {
      if (error) *error = "expected host:port";
      return std::nullopt;
    }
    host = std::string(text.substr(0, colon));
    port = std::string(text.substr(colon + 1));
  }
  if (port.empty() || port.size() > 5 || port.find_first_not_of("0123456789") != std::string::npos ||
      std::stoul(port) > 65535) {
    if (error) *error = "bad port '" + port + "'";
    return std::nullopt;
  }
  if (host.empty() || host == "*") host = "0.0.0.0";

  Address out;
  uint16_t p = static_cast<uint16_t>(std::stoul(port));
  auto* v4 = reinterpret_cast<sockaddr_in*>(&out.storage);
  auto* v6 = reinterpret_cast<sockaddr_in6*>(&out.storage);
  if (bracketed) {
    // Brackets hold an IPv6 literal and nothing else (RFC 3986 §3.2.2).
    if (inet_pton(AF_INET6, host.c_str(), &v6->sin6_addr) != 1) {
      if (error) *error = "'" + host + "' in brackets is not an IPv6 address";
      return std::nullopt;
    }
    v6->sin6_family = AF_INET6;
    v6->sin6_port = htons(p);
    out.len = sizeof(sockaddr_in6);
    return out;
  }
  if (inet_pton(AF_INET, host.c_str(), &v4->sin_addr) == 1) {
    v4->sin_family = AF_INET;
    v4->sin_port = htons(p);
    out.len = sizeof(sockaddr_in);
    return out;
  }
  if (inet_pton(AF_INET6, host.c_str(), &v6->sin6_addr) == 1) {
    v6->sin6_family = AF_INET6;
    v6->sin6_port = htons(p);
    out.len = sizeof(sockaddr_in6);
    return out;
  }
  addrinfo hints{};
  hints.ai_socktype = SOCK_STREAM;
  addrinfo* res = nullptr;
  int rc = getaddrinfo(host.c_str(), port.c_str(), &hints, &res);
  if (rc != 0 || res == nullptr) {
    if (error) *error = "cannot resolve '" + host + "': " + gai_strerror(rc);
    return std::nullopt;
  }
  out = from(res->ai_addr, res->ai_addrlen);
  freeaddrinfo(res);
  return out;
}

Address Address::from(const sockaddr* sa, socklen_t len) {
  Address out;
  if (len > sizeof(out.storage)) len = sizeof(out.storage);
  std::memcpy(&out.storage, sa, len);
  out.len = len;
  return out;
}

uint16_t Address::port() const {
  if (storage.ss_family == AF_INET) {
    return ntohs(reinterpret_cast<const sockaddr_in*>(&storage)->sin_port);
  }
  if (storage.ss_family == AF_INET6) {
    return ntohs(reinterpret_cast<const sockaddr_in6*>(&storage)->sin6_port);
  }
  return 0;
}

std::string Address::host() const {
  char buf[INET6_ADDRSTRLEN] = {0};
  if (storage.ss_family == AF_INET) {
    inet_ntop(AF_INET, &reinterpret_cast<const sockaddr_in*>(&storage)->sin_addr, buf, sizeof buf);
  } else if (storage.ss_family == AF_INET6) {
    inet_ntop(AF_INET6, &reinterpret_cast<const sockaddr_in6*>(&storage)->sin6_addr, buf,
              sizeof buf);
  }
  return buf;
}

std::string Address::to_string() const {
  std::string out;
  if (storage.ss_family == AF_INET6) out.push_back('[');
  out.append(host());
  if (storage.ss_family == AF_INET6) out.push_back(']');
  out.push_back(':');
  out.append(std::to_string(port()));
  return out;
}

int listen_on(const Address& addr, bool reuse_port, int backlog) {
  int fd = ::socket(addr.storage.ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  if (fd < 0) return -errno;
  int one = 1;
  setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
  if (reuse_port) setsockopt(fd, SOL_SOCKET, SO_REUSEPORT, &one, sizeof one);
  if (::bind(fd, addr.sa(), addr.len) < 0 || ::listen(fd, backlog) < 0) {
    int err = errno;
    ::close(fd);
    return -err;
  }
  return fd;
}

std::optional<Address> local_address(int fd) {
  sockaddr_storage ss{};
  socklen_t len = sizeof ss;
  if (getsockname(fd, reinterpret_cast<sockaddr*>(&ss), &len) < 0) return std::nullopt;
  return Address::from(reinterpret_cast<sockaddr*>(&ss), len);
}

void tune_accepted(int fd, uint32_t send_buffer) {
  int one = 1;
  setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
  if (send_buffer > 0) {
    int n = static_cast<int>(send_buffer);
    setsockopt(fd, SOL_SOCKET, SO_SNDBUF, &n, sizeof n);
  }
}

uint64_t raise_fd_limit() {
  rlimit rl{};
  if (getrlimit(RLIMIT_NOFILE, &rl) != 0) return 0;
  if (rl.rlim_cur < rl.rlim_max) {
    rl.rlim_cur = rl.rlim_max;
    setrlimit(RLIMIT_NOFILE, &rl);
    getrlimit(RLIMIT_NOFILE, &rl);
  }
  return rl.rlim_cur;
}

}  // namespace wstrace::net
