// Internal to the bridge's files (bridge.cpp, stream_sync.cpp): one hiredis
// connection on the bridge's event loop, and the drop reasons.
#pragma once

#include <hiredis/async.h>
#include <hiredis/hiredis.h>
#include <sys/epoll.h>

#include <string>

#include "cluster/bridge.h"

namespace wstrace::cluster {

enum DropReason : uint32_t { kLinkDown = 0, kQueueFull = 1, kPublishError = 2, kMalformed = 3 };


// One hiredis connection driven by our event loop (the adapter hooks of
// hiredis' async API register the socket with epoll, level-triggered).
class Bridge::Link final : public net::IoHandler {
 public:
  Link(Bridge& b, bool subscriber) : b_(b), subscriber_(subscriber) {}

  const char* name() const { return subscriber_ ? "subscriber" : "publisher"; }

  void on_io(uint32_t events) override {
    redisAsyncContext* ac = ac_;
    if (ac == nullptr) return;
    if (events & (EPOLLIN | EPOLLERR | EPOLLHUP)) redisAsyncHandleRead(ac);
    // The read may have ended the connection (and freed the context).
    if (ac_ == ac && (events & (EPOLLOUT | EPOLLERR | EPOLLHUP))) redisAsyncHandleWrite(ac);
  }

  bool attach(redisAsyncContext* ac) {
    ac_ = ac;
    fd_ = ac->c.fd;
    ac->data = this;
    ac->ev.data = this;
    ac->ev.addRead = [](void* p) { static_cast<Link*>(p)->want(true, static_cast<Link*>(p)->writing_); };
    ac->ev.delRead = [](void* p) { static_cast<Link*>(p)->want(false, static_cast<Link*>(p)->writing_); };
    ac->ev.addWrite = [](void* p) { static_cast<Link*>(p)->want(static_cast<Link*>(p)->reading_, true); };
    ac->ev.delWrite = [](void* p) { static_cast<Link*>(p)->want(static_cast<Link*>(p)->reading_, false); };
    ac->ev.cleanup = [](void* p) { static_cast<Link*>(p)->detach(); };
    redisAsyncSetConnectCallback(ac, [](const redisAsyncContext* c, int status) {
      auto* self = static_cast<Link*>(c->data);
      if (status != REDIS_OK) {
        // hiredis frees the context after this callback.
        self->detach();
        self->b_.on_disconnected(*self, c->errstr);
        return;
      }
      self->b_.on_connected(*self);
    });
    redisAsyncSetDisconnectCallback(ac, [](const redisAsyncContext* c, int status) {
      auto* self = static_cast<Link*>(c->data);
      self->detach();
      self->b_.on_disconnected(*self, status == REDIS_OK ? "closed" : c->errstr);
    });
    // Connection completion shows up as writability.
    want(false, true);
    return true;
  }

  // Frees a context that never finished connecting (connect timeout) or at stop.
  void abandon() {
    if (ac_ == nullptr) return;
    redisAsyncContext* ac = ac_;
    ac->data = nullptr;
    ac->onConnect = nullptr;  // redisAsyncSet*Callback refuses to reset a callback
    ac->onDisconnect = nullptr;
    detach();
    redisAsyncFree(ac);
  }

  redisAsyncContext* ctx() const { return ac_; }
  bool connected = false;
  bool subscriber() const { return subscriber_; }
  uint64_t backoff_ns = 0;
  bool ready = false;        // connected and (when needed) authenticated
  bool was_ready = false;    // has been ready before: the next ready is a reconnect
  bool auth_failed = false;  // the last disconnect followed a refused AUTH
  std::string last_error;    // the last failure logged, so retries do not repeat it
  net::EventLoop::TimerId timer = 0;
  uint64_t connect_started = 0;

 private:
  void want(bool read, bool write) {
    if (fd_ < 0) return;
    uint32_t ev = (read ? uint32_t{EPOLLIN} : 0u) | (write ? uint32_t{EPOLLOUT} : 0u);
    if (!registered_) {
      b_.loop_.add(fd_, ev, this);
      registered_ = true;
    } else {
      b_.loop_.modify(fd_, ev, this);
    }
    reading_ = read;
    writing_ = write;
  }
  void detach() {
    if (registered_ && fd_ >= 0) b_.loop_.remove(fd_);
    registered_ = false;
    reading_ = writing_ = false;
    fd_ = -1;
    ac_ = nullptr;
  }

  Bridge& b_;
  bool subscriber_;
  redisAsyncContext* ac_ = nullptr;
  int fd_ = -1;
  bool registered_ = false;
  bool reading_ = false;
  bool writing_ = false;
};

}  // namespace wstrace::cluster
