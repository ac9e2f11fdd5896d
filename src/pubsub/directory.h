// Node-wide view of which channels have local subscribers, across all
// worker threads. Updated only when a channel gains its first subscriber on
// a thread or loses its last (rare next to messages), read by the cluster
// bridge (subscribe in Redis only while someone here listens) and by the
// channels.active gauge.
#pragma once

#include <cstdint>
#include <functional>
#include <mutex>
#include <string>
#include <unordered_map>
#include <vector>

namespace wstrace::pubsub {

class Directory {
 public:
  // Called when a channel becomes active or inactive node-wide, from the
  // worker thread that caused it, under the directory's lock (so calls come
  // in the true order). It must be quick and must not call back into the
  // Directory.
  using Listener = std::function<void(const std::string& channel, bool active)>;
  void set_listener(Listener l) { listener_ = std::move(l); }

  // A thread gained its first (true) or lost its last (false) subscriber.
  void update(const std::string& channel, bool active) {
    std::lock_guard lock(mu_);
    bool transition = false;
    if (active) {
      transition = ++threads_[channel] == 1;
    } else {
      auto it = threads_.find(channel);
      if (it != threads_.end() && --it->second == 0) {
        threads_.erase(it);
        transition = true;
      }
    }
    if (transition && listener_) listener_(channel, active);
  }

  // Whether some thread has a subscriber of `channel`.
  bool active(const std::string& channel) const {
    std::lock_guard lock(mu_);
    return threads_.count(channel) > 0;
  }

  size_t size() const {
    std::lock_guard lock(mu_);
    return threads_.size();
  }

  std::vector<std::string> channels() const {
    std::lock_guard lock(mu_);
    std::vector<std::string> out;
    out.reserve(threads_.size());
    for (const auto& [name, n] : threads_) out.push_back(name);
    return out;
  }

 private:
  mutable std::mutex mu_;
  std::unordered_map<std::string, uint32_t> threads_;
  Listener listener_;
};

}  // namespace wstrace::pubsub
