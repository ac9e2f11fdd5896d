// One load-generating process: an epoll loop over its share of the client
// connections, driven through the phases of a scenario by the parent.
#pragma once

#include <atomic>
#include <cstdint>

#include "options.h"

namespace wsbench {

// Counters every worker can read, in a MAP_SHARED mapping made before fork():
// publishers with a --window are paced on the delivery progress of their
// subscribers in all workers.
struct SharedCounters {
  uint32_t procs = 0;
  uint32_t publishers = 0;
  uint32_t channels = 0;
  std::atomic<uint64_t>* delivered = nullptr;  // [procs][publishers]
  std::atomic<uint64_t>* subs = nullptr;       // [procs][channels] live subscribers

  static SharedCounters create(uint32_t procs, uint32_t publishers, uint32_t channels);
  std::atomic<uint64_t>& delivered_at(uint32_t w, uint32_t pub) const {
    return delivered[size_t(w) * publishers + pub];
  }
  std::atomic<uint64_t>& subs_at(uint32_t w, uint32_t ch) const {
    return subs[size_t(w) * channels + ch];
  }
};

struct WorkerContext {
  const Options* opt = nullptr;
  uint32_t index = 0;
  int cmd_fd = -1;     // parent -> worker (read end)
  int report_fd = -1;  // worker -> parent (write end)
  SharedCounters shared;
};

// Runs the scenario; returns the process exit code.
int run_worker(const WorkerContext& ctx);

}  // namespace wsbench
