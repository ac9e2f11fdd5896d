// Metrics core: instruments registered once at start-up, recorded into
// per-thread shards without locks, summed when read.
//
// Contract:
//   * Register every instrument before the first call to shard() or collect()
//     (that first call freezes the registry). A registration after the freeze
//     logs an error and returns an inert instrument that records nothing.
//   * A Shard is written by one thread only (its owner); any thread may
//     collect() at any time. Recording is a bounds check, an index into the
//     shard's preallocated array and a relaxed load + store (no lock prefix,
//     no allocation, no hashing).
//   * Observer callbacks run inside collect(), possibly on several threads at
//     once (Prometheus scrape and OTLP export); they must be thread-safe and
//     cheap.
//
// Declaring a subsystem's metrics once (X-macro; each entry is
// M(Kind, member, "otel.name", "description", "unit" [, bounds] [, series])):
//
//   #define PUBSUB_METRICS(M) <backslash>
//     M(Counter, published, "websocket.messages.broadcasted", "Published", "{message}") <backslash>
//     M(Histogram, recipients, "websocket.broadcast.recipients", "Recipients", <backslash>
//       "{connection}", {1, 10, 100, 1000}) <backslash>
//     M(Counter, errors, "websocket.errors", "Errors", "{error}", <backslash>
//       {{{"error.type", "invalid_json"}}, {{"error.type", "timeout"}}})
//   WSTRACE_METRICS_STRUCT(PubsubMetrics, PUBSUB_METRICS);
//
//   PubsubMetrics m;
//   m.register_all(registry);         // once, before threads start
//   m.published.add(shard);           // hot path
//   m.errors.add(shard, 1, /*series=*/1);
#pragma once

#include <array>
#include <atomic>
#include <bit>
#include <cstddef>
#include <cstdint>
#include <deque>
#include <functional>
#include <memory>
#include <mutex>
#include <string>
#include <utility>
#include <vector>

namespace wstrace::telemetry {

using LabelSet = std::vector<std::pair<std::string, std::string>>;

inline constexpr size_t kMaxShards = 64;

// One data point of a snapshot. Sums and gauges use `type` Int or Double and
// the matching value; histograms use the histogram fields.
struct Point {
  enum class Type : uint8_t { Int, Double, Histogram };

  LabelSet labels;
  Type type = Type::Int;
  int64_t as_int = 0;
  double as_double = 0;
  // Histogram only. bucket_counts.size() == bounds.size() + 1 of the metric.
  uint64_t count = 0;
  double sum = 0;
  double min = 0;  // meaningful only when count > 0
  double max = 0;
  std::vector<uint64_t> bucket_counts;

  static Point of_int(int64_t v, LabelSet labels = {}) {
    Point p;
    p.type = Type::Int;
    p.as_int = v;
    p.labels = std::move(labels);
    return p;
  }
  static Point of_double(double v, LabelSet labels = {}) {
    Point p;
    p.type = Type::Double;
    p.as_double = v;
    p.labels = std::move(labels);
    return p;
  }
  // Value as a double whatever the type (sums and gauges).
  double value() const { return type == Type::Double ? as_double : static_cast<double>(as_int); }
};

enum class MetricType : uint8_t { Sum, Gauge, Histogram };

// One instrument's data at collect time. Temporality is always cumulative.
struct MetricData {
  std::string name;
  std::string description;
  std::string unit;
  MetricType type = MetricType::Sum;
  bool monotonic = false;      // Sum only
  std::vector<double> bounds;  // Histogram only
  std::vector<Point> points;
};

struct MetricsSnapshot {
  uint64_t start_unix_ns = 0;  // when the registry was created (cumulative start)
  uint64_t time_unix_ns = 0;   // when collected
  std::vector<MetricData> metrics;

  const MetricData* find(std::string_view name) const;
};

// Per-thread storage: one 64-bit cell per counter series, (buckets + 3) per
// histogram series. Cache-line aligned so shards never share a line.
class Shard {
 public:
  explicit Shard(size_t cells);
  Shard(const Shard&) = delete;
  Shard& operator=(const Shard&) = delete;
  ~Shard();

