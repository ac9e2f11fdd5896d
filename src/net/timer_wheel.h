// A hashed timer wheel for per-connection deadlines (handshake timeout,
// heartbeat, close timeout). A connection holds one intrusive node: nothing
// is allocated and nothing runs per idle connection between its deadlines.
// Activity does not move the node; when it fires, the owner recomputes its
// real deadline and reschedules — so a busy connection costs one visit per
// heartbeat interval, an idle one the same.
#pragma once

#include <cstdint>
#include <vector>

namespace wstrace::net {

struct WheelNode {
  WheelNode* prev = nullptr;
  WheelNode* next = nullptr;
  uint32_t due = 0;  // tick
  bool linked() const { return prev != nullptr; }
};

class TimerWheel {
 public:
  // `tick_ns`: resolution; `slots`: wheel size (deadlines further away than
  // slots*tick just wait for extra turns).
  TimerWheel(uint64_t start_ns, uint64_t tick_ns, uint32_t slots)
      : start_ns_(start_ns), tick_ns_(tick_ns), slots_(slots) {
    for (auto& s : slots_) s.prev = s.next = &s;
  }
  TimerWheel(const TimerWheel&) = delete;
  TimerWheel& operator=(const TimerWheel&) = delete;

  uint64_t tick_ns() const { return tick_ns_; }
  uint32_t current() const { return current_; }
  // The tick `ns` from now, rounded up so a deadline never fires early. Now
  // is somewhere inside tick current()+1 (up to a whole tick past the time
  // current() stands for), hence the extra tick.
  uint32_t tick_after(uint64_t ns) const {
    return current_ + 1 + static_cast<uint32_t>((ns + tick_ns_ - 1) / tick_ns_);
  }

  void schedule(WheelNode* node, uint32_t due_tick) {
    cancel(node);
    // A deadline in the past fires on the next tick.
    if (static_cast<int32_t>(due_tick - current_) <= 0) due_tick = current_ + 1;
    node->due = due_tick;
    WheelNode& head = slots_[due_tick % slots_.size()];
    node->next = &head;
    node->prev = head.prev;
    head.prev->next = node;
    head.prev = node;
  }
  static void cancel(WheelNode* node) {
    if (!node->linked()) return;
    node->prev->next = node->next;
    node->next->prev = node->prev;
    node->prev = node->next = nullptr;
  }

  // Advances to `now_ns`, calling fire(node) for every node that is due. The
  // node is unlinked before the call; fire may reschedule it or others.
  template <typename Fire>
  void advance(uint64_t now_ns, Fire&& fire) {
    while (now_ns >= start_ns_ + static_cast<uint64_t>(current_ + 1) * tick_ns_) {
      ++current_;
      WheelNode& head = slots_[current_ % slots_.size()];
      // Move the slot's nodes to a private list first: fire() may schedule
      // into this same slot (a deadline a whole turn away).
      WheelNode pending;
      if (head.next == &head) continue;
      pending.next = head.next;
      pending.prev = head.prev;
      pending.next->prev = &pending;
      pending.prev->next = &pending;
      head.next = head.prev = &head;
      while (pending.next != &pending) {
        WheelNode* node = pending.next;
        cancel(node);
        if (static_cast<int32_t>(node->due - current_) > 0) {
          schedule(node, node->due);  // not yet: a later turn
        } else {
          fire(node);
        }
      }
    }
  }

 private:
  uint64_t start_ns_;
  uint64_t tick_ns_;
  uint32_t current_ = 0;
  std::vector<WheelNode> slots_;  // sentinels
};

}  // namespace wstrace::net
