#include "net/listener.h"

#include <fcntl.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

#include "util/log.h"

namespace wstrace::net {
namespace {
constexpr int kAcceptBatch = 256;
constexpr uint64_t kPauseNs = 100'000'000;
constexpr char kBusy[] =
    "HTTP/1.1 503 Service Unavailable\r\nConnection: close\r\nContent-Length: 31\r\n"
    "Content-Type: text/plain\r\n\r\nserver is out of file handles\r\n";

int open_reserve() { return ::open("/dev/null", O_RDONLY | O_CLOEXEC); }
}  // namespace

Listener::Listener(EventLoop& loop, int fd, Callbacks callbacks, bool shared)
    : loop_(loop),
      fd_(fd),
      reserve_fd_(open_reserve()),
      cb_(std::move(callbacks)),
      events_(EPOLLIN | (shared ? uint32_t{EPOLLEXCLUSIVE} : 0u)) {
  loop_.add(fd_, events_, this);
}

Listener::~Listener() {
  close();
  if (reserve_fd_ >= 0) ::close(reserve_fd_);
}

void Listener::close() {
  if (fd_ < 0) return;
  if (!paused_) loop_.remove(fd_);
  ::close(fd_);
  fd_ = -1;
}

void Listener::on_io(uint32_t) {
  for (int i = 0; i < kAcceptBatch && fd_ >= 0; ++i) {
    sockaddr_storage ss;
    socklen_t len = sizeof ss;
    int fd = ::accept4(fd_, reinterpret_cast<sockaddr*>(&ss), &len, SOCK_NONBLOCK | SOCK_CLOEXEC);
    if (fd >= 0) {
      cb_.on_accept(fd, Address::from(reinterpret_cast<sockaddr*>(&ss), len));
      continue;
    }
    int err = errno;
    if (err == EAGAIN || err == EINTR) return;
    if (err == EMFILE || err == ENFILE) {
      // accept() fails with EMFILE whether or not a client waits: only a
      // client actually turned away counts, then look for the next.
      if (!reject_one(err)) return;
      continue;
    }
    // ECONNABORTED and friends concern one client only: try the next.
    if (err == ECONNABORTED || err == EPROTO || err == EPERM) continue;
    WS_LOG(Warn, "accept failed", {"errno", err}, {"error", strerror(err)});
    pause();
    return;
  }
}

bool Listener::reject_one(int err) {
  if (reserve_fd_ < 0) {
    // No spare descriptor to drain the backlog with: stop polling for a moment
    // instead of spinning on a listener that stays readable.
    pause();
    return false;
  }
  ::close(reserve_fd_);
  reserve_fd_ = -1;
  int fd = ::accept4(fd_, nullptr, nullptr, SOCK_NONBLOCK | SOCK_CLOEXEC);
  int accept_err = errno;
  if (fd >= 0) {
    [[maybe_unused]] ssize_t n = ::send(fd, kBusy, sizeof kBusy - 1, MSG_NOSIGNAL);
    ::close(fd);
  }
  reserve_fd_ = open_reserve();
  if (fd >= 0) {
    if (cb_.on_reject) cb_.on_reject(err);
    return true;
  }
  if (accept_err == EAGAIN || accept_err == EINTR) return false;  // nobody was waiting
  // Still out of descriptors (another thread took the freed one): wait a bit.
  pause();
  return false;
}

void Listener::pause() {
  if (paused_ || fd_ < 0) return;
  paused_ = true;
  loop_.remove(fd_);
  loop_.add_timer(kPauseNs, 0, [this] {
    paused_ = false;
    if (reserve_fd_ < 0) reserve_fd_ = open_reserve();
    if (fd_ >= 0) loop_.add(fd_, events_, this);
  });
}

}  // namespace wstrace::net
