// The channels of one thread and who is subscribed to them. Each worker
// thread has its own registry and touches only its own connections, so
// nothing here is locked. Subscribe and unsubscribe are O(1) in the number
// of subscribers (swap-remove with back-indices) and O(k) in the
// connection's own subscriptions (k <= --max-subscriptions).
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

namespace wstrace::pubsub {

class Channel;

// Base of anything that subscribes (a connection). 12 bytes when it has
// no subscriptions; its slots are allocated on the first subscribe.
class Subscriber {
 public:
  Subscriber() = default;
  ~Subscriber() { delete[] slots_; }
  Subscriber(const Subscriber&) = delete;
  Subscriber& operator=(const Subscriber&) = delete;

  uint16_t subscription_count() const { return count_; }
  template <typename F>
  void for_each_subscription(F&& f) const;

 private:
  friend class Registry;
  struct Slot {
    Channel* channel;
    uint32_t index;  // position in channel->members
  };
  Slot* slots_ = nullptr;
  uint16_t count_ = 0;
  uint16_t cap_ = 0;
};

class Channel {
 public:
  struct Member {
    Subscriber* sub;
    uint32_t slot;     // position in sub->slots_
    uint32_t pending;  // nonzero: subscribed, but its Subscribed reply (and the
                       // messages it recovers) are not sent yet: skip it. The
                       // value names the request whose reply will place it.
  };
  explicit Channel(std::string_view name) : name_(name) {}
  const std::string& name() const { return name_; }
  const std::vector<Member>& members() const { return members_; }
  size_t size() const { return members_.size(); }

  // The stream position this thread has delivered up to (known once the
  // channel's sequencer told it, or a publication came): a subscriber that
  // joins now gets everything after it.
  bool positioned() const { return positioned_; }
  const std::string& epoch() const { return epoch_; }
  uint64_t offset() const { return offset_; }
  void set_position(std::string_view epoch, uint64_t offset) {
    if (epoch_ != epoch) epoch_.assign(epoch);
    offset_ = offset;
    positioned_ = true;
  }

 private:
  friend class Registry;
  std::string name_;
  std::vector<Member> members_;
  std::string epoch_;
  uint64_t offset_ = 0;
  bool positioned_ = false;
};

template <typename F>
void Subscriber::for_each_subscription(F&& f) const {
  for (uint16_t i = 0; i < count_; ++i) f(slots_[i].channel->name());
}

class Registry {
 public:
  enum class SubscribeResult : uint8_t { Subscribed, AlreadySubscribed, TooMany };

  // Called when a channel gets its first subscriber on this thread (true) or
  // loses its last (false): the cluster bridge follows node-wide interest.
  std::function<void(const std::string& channel, bool active)> on_interest;

  // `pending` (nonzero): the member is skipped by deliveries until activate().
  SubscribeResult subscribe(Subscriber& s, std::string_view channel, size_t max_subscriptions,
                            uint32_t pending = 0);
  // Ends a pending subscription's wait. Returns the channel, or null when `s`
  // is not (or no longer) subscribed to it.
  Channel* activate(Subscriber& s, std::string_view channel);
  // The member record of `s` in `channel`, or null.
  const Channel::Member* membership(const Subscriber& s, std::string_view channel) const;
  // False when `s` was not subscribed to `channel`.
  bool unsubscribe(Subscriber& s, std::string_view channel);
  void unsubscribe_all(Subscriber& s);

  Channel* find(std::string_view channel) const {
    auto it = channels_.find(channel);
    return it == channels_.end() ? nullptr : it->second.get();
  }
  size_t channel_count() const { return channels_.size(); }
  size_t subscription_count() const { return subscriptions_; }
  template <typename F>
  void for_each_channel(F&& f) const {
    for (const auto& [name, ch] : channels_) f(*ch);
  }

 private:
  void remove_slot(Subscriber& s, uint16_t slot);

  std::unordered_map<std::string_view, std::unique_ptr<Channel>> channels_;
  size_t subscriptions_ = 0;
};

}  // namespace wstrace::pubsub
