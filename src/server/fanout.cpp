// Publications: a Message becomes a Publication, goes to its channel's
// sequencer (streams.cpp), which seals it with its offset (building its frame
// once) and posts it to every worker once per loop iteration; each delivers
// it to its subscribers in runs: one shared buffer per channel per
// iteration, one send() per subscriber.
#include <sys/socket.h>

#include <algorithm>
#include <cerrno>

#include "server/tracing.h"
#include "server/worker.h"
#include "util/clock.h"

namespace wstrace::server {
namespace {

constexpr size_t kMaxRun = 512;          // frames per writev in a fan-out
constexpr uint32_t kLatencyWindow = 64;  // subscribers per clock read in a fan-out

}  // namespace

// ---------------------------------------------------------------------------
// Publications

void Worker::publish(Connection& c, const protocol::ClientMessage& m) {
  TraceContext trace;
  if (handle_.valid()) trace = trace_broadcast(*this, handle_, m.channel, m.content.size());
  pubsub::Publication* p =
      pubsub::Publication::make(m.channel, m.content, unix_ns(), trace, node_.node_hash);
  if (m.id.kind != protocol::Id::Kind::None) {
    // It asked for a Published reply: answered when the sequencer placed it.
    p->set_publisher(index_, c.id, m.id);
    track(c);
  } else if (node_.clustered()) {
    // Its refusal (Redis unreachable) is still counted on this worker.
    p->set_publisher(index_, c.id, m.id);
  }
  node_.metrics.messages_broadcasted.add(shard_, 1);
  if (cfg_.channel_metrics > 0) {
    // Bounded: past the cap, new channels are counted together under "".
    constexpr size_t kMaxTracked = 10000;
    auto it = channel_published_.find(std::string(m.channel));
    if (it != channel_published_.end()) {
      ++it->second;
    } else if (channel_published_.size() < kMaxTracked) {
      channel_published_.emplace(std::string(m.channel), 1);
    } else {
      ++channel_published_[""];
    }
  }
  published_.push_back(p);
}

void Worker::post_publications(std::vector<pubsub::Publication*> batch) {
  loop_.post([this, batch = std::move(batch)] {
    incoming_.insert(incoming_.end(), batch.begin(), batch.end());
  });
}

void Worker::deliver(std::vector<pubsub::Publication*>& pubs) {
  runs_.clear();
  const uint64_t now = unix_ns();
  for (pubsub::Publication* p : pubs) {
    p->mark_delivery_start(now);
    pubsub::Channel* ch = registry_.find(p->channel());
    if (ch != nullptr && ch->size() > 0) runs_.emplace_back(ch, p);
  }
  // Group by channel, keeping each channel's publications in order, so each
  // subscriber gets one write per channel per iteration however many
  // messages arrived.
  std::stable_sort(runs_.begin(), runs_.end(),
                   [](const auto& a, const auto& b) { return a.first < b.first; });
  run_pubs_.clear();
  size_t i = 0;
  while (i < runs_.size()) {
    size_t j = i;
    run_pubs_.clear();
    while (j < runs_.size() && runs_[j].first == runs_[i].first) run_pubs_.push_back(runs_[j++].second);
    pubsub::Channel& ch = *runs_[i].first;
    // Runs of messages, cut at gap notices (rare: only a cluster's loss).
    size_t begin = 0;
    for (size_t g = 0; g <= run_pubs_.size(); ++g) {
      if (g < run_pubs_.size() && !run_pubs_[g]->is_gap()) continue;
      for (size_t off = begin; off < g; off += kMaxRun) {
        deliver_run(ch, run_pubs_.data() + off, std::min(kMaxRun, g - off));
      }
      if (g < run_pubs_.size()) deliver_gap(ch, run_pubs_[g]);
      begin = g + 1;
    }
    // This thread has delivered the channel up to here: a subscriber joining
    // now starts after it.
    const pubsub::Publication* last = run_pubs_.back();
    ch.set_position(last->epoch(), last->offset());
    i = j;
  }
}

void Worker::deliver_gap(pubsub::Channel& ch, pubsub::Publication* gap) {
  // Every member is told which positions it will not get, and counts them.
  const uint64_t lost = gap->gap_size();
  uint32_t told = 0;
  for (const auto& m : ch.members()) {
    if (m.pending != 0) continue;
    Connection& c = *static_cast<Connection*>(m.sub);
    if (c.state != ConnState::Open) continue;
    c.stats.dropped_lost += static_cast<uint32_t>(lost);
    gap->plain()->ref();
    send_frame(c, gap->plain(), OutType::Gap);
    ++told;
  }
  if (told > 0) {
    node_.metrics.gaps.add(shard_, told);
    node_.metrics.messages_dropped.add(shard_, lost * told, static_cast<uint32_t>(DropReason::Lost));
  }
  gap->add_delivered(told, 0);
}

void Worker::deliver_run(pubsub::Channel& ch, pubsub::Publication* const* pubs, size_t k) {
  const auto& members = ch.members();
  // What one subscriber gets: the run's frames as one contiguous buffer, built
  // once per variant (plain, or compressed for a window size) and shared by
  // every subscriber of the run, so each write is a single segment.
  struct Variant {
    pubsub::Frame* frame = nullptr;  // the run (one reference held here)
    uint8_t bits = 0;                // 0: plain; else server_max_window_bits
  };
  auto build = [&](uint8_t bits) {
    frames_.resize(k);
    for (size_t i = 0; i < k; ++i) {
      frames_[i] = bits == 0 ? pubs[i]->plain() : pubs[i]->deflated(bits, deflaters_);
    }
    if (k == 1) {
      frames_[0]->ref();
      return Variant{frames_[0], bits};
    }
    return Variant{pubsub::Frame::concat(frames_.data(), k), bits};
  };
  Variant plain;
  Variant deflated;  // the last compressed variant used (usually the only one)

  uint32_t delivered = 0;
  uint32_t skipped = 0;  // closing (or failing) connections
  uint32_t refused = 0;  // slow consumers closed now
  uint32_t window = 0;
  uint64_t bytes = 0;
  auto record_latency = [&] {
    if (window == 0) return;
    const uint64_t now = unix_ns();
    for (size_t i = 0; i < k; ++i) {
      uint64_t t = pubs[i]->published_unix_ns();
      double seconds = now > t ? static_cast<double>(now - t) / 1e9 : 0.0;
      node_.metrics.delivery_latency.record_n(shard_, seconds, window);
    }
    window = 0;
  };

  for (size_t mi = 0; mi < members.size(); ++mi) {
    if (members[mi].pending != 0) continue;  // placed (and caught up) by its reply
    Connection& c = *static_cast<Connection*>(members[mi].sub);
    if (c.state != ConnState::Open) {
      ++skipped;
      continue;
    }
    pubsub::Frame* run;
    if (!c.deflate) {
      if (plain.frame == nullptr) plain = build(0);
      run = plain.frame;
    } else {
      if (deflated.bits != c.server_window_bits) {
        if (deflated.frame) deflated.frame->unref();
        deflated = build(c.server_window_bits);
      }
      run = deflated.frame;
    }
    const size_t total = run->size();
    if (c.out.empty() && !c.blocked) {
      // The common case: one write straight from the shared bytes.
      ssize_t w = write_some(c, run->data(), total);
      if (w == static_cast<ssize_t>(total)) {
        ++window;  // written: delivery latency observed for the window below
      } else {
        if (w < 0) {
          if (errno != EAGAIN && errno != EINTR) {
            socket_error(c, errno);
            ++skipped;
            continue;
          }
          w = 0;
        }
        // Queue what did not fit (an empty queue always takes it); from now
        // on this subscriber costs nothing per message until EPOLLOUT says
        // its socket is writable again (a short write means it is full).
        // The frame carries the publication times: flush() observes the
        // latency once written.
        run->ref();
        c.out.push(run, static_cast<uint32_t>(w));
        if (c.ssl == nullptr || c.kernel_tls) {
          c.blocked = true;  // TCP: a short write means the socket buffer is full
        } else {
          flush(c);  // TLS writes a record at a time: go on until it would block
        }
      }
    } else {
      if (!admit(c, static_cast<uint32_t>(k))) {  // counted as slow_consumer drops
        ++refused;
        continue;
      }
      run->ref();
      c.out.push(run);
      schedule_flush(c);
    }
    c.stats.messages_sent += static_cast<uint32_t>(k);
    c.stats.bytes_sent += total;
    bytes += total;
    ++delivered;
    if (window == kLatencyWindow) record_latency();
  }
  record_latency();
  if (plain.frame) plain.frame->unref();
  if (deflated.frame) deflated.frame->unref();
  node_.metrics.messages_sent.add(shard_, uint64_t{delivered} * k,
                                  static_cast<uint32_t>(OutType::Message));
  node_.metrics.bytes_sent.add(shard_, bytes);
  if (skipped > 0) {
    node_.metrics.messages_dropped.add(shard_, uint64_t{skipped} * k,
                                       static_cast<uint32_t>(DropReason::Closing));
  }
  for (size_t i = 0; i < k; ++i) pubs[i]->add_delivered(delivered, skipped + refused);
}

}  // namespace wstrace::server
