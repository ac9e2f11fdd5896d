// The node's recent past, one sample per second: what the dashboard charts
// and /api/samples serves. A sample is the difference of two readings of the
// cumulative metrics (counts in that interval, latency quantiles of the
// deliveries in it) plus gauges read at its end. The ring keeps the last 15
// minutes; reading it never blocks the sampler for more than a copy.
#pragma once

#include <condition_variable>
#include <cstdint>
#include <functional>
#include <mutex>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include "telemetry/metrics.h"

namespace wstrace::server {

// Cumulative counters and histograms read at one instant, and the gauges.
struct Reading {
  int64_t unix_ms = 0;
  uint64_t messages_in = 0, messages_out = 0, bytes_in = 0, bytes_out = 0;
  std::vector<std::pair<std::string, uint64_t>> drops;  // by reason, cumulative
  std::vector<double> latency_bounds;                   // seconds, shared by both histograms
  std::vector<uint64_t> delivery_buckets, rtt_buckets;  // cumulative, bounds.size() + 1 each
  int64_t connections = 0;
  std::vector<uint64_t> sockets_per_thread;
  int cluster_link = -1;  // -1 standalone, 0 down, 1 up
};

// The interval between two readings.
struct Sample {
  int64_t unix_ms = 0;      // end of the interval
  int64_t interval_ms = 0;  // its length
  uint64_t messages_in = 0, messages_out = 0, bytes_in = 0, bytes_out = 0;
  std::vector<std::pair<std::string, uint64_t>> drops;  // reasons with drops in the interval
  uint64_t deliveries = 0;   // delivery latencies recorded in the interval
  double delivery_p50_ms = -1, delivery_p99_ms = -1;  // -1: none
  uint64_t rtt_count = 0;
  double rtt_p50_ms = -1, rtt_p99_ms = -1;
  int64_t connections = 0;
  std::vector<uint64_t> sockets_per_thread;
  int cluster_link = -1;
};

// Reads a Reading's metric part out of a snapshot of the node's registry.
void read_metrics(const telemetry::MetricsSnapshot& s, Reading& r);

// The q-quantile (0..1) of what the bucket deltas counted, interpolated
// linearly inside its bucket (OpenTelemetry buckets: i counts
// (bounds[i-1], bounds[i]], the last one above bounds.back(), reported as
// bounds.back()). -1 when nothing was counted.
double bucket_quantile(const std::vector<double>& bounds, const std::vector<uint64_t>& counts, double q);

// What happened between two readings (`now` later than `before`). Counters
// that went down (a restart of the registry) count from zero.
Sample sample_between(const Reading& before, const Reading& now);

// The last `capacity` samples.
class SampleRing {
 public:
  explicit SampleRing(size_t capacity = 900);
  void push(Sample s);
  // Samples whose unix_ms is after `after_unix_ms`, oldest first.
  std::vector<Sample> since(int64_t after_unix_ms) const;
  size_t capacity() const { return capacity_; }
  size_t size() const;

 private:
  mutable std::mutex mu_;
  size_t capacity_;
  std::vector<Sample> ring_;
  size_t next_ = 0;  // where the next push goes once full
};

// {"interval_ms":..,"capacity":..,"samples":[{...},...]}
std::string samples_json(const std::vector<Sample>& samples, int64_t interval_ms, size_t capacity);
// One sample's object, as in that list.
std::string sample_json(const Sample& s);
void append_sample(std::string& out, const Sample& s);

// A thread that reads every `interval` and pushes the sample into `ring`
// (after handing it to `on_sample`, e.g. the dashboard's live stream).
class Sampler {
 public:
  Sampler(std::function<Reading()> read, SampleRing& ring, int64_t interval_ms = 1000,
          std::function<void(const Sample&)> on_sample = {});
  ~Sampler();
  void start();
  void stop();
  int64_t interval_ms() const { return interval_ms_; }

 private:
  void run();
  std::function<Reading()> read_;
  std::function<void(const Sample&)> on_sample_;
  SampleRing& ring_;
  Reading before_;  // the first reading, taken by start()
  int64_t interval_ms_;
  std::mutex mu_;
  std::condition_variable cv_;
  bool stop_ = false;
  std::thread thread_;
};

}  // namespace wstrace::server
