#include "net/event_loop.h"

#include <sys/eventfd.h>
#include <unistd.h>

#include <cerrno>
#include <cstdlib>

#include "util/clock.h"
#include "util/log.h"

namespace wstrace::net {

// Reads the eventfd that other threads write to wake the loop.
class EventLoop::Waker final : public IoHandler {
 public:
  explicit Waker(int fd) : fd_(fd) {}
  void on_io(uint32_t) override {
    uint64_t v;
    while (::read(fd_, &v, sizeof v) > 0) {
    }
  }

 private:
  int fd_;
};

namespace {
constexpr int kMaxEvents = 1024;
}

EventLoop::EventLoop() {
  epfd_ = epoll_create1(EPOLL_CLOEXEC);
  eventfd_ = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
  if (epfd_ < 0 || eventfd_ < 0) {
    WS_LOG(Error, "cannot create event loop", {"errno", errno});
    std::abort();
  }
  auto* waker = new Waker(eventfd_);
  epoll_event ev{};
  ev.events = EPOLLIN;
  ev.data.ptr = static_cast<IoHandler*>(waker);
  epoll_ctl(epfd_, EPOLL_CTL_ADD, eventfd_, &ev);
  waker_ = waker;
  events_.resize(kMaxEvents);
  now_ = mono_ns();
}

EventLoop::~EventLoop() {
  delete waker_;
  if (eventfd_ >= 0) ::close(eventfd_);
  if (epfd_ >= 0) ::close(epfd_);
}

int EventLoop::add(int fd, uint32_t events, IoHandler* handler) {
  epoll_event ev{};
  ev.events = events;
  ev.data.ptr = handler;
  return epoll_ctl(epfd_, EPOLL_CTL_ADD, fd, &ev) == 0 ? 0 : -errno;
}

int EventLoop::modify(int fd, uint32_t events, IoHandler* handler) {
  epoll_event ev{};
  ev.events = events;
  ev.data.ptr = handler;
  return epoll_ctl(epfd_, EPOLL_CTL_MOD, fd, &ev) == 0 ? 0 : -errno;
}

void EventLoop::remove(int fd) { epoll_ctl(epfd_, EPOLL_CTL_DEL, fd, nullptr); }

void EventLoop::stop() {
  stop_.store(true, std::memory_order_relaxed);
  uint64_t one = 1;
  [[maybe_unused]] ssize_t n = ::write(eventfd_, &one, sizeof one);
}

void EventLoop::post(Task task) {
  {
    std::lock_guard lock(posted_mu_);
    posted_.push_back(std::move(task));
  }
  // Only the first post after the loop drained its queue pays for a wake-up.
  if (!wake_pending_.exchange(true, std::memory_order_acq_rel)) {
    uint64_t one = 1;
    [[maybe_unused]] ssize_t n = ::write(eventfd_, &one, sizeof one);
  }
}

EventLoop::TimerId EventLoop::add_timer(uint64_t delay_ns, uint64_t period_ns, Task fn) {
  TimerId id = next_timer_id_++;
  timers_.push_back({id, TimerEntry{period_ns, std::move(fn)}});
  timer_heap_.push(Timer{mono_ns() + delay_ns, id});
  return id;
}

void EventLoop::cancel_timer(TimerId id) {
  for (auto it = timers_.begin(); it != timers_.end(); ++it) {
    if (it->first == id) {
      timers_.erase(it);
      return;
    }
  }
}

int EventLoop::timeout_ms() const {
  if (spin_) return 0;
  if (timer_heap_.empty()) return -1;
  uint64_t due = timer_heap_.top().due;
  uint64_t now = mono_ns();
  if (due <= now) return 0;
  // Round up so a timer never fires early and the loop never spins on it.
  uint64_t ms = (due - now + 999'999) / 1'000'000;
  return ms > 60'000 ? 60'000 : static_cast<int>(ms);
}

void EventLoop::run_timers() {
  while (!timer_heap_.empty() && timer_heap_.top().due <= now_) {
    Timer t = timer_heap_.top();
    timer_heap_.pop();
    TimerEntry* entry = nullptr;
    for (auto& [id, e] : timers_) {
      if (id == t.id) {
        entry = &e;
        break;
      }
    }
    if (entry == nullptr) continue;  // cancelled
    if (entry->period > 0) {
      // Next due from the schedule, not from now, so periodic timers don't drift;
      // but never schedule in the past after a long stall.
      uint64_t next = t.due + entry->period;
      if (next <= now_) next = now_ + entry->period;
      timer_heap_.push(Timer{next, t.id});
      Task fn = entry->fn;  // copy: fn may cancel or add timers
      fn();
    } else {
      Task fn = std::move(entry->fn);
      cancel_timer(t.id);
      fn();
    }
  }
}

void EventLoop::run_posted() {
  {
    std::lock_guard lock(posted_mu_);
    running_.swap(posted_);
    wake_pending_.store(false, std::memory_order_release);
  }
  for (auto& task : running_) task();
  running_.clear();
}

void EventLoop::run() {
  while (!stop_.load(std::memory_order_relaxed)) {
    int timeout = timeout_ms();
    spin_ = false;
    int n = epoll_wait(epfd_, events_.data(), static_cast<int>(events_.size()), timeout);
    now_ = mono_ns();
    ++iterations_;
    if (n < 0) {
      if (errno != EINTR) WS_LOG(Error, "epoll_wait failed", {"errno", errno});
      n = 0;
    }
    for (int i = 0; i < n; ++i) {
      static_cast<IoHandler*>(events_[i].data.ptr)->on_io(events_[i].events);
    }
    run_timers();
    run_posted();
    for (auto& hook : before_sleep_) hook();
  }
  // Last chance for tasks posted while stopping (shutdown sequences post work).
  run_posted();
  for (auto& hook : before_sleep_) hook();
}

}  // namespace wstrace::net