  // Owner thread only: a plain read-modify-write, atomic per cell for readers.
  void add(uint32_t cell, uint64_t v) {
    auto& c = cells_[cell];
    c.store(c.load(std::memory_order_relaxed) + v, std::memory_order_relaxed);
  }
  uint64_t load(uint32_t cell) const { return cells_[cell].load(std::memory_order_relaxed); }
  void store(uint32_t cell, uint64_t v) { cells_[cell].store(v, std::memory_order_relaxed); }
  size_t size() const { return size_; }

 private:
  std::atomic<uint64_t>* cells_;
  size_t size_;
};

// False only in the build that measures what metrics cost (CMake option
// WSTRACE_MEASURE_WITHOUT_METRICS): every update below is then a no-op.
#ifdef WSTRACE_MEASURE_WITHOUT_METRICS
inline constexpr bool kRecordMetrics = false;
#else
inline constexpr bool kRecordMetrics = true;
#endif

struct Counter {
  void add(Shard& s, uint64_t v = 1, uint32_t series = 0) const {
    if (kRecordMetrics && series < nseries) {
      s.add(offset + series, v);
    }
  }
  uint32_t offset = 0;
  uint32_t nseries = 0;  // 0 = inert
};

struct UpDownCounter {
  void add(Shard& s, int64_t v, uint32_t series = 0) const {
    if (kRecordMetrics && series < nseries) {
      s.add(offset + series, static_cast<uint64_t>(v));  // two's complement wraps back on read
    }
  }
  uint32_t offset = 0;
  uint32_t nseries = 0;
};

// Buckets follow OpenTelemetry: bucket i counts values in (bounds[i-1], bounds[i]],
// the last one (bounds.back(), +Inf). Layout per series: nbounds + 1 bucket
// counts, then sum, min, max (as double bits). NaN is ignored.
struct Histogram {
  void record(Shard& s, double v, uint32_t series = 0) const { record_n(s, v, 1, series); }
  // The same observation `n` times (a fan-out writing one publication to many
  // subscribers at once records its latency once per clock reading).
  void record_n(Shard& s, double v, uint64_t n, uint32_t series = 0) const {
    if (!kRecordMetrics || series >= nseries || v != v || n == 0) {
      return;
    }
    uint32_t base = offset + series * (nbounds + 4);
    uint32_t i = 0;
    if (nbounds <= 16) {
      while (i < nbounds && v > bounds[i]) {
        ++i;
      }
    } else {
      uint32_t lo = 0, hi = nbounds;  // first index with v <= bounds[i]
      while (lo < hi) {
        uint32_t mid = (lo + hi) / 2;
        if (v > bounds[mid]) {
          lo = mid + 1;
        } else {
          hi = mid;
        }
      }
      i = lo;
    }
    s.add(base + i, n);
    uint32_t sum_cell = base + nbounds + 1;
    s.store(sum_cell, std::bit_cast<uint64_t>(std::bit_cast<double>(s.load(sum_cell)) +
                                              v * static_cast<double>(n)));
    if (v < std::bit_cast<double>(s.load(sum_cell + 1))) {
      s.store(sum_cell + 1, std::bit_cast<uint64_t>(v));
    }
    if (v > std::bit_cast<double>(s.load(sum_cell + 2))) {
      s.store(sum_cell + 2, std::bit_cast<uint64_t>(v));
    }
  }
  uint32_t offset = 0;
  uint32_t nseries = 0;
  uint32_t nbounds = 0;
  const double* bounds = nullptr;  // owned by the registry
};

using Observer = std::function<void(std::vector<Point>&)>;

class MetricRegistry {
 public:
  MetricRegistry();
  ~MetricRegistry();
  MetricRegistry(const MetricRegistry&) = delete;
  MetricRegistry& operator=(const MetricRegistry&) = delete;

