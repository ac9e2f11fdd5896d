// Opt-in per-channel metrics (--channel-metrics N): the N busiest channels
// get their own `channel` label, every other channel is summed as "other",
// so label cardinality never grows with the number of channels.
//
// The labelled set is sticky: a channel keeps its label once given (up to
// N). A channel labelled after "other" already reported its messages keeps
// counting from that moment (what it published before stays in "other"), so
// every series stays monotonic, as counters must; labels given at the first
// collection count everything.
#pragma once

#include <cstdint>
#include <functional>
#include <mutex>
#include <string>
#include <unordered_map>
#include <vector>

#include "telemetry/metrics.h"

namespace wstrace::server {

class ChannelMetrics {
 public:
  // Per-channel totals gathered from the workers at collect time.
  struct Sample {
    std::unordered_map<std::string, uint64_t> published;   // cumulative
    std::unordered_map<std::string, uint64_t> subscribers;  // current
  };
  using Gather = std::function<Sample()>;

  ChannelMetrics(size_t top_n, Gather gather) : top_n_(top_n), gather_(std::move(gather)) {}

  // Registers websocket.channel.messages and websocket.channel.subscribers.
  void register_all(telemetry::MetricRegistry& registry);

  // The labelled points for a sample (exposed for tests).
  void points(const Sample& s, std::vector<telemetry::Point>& published,
              std::vector<telemetry::Point>& subscribers);

 private:
  size_t top_n_;
  Gather gather_;
  std::mutex mu_;
  std::unordered_map<std::string, uint64_t> baseline_;  // labelled channel -> count not its own
  uint64_t last_other_ = 0;                              // "other" must never go down
};

}  // namespace wstrace::server
