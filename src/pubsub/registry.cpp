#include "pubsub/registry.h"

#include <algorithm>

namespace wstrace::pubsub {

Registry::SubscribeResult Registry::subscribe(Subscriber& s, std::string_view name,
                                              size_t max_subscriptions, uint32_t pending) {
  for (uint16_t i = 0; i < s.count_; ++i) {
    if (s.slots_[i].channel->name() == name) return SubscribeResult::AlreadySubscribed;
  }
  if (s.count_ >= max_subscriptions || s.count_ == UINT16_MAX) return SubscribeResult::TooMany;

  Channel* ch = find(name);
  if (ch == nullptr) {
    auto owned = std::make_unique<Channel>(name);
    ch = owned.get();
    channels_.emplace(std::string_view(ch->name()), std::move(owned));
  }
  if (s.count_ == s.cap_) {
    // Double, but never past the limit nor past what a uint16_t holds (a
    // limit above 65535 made the capacity wrap to 0 at 32768 subscriptions).
    const size_t limit = std::min<size_t>(std::max<size_t>(max_subscriptions, 4), UINT16_MAX);
    uint16_t cap = static_cast<uint16_t>(
        std::min<size_t>(std::max<size_t>(4, size_t{s.cap_} * 2), limit));
    auto* slots = new Subscriber::Slot[cap];
    std::copy(s.slots_, s.slots_ + s.count_, slots);
    delete[] s.slots_;
    s.slots_ = slots;
    s.cap_ = cap;
  }
  const uint16_t slot = s.count_++;
  s.slots_[slot] = {ch, static_cast<uint32_t>(ch->members_.size())};
  ch->members_.push_back({&s, slot, pending});
  ++subscriptions_;
  if (ch->members_.size() == 1 && on_interest) on_interest(ch->name(), true);
  return SubscribeResult::Subscribed;
}

Channel* Registry::activate(Subscriber& s, std::string_view name) {
  for (uint16_t i = 0; i < s.count_; ++i) {
    Channel* ch = s.slots_[i].channel;
    if (ch->name() == name) {
      ch->members_[s.slots_[i].index].pending = 0;
      return ch;
    }
  }
  return nullptr;
}

const Channel::Member* Registry::membership(const Subscriber& s, std::string_view name) const {
  for (uint16_t i = 0; i < s.count_; ++i) {
    const Channel* ch = s.slots_[i].channel;
    if (ch->name() == name) return &ch->members_[s.slots_[i].index];
  }
  return nullptr;
}

bool Registry::unsubscribe(Subscriber& s, std::string_view name) {
  for (uint16_t i = 0; i < s.count_; ++i) {
    if (s.slots_[i].channel->name() == name) {
      remove_slot(s, i);
      return true;
    }
  }
  return false;
}

void Registry::unsubscribe_all(Subscriber& s) {
  while (s.count_ > 0) remove_slot(s, static_cast<uint16_t>(s.count_ - 1));
  delete[] s.slots_;
  s.slots_ = nullptr;
  s.cap_ = 0;
}

void Registry::remove_slot(Subscriber& s, uint16_t slot) {
  Channel* ch = s.slots_[slot].channel;
  const uint32_t index = s.slots_[slot].index;

  // Swap-remove from the channel, fixing the moved member's back-index.
  auto& members = ch->members_;
  if (index + 1 != members.size()) {
    members[index] = members.back();
    members[index].sub->slots_[members[index].slot].index = index;
  }
  members.pop_back();

  // Swap-remove from the subscriber, fixing the moved slot's back-index.
  const uint16_t last = static_cast<uint16_t>(s.count_ - 1);
  if (slot != last) {
    s.slots_[slot] = s.slots_[last];
    s.slots_[slot].channel->members_[s.slots_[slot].index].slot = slot;
  }
  --s.count_;
  --subscriptions_;

  if (members.empty()) {
    std::string name = ch->name();
    channels_.erase(std::string_view(name));
    if (on_interest) on_interest(name, false);
  }
}

}  // namespace wstrace::pubsub