  // `series` lists the label sets of the instrument; the series index passed to
  // add()/record() picks one. Empty => a single series without labels.
  // Names are OpenTelemetry names, units UCUM ("s", "By", "{connection}").
  Counter add_counter(std::string name, std::string description, std::string unit,
                      std::vector<LabelSet> series = {});
  UpDownCounter add_updown_counter(std::string name, std::string description, std::string unit,
                                   std::vector<LabelSet> series = {});
  // `bounds` must be strictly increasing (sorted and deduplicated if not).
  Histogram add_histogram(std::string name, std::string description, std::string unit,
                          std::vector<double> bounds, std::vector<LabelSet> series = {});

  // Observed at collect time: the callback appends points (Point::of_int /
  // of_double) for values that live elsewhere.
  void add_observable_gauge(std::string name, std::string description, std::string unit,
                            Observer observe);
  void add_observable_counter(std::string name, std::string description, std::string unit,
                              Observer observe);  // cumulative, monotonic
  void add_observable_updown_counter(std::string name, std::string description, std::string unit,
                                     Observer observe);  // cumulative, not monotonic

  // index < kMaxShards; each recording thread uses its own index. Freezes the registry.
  Shard& shard(size_t index);
  // Sums shards, runs observers. Safe from any thread at any time. Freezes the registry.
  MetricsSnapshot collect() const;

  void freeze() const;
  bool frozen() const { return frozen_.load(std::memory_order_acquire); }
  uint64_t start_unix_ns() const { return start_unix_ns_; }
  size_t cell_count() const { return cells_; }

 private:
  enum class Kind : uint8_t { Counter, UpDown, Histogram, ObsGauge, ObsCounter, ObsUpDown };
  struct Instrument {
    Kind kind;
    std::string name, description, unit;
    std::vector<LabelSet> series;
    std::vector<double> bounds;
    uint32_t offset = 0;
    Observer observe;
  };
  bool check_open(const std::string& name);
  Instrument* add(Kind kind, std::string name, std::string description, std::string unit,
                  std::vector<LabelSet> series, size_t cells_per_series);

  std::deque<Instrument> instruments_;  // deque: bounds pointers stay valid
  size_t cells_ = 0;
  uint64_t start_unix_ns_;
  mutable std::atomic<bool> frozen_{false};
  std::mutex shard_mu_;  // creation of shards only
  std::array<std::atomic<Shard*>, kMaxShards> shards_{};
};

namespace detail {
inline void register_metric(MetricRegistry& r, Counter& out, std::string name, std::string desc,
                            std::string unit, std::vector<LabelSet> series = {}) {
  out = r.add_counter(std::move(name), std::move(desc), std::move(unit), std::move(series));
}
inline void register_metric(MetricRegistry& r, UpDownCounter& out, std::string name,
                            std::string desc, std::string unit, std::vector<LabelSet> series = {}) {
  out = r.add_updown_counter(std::move(name), std::move(desc), std::move(unit), std::move(series));
}
inline void register_metric(MetricRegistry& r, Histogram& out, std::string name, std::string desc,
                            std::string unit, std::vector<double> bounds,
                            std::vector<LabelSet> series = {}) {
  out = r.add_histogram(std::move(name), std::move(desc), std::move(unit), std::move(bounds),
                        std::move(series));
}
}  // namespace detail

}  // namespace wstrace::telemetry

// M(Kind, member, "otel.name", "description", "unit" [, bounds] [, series])
#define WSTRACE_METRIC_MEMBER_(kind, member, ...) ::wstrace::telemetry::kind member;
#define WSTRACE_METRIC_REGISTER_(kind, member, ...) \
  ::wstrace::telemetry::detail::register_metric(registry, member, __VA_ARGS__);
#define WSTRACE_METRICS_STRUCT(StructName, LIST)                          \
  struct StructName {                                                     \
    LIST(WSTRACE_METRIC_MEMBER_)                                          \
    void register_all(::wstrace::telemetry::MetricRegistry& registry) {   \
      LIST(WSTRACE_METRIC_REGISTER_)                                      \
    }                                                                     \
  }
