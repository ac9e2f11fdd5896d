#include "server/samples.h"

#include <algorithm>
#include <chrono>

#include "telemetry/json_writer.h"
#include "util/thread_name.h"

namespace wstrace::server {
namespace {

namespace json = telemetry::json;

uint64_t minus(uint64_t now, uint64_t before) { return now >= before ? now - before : now; }

std::vector<uint64_t> bucket_sums(const telemetry::MetricData* m) {
  std::vector<uint64_t> out;
  if (m == nullptr) return out;
  out.assign(m->bounds.size() + 1, 0);
  for (const auto& p : m->points) {
    for (size_t i = 0; i < p.bucket_counts.size() && i < out.size(); ++i) out[i] += p.bucket_counts[i];
  }
  return out;
}

uint64_t total(const telemetry::MetricsSnapshot& s, std::string_view name) {
  const telemetry::MetricData* m = s.find(name);
  if (m == nullptr) return 0;
  int64_t t = 0;
  for (const auto& p : m->points) t += p.as_int;
  return t < 0 ? 0 : static_cast<uint64_t>(t);
}

// Delta of two cumulative bucket vectors (empty when the shapes differ).
std::vector<uint64_t> delta(const std::vector<uint64_t>& now, const std::vector<uint64_t>& before) {
  std::vector<uint64_t> d(now.size(), 0);
  bool same = before.size() == now.size();
  for (size_t i = 0; i < now.size(); ++i) d[i] = same ? minus(now[i], before[i]) : now[i];
  return d;
}

void append_ms(std::string& out, double seconds_or_neg) {
  if (seconds_or_neg < 0) {
    out += "null";
  } else {
    json::append_double(out, seconds_or_neg);
  }
}

}  // namespace

void read_metrics(const telemetry::MetricsSnapshot& s, Reading& r) {
  r.messages_in = total(s, "websocket.messages.received");
  r.messages_out = total(s, "websocket.messages.sent");
  r.bytes_in = total(s, "websocket.bytes.received");
  r.bytes_out = total(s, "websocket.bytes.sent");
  r.drops.clear();
  if (const auto* d = s.find("websocket.messages.dropped")) {
    for (const auto& p : d->points) {
      std::string reason;
      for (const auto& [k, v] : p.labels) {
        if (k == "reason") reason = v;
      }
      auto it = std::find_if(r.drops.begin(), r.drops.end(), [&](const auto& e) { return e.first == reason; });
      uint64_t v = p.as_int < 0 ? 0 : static_cast<uint64_t>(p.as_int);
      if (it == r.drops.end()) {
        r.drops.emplace_back(reason, v);
      } else {
        it->second += v;
      }
    }
  }
  const auto* delivery = s.find("websocket.delivery.latency");
  const auto* rtt = s.find("websocket.heartbeat.rtt");
  r.latency_bounds = delivery != nullptr ? delivery->bounds : std::vector<double>{};
  r.delivery_buckets = bucket_sums(delivery);
  r.rtt_buckets = rtt != nullptr && rtt->bounds == r.latency_bounds ? bucket_sums(rtt) : std::vector<uint64_t>{};
}

double bucket_quantile(const std::vector<double>& bounds, const std::vector<uint64_t>& counts, double q) {
  uint64_t n = 0;
  for (uint64_t c : counts) n += c;
  if (n == 0 || bounds.empty() || counts.size() != bounds.size() + 1) return -1;
  q = std::clamp(q, 0.0, 1.0);
  // The rank of the quantile, 1-based: the smallest value with at least q·n at or below it.
  double rank = std::max(1.0, q * static_cast<double>(n));
  uint64_t seen = 0;
  for (size_t i = 0; i < counts.size(); ++i) {
    if (counts[i] == 0) continue;
    if (static_cast<double>(seen + counts[i]) >= rank) {
      if (i == bounds.size()) return bounds.back();  // above the last bound: all we know
      double lo = i == 0 ? 0.0 : bounds[i - 1];
      double hi = bounds[i];
      double within = (rank - static_cast<double>(seen)) / static_cast<double>(counts[i]);
      return lo + (hi - lo) * within;
    }
    seen += counts[i];
  }
  return bounds.back();
}

Sample sample_between(const Reading& before, const Reading& now) {
  Sample s;
  s.unix_ms = now.unix_ms;
  s.interval_ms = std::max<int64_t>(0, now.unix_ms - before.unix_ms);
  s.messages_in = minus(now.messages_in, before.messages_in);
  s.messages_out = minus(now.messages_out, before.messages_out);
  s.bytes_in = minus(now.bytes_in, before.bytes_in);
  s.bytes_out = minus(now.bytes_out, before.bytes_out);
  for (const auto& [reason, n] : now.drops) {
    uint64_t was = 0;
    for (const auto& [r2, m] : before.drops) {
      if (r2 == reason) was = m;
    }
    if (uint64_t d = minus(n, was); d > 0) s.drops.emplace_back(reason, d);
  }
  auto deliveries = delta(now.delivery_buckets, before.delivery_buckets);
  for (uint64_t c : deliveries) s.deliveries += c;
  if (s.deliveries > 0) {
    s.delivery_p50_ms = bucket_quantile(now.latency_bounds, deliveries, 0.50) * 1e3;
    s.delivery_p99_ms = bucket_quantile(now.latency_bounds, deliveries, 0.99) * 1e3;
  }
  auto rtts = delta(now.rtt_buckets, before.rtt_buckets);
  for (uint64_t c : rtts) s.rtt_count += c;
  if (s.rtt_count > 0) {
    s.rtt_p50_ms = bucket_quantile(now.latency_bounds, rtts, 0.50) * 1e3;
    s.rtt_p99_ms = bucket_quantile(now.latency_bounds, rtts, 0.99) * 1e3;
  }
  s.connections = now.connections;
  s.sockets_per_thread = now.sockets_per_thread;
  s.cluster_link = now.cluster_link;
  return s;
}

SampleRing::SampleRing(size_t capacity) : capacity_(std::max<size_t>(1, capacity)) {
  ring_.reserve(capacity_);
}

void SampleRing::push(Sample s) {
  std::lock_guard lock(mu_);
  if (ring_.size() < capacity_) {
    ring_.push_back(std::move(s));
    return;
  }
  ring_[next_] = std::move(s);
  next_ = (next_ + 1) % capacity_;
}

size_t SampleRing::size() const {
  std::lock_guard lock(mu_);
  return ring_.size();
}

std::vector<Sample> SampleRing::since(int64_t after_unix_ms) const {
  std::lock_guard lock(mu_);
  std::vector<Sample> out;
  const size_t n = ring_.size();
  const size_t first = n < capacity_ ? 0 : next_;
  for (size_t k = 0; k < n; ++k) {
    const Sample& s = ring_[(first + k) % n];
    if (s.unix_ms > after_unix_ms) out.push_back(s);
  }
  return out;
}

std::string samples_json(const std::vector<Sample>& samples, int64_t interval_ms, size_t capacity) {
  std::string out = "{\"interval_ms\":";
  json::append_int(out, interval_ms);
  out += ",\"capacity\":";
  json::append_uint(out, capacity);
  out += ",\"samples\":[";
  for (size_t i = 0; i < samples.size(); ++i) {
    if (i > 0) out += ',';
    append_sample(out, samples[i]);
  }
  out += "]}";
  return out;
}

std::string sample_json(const Sample& s) {
  std::string out;
  append_sample(out, s);
  return out;
}

void append_sample(std::string& out, const Sample& s) {
  {
    out += "{\"t\":";
    json::append_int(out, s.unix_ms);
    out += ",\"interval_ms\":";
    json::append_int(out, s.interval_ms);
    out += ",\"connections\":";
    json::append_int(out, s.connections);
    out += ",\"messages_in\":";
    json::append_uint(out, s.messages_in);
    out += ",\"messages_out\":";
    json::append_uint(out, s.messages_out);
    out += ",\"bytes_in\":";
    json::append_uint(out, s.bytes_in);
    out += ",\"bytes_out\":";
    json::append_uint(out, s.bytes_out);
    out += ",\"drops\":{";
    for (size_t k = 0; k < s.drops.size(); ++k) {
      if (k > 0) out += ',';
      json::append_string(out, s.drops[k].first);
      out += ':';
      json::append_uint(out, s.drops[k].second);
    }
    out += "},\"deliveries\":";
    json::append_uint(out, s.deliveries);
    out += ",\"delivery_p50_ms\":";
    append_ms(out, s.delivery_p50_ms);
    out += ",\"delivery_p99_ms\":";
    append_ms(out, s.delivery_p99_ms);
    out += ",\"rtt_count\":";
    json::append_uint(out, s.rtt_count);
    out += ",\"rtt_p50_ms\":";
    append_ms(out, s.rtt_p50_ms);
    out += ",\"rtt_p99_ms\":";
    append_ms(out, s.rtt_p99_ms);
    out += ",\"sockets_per_thread\":[";
    for (size_t k = 0; k < s.sockets_per_thread.size(); ++k) {
      if (k > 0) out += ',';
      json::append_uint(out, s.sockets_per_thread[k]);
    }
    out += "],\"cluster_link\":";
    out += s.cluster_link < 0 ? "null" : (s.cluster_link > 0 ? "\"up\"" : "\"down\"");
    out += '}';
  }
}

Sampler::Sampler(std::function<Reading()> read, SampleRing& ring, int64_t interval_ms,
                 std::function<void(const Sample&)> on_sample)
    : read_(std::move(read)),
      on_sample_(std::move(on_sample)),
      ring_(ring),
      interval_ms_(std::max<int64_t>(10, interval_ms)) {}

Sampler::~Sampler() { stop(); }

void Sampler::start() {
  // The first reading now, on the caller's thread: whatever happens once
  // start() returned (the server announces itself after) is in a sample.
  before_ = read_();
  thread_ = std::thread([this] {
    name_this_thread("ws-sampler");
    run();
  });
}

void Sampler::stop() {
  {
    std::lock_guard lock(mu_);
    stop_ = true;
  }
  cv_.notify_all();
  if (thread_.joinable()) thread_.join();
}

void Sampler::run() {
  Reading before = std::move(before_);
  auto next = std::chrono::steady_clock::now();
  std::unique_lock lock(mu_);
  for (;;) {
    next += std::chrono::milliseconds(interval_ms_);
    if (cv_.wait_until(lock, next, [this] { return stop_; })) return;
    lock.unlock();
    Reading now = read_();
    Sample sample = sample_between(before, now);
    if (on_sample_) on_sample_(sample);
    ring_.push(std::move(sample));
    before = std::move(now);
    lock.lock();
  }
}

}  // namespace wstrace::server
