// Counts the write-type system calls (write, writev, sendto, sendmsg,
// sendmmsg) that the server processes make during the measured window, with
// perf tracepoint counters on every thread of every server.
//
// /proc/PID/io `syscw` only counts the VFS paths (write, writev, pwrite...):
// a server that writes its sockets with send()/sendmsg() does not show up
// there at all. Tracepoint counters count every path, in the kernel, with no
// sampling; they exist only while the window lasts (opening them puts every
// thread of the machine on the slower syscall-entry path that tracepoints
// need, ~0.1 µs per syscall, so they are not left open outside the window).
// When perf is unavailable (perf_event_paranoid, no tracefs), the caller falls
// back to syscw.
#pragma once

#include <dirent.h>
#include <linux/perf_event.h>
#include <sys/ioctl.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <cstdint>
#include <cstdlib>
#include <fstream>
#include <string>
#include <vector>

namespace wsbench {

class SyscallCounter {
 public:
  SyscallCounter() = default;
  SyscallCounter(const SyscallCounter&) = delete;
  SyscallCounter& operator=(const SyscallCounter&) = delete;
  ~SyscallCounter() { close(); }

  // Opens one counter per (thread, tracepoint) of the given processes. True
  // when every tracepoint id was found and every counter opened.
  bool open(const std::vector<int>& pids) {
    close();
    std::vector<uint64_t> ids;
    for (const char* name :
         {"sys_enter_write", "sys_enter_writev", "sys_enter_sendto", "sys_enter_sendmsg",
          "sys_enter_sendmmsg"}) {
      uint64_t id = 0;
      if (!tracepoint_id(name, id)) return false;
      ids.push_back(id);
    }
    for (int pid : pids) {
      const std::string dir = "/proc/" + std::to_string(pid) + "/task";
      DIR* d = ::opendir(dir.c_str());
      if (d == nullptr) continue;  // gone: nothing to count
      while (dirent* e = ::readdir(d)) {
        if (e->d_name[0] < '0' || e->d_name[0] > '9') continue;
        const int tid = std::atoi(e->d_name);
        for (uint64_t id : ids) {
          perf_event_attr a{};
          a.type = PERF_TYPE_TRACEPOINT;
          a.size = sizeof a;
          a.config = id;
          const long fd = ::syscall(SYS_perf_event_open, &a, tid, -1, -1, PERF_FLAG_FD_CLOEXEC);
          if (fd < 0) {
            ::closedir(d);
            close();
            return false;
          }
          fds_.push_back(static_cast<int>(fd));
        }
      }
      ::closedir(d);
    }
    return !fds_.empty();
  }

  // Sum of all counters so far.
  uint64_t read() const {
    uint64_t total = 0;
    for (int fd : fds_) {
      uint64_t v = 0;
      if (::read(fd, &v, sizeof v) == static_cast<ssize_t>(sizeof v)) total += v;
    }
    return total;
  }

  void close() {
    for (int fd : fds_) ::close(fd);
    fds_.clear();
  }

 private:
  static bool tracepoint_id(const char* name, uint64_t& id) {
    for (const char* root : {"/sys/kernel/tracing", "/sys/kernel/debug/tracing"}) {
      std::ifstream in(std::string(root) + "/events/syscalls/" + name + "/id");
      if (in >> id) return true;
    }
    return false;
  }

  std::vector<int> fds_;
};

}  // namespace wsbench
