// A listening socket on an event loop. Accepts in batches and hands each
// new connection to its owner. When the process runs out of descriptors
// (EMFILE/ENFILE) it frees a reserved descriptor, accepts the pending client,
// answers 503 and closes it — so the backlog drains, the loop never spins, and
// the owner can count the rejection.
#pragma once

#include <functional>

#include "net/event_loop.h"
#include "net/socket.h"

namespace wstrace::net {

class Listener final : public IoHandler {
 public:
  struct Callbacks {
    // A new connection (non-blocking, close-on-exec). The owner owns `fd`.
    std::function<void(int fd, const Address& peer)> on_accept;
    // A client turned away because the process is out of descriptors.
    std::function<void(int err)> on_reject;
  };

  // `shared`: the same listening socket is watched by several loops (each
  // with its own descriptor for it); EPOLLEXCLUSIVE wakes one of them per
  // new connection instead of all.
  Listener(EventLoop& loop, int fd, Callbacks callbacks, bool shared = false);
  ~Listener();
  Listener(const Listener&) = delete;
  Listener& operator=(const Listener&) = delete;

  void on_io(uint32_t events) override;
  // Stops accepting and closes the socket.
  void close();
  bool open() const { return fd_ >= 0; }

 private:
  // Turns one waiting client away on the reserved descriptor. False when no
  // client was waiting (or none could be reached): stop accepting for now.
  bool reject_one(int err);
  void pause();

  EventLoop& loop_;
  int fd_;
  int reserve_fd_ = -1;
  bool paused_ = false;
  Callbacks cb_;
  uint32_t events_;
};

}  // namespace wstrace::net
