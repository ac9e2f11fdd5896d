// One epoll event loop per thread. Everything that owns a file descriptor
// registers an IoHandler; the loop calls it with the epoll events.
//
// An iteration: wait for events (or the nearest timer), update now(), run the
// I/O handlers, run due timers, run tasks posted from other threads, then run
// the before-sleep hooks (where corked writes are flushed) and wait again.
// Only post() and stop() may be called from other threads.
#pragma once

#include <sys/epoll.h>

#include <atomic>
#include <cstdint>
#include <functional>
#include <mutex>
#include <queue>
#include <vector>

namespace wstrace::net {

class IoHandler {
 public:
  virtual void on_io(uint32_t events) = 0;

 protected:
  ~IoHandler() = default;
};

class EventLoop {
 public:
  using Task = std::function<void()>;
  using TimerId = uint64_t;

  EventLoop();
  ~EventLoop();
  EventLoop(const EventLoop&) = delete;
  EventLoop& operator=(const EventLoop&) = delete;

  // Returns 0 or -errno.
  int add(int fd, uint32_t events, IoHandler* handler);
  int modify(int fd, uint32_t events, IoHandler* handler);
  void remove(int fd);

  // Runs until stop(). Must be called on the thread that owns the loop.
  void run();
  void stop();  // any thread
  bool stopping() const { return stop_.load(std::memory_order_relaxed); }

  // Runs `task` on the loop thread, soon. Any thread.
  void post(Task task);

  // Monotonic time of the current iteration, in nanoseconds.
  uint64_t now() const { return now_; }

  // Hooks run at the end of every iteration, in the order added.
  void add_before_sleep(Task hook) { before_sleep_.push_back(std::move(hook)); }

  // Makes the next wait return immediately (work is pending, e.g. a read
  // that was capped for fairness).
  void wake_soon() { spin_ = true; }

  // Coarse timers (a handful per loop: heartbeat tick, stats); period 0 = once.
  TimerId add_timer(uint64_t delay_ns, uint64_t period_ns, Task fn);
  void cancel_timer(TimerId id);

  // Runs the tasks posted so far, on the calling thread. For owners tearing a
  // stopped loop down: posted tasks may hold references that must be released.
  void drain() { run_posted(); }

  // Iterations run so far (used by tests and stats).
  uint64_t iterations() const { return iterations_; }

 private:
  class Waker;
  struct Timer {
    uint64_t due;
    TimerId id;
    bool operator>(const Timer& o) const { return due > o.due; }
  };
  struct TimerEntry {
    uint64_t period;
    Task fn;
  };

  int timeout_ms() const;
  void run_timers();
  void run_posted();

  int epfd_ = -1;
  int eventfd_ = -1;
  Waker* waker_ = nullptr;
  std::atomic<bool> stop_{false};
  std::atomic<bool> wake_pending_{false};
  bool spin_ = false;
  uint64_t now_ = 0;
  uint64_t iterations_ = 0;

  std::mutex posted_mu_;
  std::vector<Task> posted_;
  std::vector<Task> running_;

  std::vector<Task> before_sleep_;

  std::priority_queue<Timer, std::vector<Timer>, std::greater<>> timer_heap_;
  std::vector<std::pair<TimerId, TimerEntry>> timers_;  // small; linear search is fine
  TimerId next_timer_id_ = 1;

  std::vector<epoll_event> events_;
};

}  // namespace wstrace::net
