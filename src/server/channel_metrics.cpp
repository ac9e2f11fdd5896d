#include "server/channel_metrics.h"

#include <algorithm>

namespace wstrace::server {

void ChannelMetrics::points(const Sample& s, std::vector<telemetry::Point>& published,
                            std::vector<telemetry::Point>& subscribers) {
  std::lock_guard lock(mu_);
  if (baseline_.size() < top_n_) {
    std::vector<std::pair<uint64_t, const std::string*>> candidates;
    for (const auto& [name, n] : s.published) {
      // "" collects channels past the workers' tracking cap: never labelled.
      if (!name.empty() && !baseline_.count(name)) candidates.emplace_back(n, &name);
    }
    std::sort(candidates.begin(), candidates.end(), [](const auto& a, const auto& b) {
      return a.first != b.first ? a.first > b.first : *a.second < *b.second;
    });
    // New labels count from zero when "other" can give their history back
    // without going below what it already reported (always true at the first
    // collection); otherwise from now.
    uint64_t total = 0;
    for (const auto& [name, n] : s.published) total += n;
    uint64_t labelled = 0;
    for (const auto& [name, base] : baseline_) {
      auto it = s.published.find(name);
      uint64_t n = it == s.published.end() ? base : it->second;
      labelled += n >= base ? n - base : 0;
    }
    std::vector<std::pair<const std::string*, uint64_t>> added;
    uint64_t added_total = 0;
    for (const auto& [n, name] : candidates) {
      if (baseline_.size() + added.size() >= top_n_) break;
      added.emplace_back(name, n);
      added_total += n;
    }
    const bool from_zero = total >= labelled + added_total &&
                           total - labelled - added_total >= last_other_;
    for (const auto& [name, n] : added) baseline_.emplace(*name, from_zero ? 0 : n);
  }
  uint64_t total = 0;
  for (const auto& [name, n] : s.published) total += n;
  uint64_t labelled_total = 0;
  for (const auto& [name, base] : baseline_) {
    auto it = s.published.find(name);
    uint64_t n = it == s.published.end() ? base : it->second;
    uint64_t v = n >= base ? n - base : 0;
    labelled_total += v;
    published.push_back(telemetry::Point::of_int(static_cast<int64_t>(v), {{"channel", name}}));
  }
  const uint64_t other = total >= labelled_total ? total - labelled_total : 0;
  last_other_ = std::max(last_other_, other);
  published.push_back(telemetry::Point::of_int(static_cast<int64_t>(other), {{"channel", "other"}}));

  uint64_t other_subs = 0;
  for (const auto& [name, n] : s.subscribers) {
    if (!baseline_.count(name)) other_subs += n;
  }
  for (const auto& [name, base] : baseline_) {
    auto it = s.subscribers.find(name);
    subscribers.push_back(telemetry::Point::of_int(
        static_cast<int64_t>(it == s.subscribers.end() ? 0 : it->second), {{"channel", name}}));
  }
  subscribers.push_back(
      telemetry::Point::of_int(static_cast<int64_t>(other_subs), {{"channel", "other"}}));
}

void ChannelMetrics::register_all(telemetry::MetricRegistry& registry) {
  // Both instruments read one sample per collection (the observers run in
  // order within one collect()); the second reuses what the first gathered.
  struct Shared {
    std::mutex mu;
    std::vector<telemetry::Point> subscribers;
  };
  auto shared = std::make_shared<Shared>();
  registry.add_observable_counter(
      "websocket.channel.messages",
      "Messages published per channel (top channels by --channel-metrics; the rest as other)",
      "{message}", [this, shared](std::vector<telemetry::Point>& out) {
        Sample s = gather_();
        std::vector<telemetry::Point> subs;
        points(s, out, subs);
        std::lock_guard lock(shared->mu);
        shared->subscribers = std::move(subs);
      });
  registry.add_observable_gauge(
      "websocket.channel.subscribers",
      "Subscribers per channel on this node (top channels by --channel-metrics; the rest as other)",
      "{connection}", [shared](std::vector<telemetry::Point>& out) {
        std::lock_guard lock(shared->mu);
        out.insert(out.end(), shared->subscribers.begin(), shared->subscribers.end());
      });
}

}  // namespace wstrace::server
