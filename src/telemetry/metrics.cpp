#include "telemetry/metrics.h"

#include <algorithm>
#include <cmath>
#include <limits>
#include <new>

#include "util/clock.h"
#include "util/log.h"

namespace wstrace::telemetry {

namespace {
constexpr size_t kCacheLine = 64;
constexpr double kInf = std::numeric_limits<double>::infinity();
}  // namespace

const MetricData* MetricsSnapshot::find(std::string_view name) const {
  for (const auto& m : metrics) {
    if (m.name == name) {
      return &m;
    }
  }
  return nullptr;
}

Shard::Shard(size_t cells) : size_(cells) {
  size_t bytes = std::max<size_t>(kCacheLine, (cells * sizeof(uint64_t) + kCacheLine - 1) /
                                                  kCacheLine * kCacheLine);
  void* mem = ::operator new(bytes, std::align_val_t{kCacheLine});
  cells_ = static_cast<std::atomic<uint64_t>*>(mem);
  for (size_t i = 0; i < bytes / sizeof(uint64_t); ++i) {
    new (&cells_[i]) std::atomic<uint64_t>(0);
  }
}

Shard::~Shard() { ::operator delete(static_cast<void*>(cells_), std::align_val_t{kCacheLine}); }

MetricRegistry::MetricRegistry() : start_unix_ns_(unix_ns()) {}

MetricRegistry::~MetricRegistry() {
  for (auto& s : shards_) {
    delete s.load(std::memory_order_acquire);
  }
}

bool MetricRegistry::check_open(const std::string& name) {
  if (frozen()) {
    WS_LOG(Error, "metric registered after the registry was frozen; it will record nothing",
           {"metric", name});
    return false;
  }
  for (const auto& i : instruments_) {
    if (i.name == name) {
      WS_LOG(Error, "metric registered twice; the second one records nothing", {"metric", name});
      return false;
    }
  }
  return true;
}

MetricRegistry::Instrument* MetricRegistry::add(Kind kind, std::string name,
                                                std::string description, std::string unit,
                                                std::vector<LabelSet> series,
                                                size_t cells_per_series) {
  if (!check_open(name)) {
    return nullptr;
  }
  if (series.empty()) {
    series.emplace_back();
  }
  Instrument& ins = instruments_.emplace_back();
  ins.kind = kind;
  ins.name = std::move(name);
  ins.description = std::move(description);
  ins.unit = std::move(unit);
  ins.series = std::move(series);
  ins.offset = static_cast<uint32_t>(cells_);
  cells_ += cells_per_series * ins.series.size();
  return &ins;
}

Counter MetricRegistry::add_counter(std::string name, std::string description, std::string unit,
                                    std::vector<LabelSet> series) {
  Counter c;
  if (auto* ins = add(Kind::Counter, std::move(name), std::move(description), std::move(unit),
                      std::move(series), 1)) {
    c.offset = ins->offset;
    c.nseries = static_cast<uint32_t>(ins->series.size());
  }
  return c;
}

UpDownCounter MetricRegistry::add_updown_counter(std::string name, std::string description,
                                                 std::string unit, std::vector<LabelSet> series) {
  UpDownCounter c;
  if (auto* ins = add(Kind::UpDown, std::move(name), std::move(description), std::move(unit),
                      std::move(series), 1)) {
    c.offset = ins->offset;
    c.nseries = static_cast<uint32_t>(ins->series.size());
  }
  return c;
}

Histogram MetricRegistry::add_histogram(std::string name, std::string description,
                                        std::string unit, std::vector<double> bounds,
                                        std::vector<LabelSet> series) {
  Histogram h;
  std::erase_if(bounds, [](double b) { return !std::isfinite(b); });
  std::sort(bounds.begin(), bounds.end());
  bounds.erase(std::unique(bounds.begin(), bounds.end()), bounds.end());
  if (auto* ins = add(Kind::Histogram, std::move(name), std::move(description), std::move(unit),
                      std::move(series), bounds.size() + 4)) {
    ins->bounds = std::move(bounds);
    h.offset = ins->offset;
    h.nseries = static_cast<uint32_t>(ins->series.size());
    h.nbounds = static_cast<uint32_t>(ins->bounds.size());
    h.bounds = ins->bounds.data();
  }
  return h;
}

void MetricRegistry::add_observable_gauge(std::string name, std::string description,
                                          std::string unit, Observer observe) {
  if (auto* ins =
          add(Kind::ObsGauge, std::move(name), std::move(description), std::move(unit), {}, 0)) {
    ins->observe = std::move(observe);
  }
}

void MetricRegistry::add_observable_counter(std::string name, std::string description,
                                            std::string unit, Observer observe) {
  if (auto* ins =
          add(Kind::ObsCounter, std::move(name), std::move(description), std::move(unit), {}, 0)) {
    ins->observe = std::move(observe);
  }
}

void MetricRegistry::add_observable_updown_counter(std::string name, std::string description,
                                                   std::string unit, Observer observe) {
  if (auto* ins =
          add(Kind::ObsUpDown, std::move(name), std::move(description), std::move(unit), {}, 0)) {
    ins->observe = std::move(observe);
  }
}

void MetricRegistry::freeze() const { frozen_.store(true, std::memory_order_release); }

Shard& MetricRegistry::shard(size_t index) {
  if (index >= kMaxShards) {
    WS_LOG(Error, "metric shard index out of range; using the last shard", {"index", index});
    index = kMaxShards - 1;
  }
  if (Shard* s = shards_[index].load(std::memory_order_acquire)) {
    return *s;
  }
  std::lock_guard lock(shard_mu_);
  freeze();
  if (Shard* s = shards_[index].load(std::memory_order_acquire)) {
    return *s;
  }
  auto* s = new Shard(cells_);
  for (const auto& ins : instruments_) {
    if (ins.kind != Kind::Histogram) {
      continue;
    }
    size_t stride = ins.bounds.size() + 4;
    for (size_t k = 0; k < ins.series.size(); ++k) {
      uint32_t sum_cell = static_cast<uint32_t>(ins.offset + k * stride + ins.bounds.size() + 1);
      s->store(sum_cell + 1, std::bit_cast<uint64_t>(kInf));
      s->store(sum_cell + 2, std::bit_cast<uint64_t>(-kInf));
    }
  }
  shards_[index].store(s, std::memory_order_release);
  return *s;
}

MetricsSnapshot MetricRegistry::collect() const {
  freeze();
  MetricsSnapshot snap;
  snap.start_unix_ns = start_unix_ns_;
  snap.time_unix_ns = unix_ns();
  std::array<const Shard*, kMaxShards> live{};
  size_t nlive = 0;
  for (const auto& s : shards_) {
    if (const Shard* p = s.load(std::memory_order_acquire)) {
      live[nlive++] = p;
    }
  }
  auto sum_cell = [&](uint32_t cell) {
    uint64_t v = 0;
    for (size_t i = 0; i < nlive; ++i) {
      v += live[i]->load(cell);
    }
    return v;
  };
  snap.metrics.reserve(instruments_.size());
  for (const auto& ins : instruments_) {
    MetricData& m = snap.metrics.emplace_back();
    m.name = ins.name;
    m.description = ins.description;
    m.unit = ins.unit;
    switch (ins.kind) {
      case Kind::Counter:
      case Kind::UpDown:
        m.type = MetricType::Sum;
        m.monotonic = ins.kind == Kind::Counter;
        for (size_t k = 0; k < ins.series.size(); ++k) {
          m.points.push_back(Point::of_int(
              static_cast<int64_t>(sum_cell(static_cast<uint32_t>(ins.offset + k))),
              ins.series[k]));
        }
        break;
      case Kind::Histogram: {
        m.type = MetricType::Histogram;
        m.bounds = ins.bounds;
        size_t nb = ins.bounds.size();
        for (size_t k = 0; k < ins.series.size(); ++k) {
          Point p;
          p.type = Point::Type::Histogram;
          p.labels = ins.series[k];
          auto base = static_cast<uint32_t>(ins.offset + k * (nb + 4));
          p.bucket_counts.resize(nb + 1);
          double mn = kInf, mx = -kInf;
          for (size_t i = 0; i < nlive; ++i) {
            for (size_t b = 0; b <= nb; ++b) {
              p.bucket_counts[b] += live[i]->load(static_cast<uint32_t>(base + b));
            }
            p.sum += std::bit_cast<double>(live[i]->load(static_cast<uint32_t>(base + nb + 1)));
            mn = std::min(mn, std::bit_cast<double>(live[i]->load(static_cast<uint32_t>(base + nb + 2))));
            mx = std::max(mx, std::bit_cast<double>(live[i]->load(static_cast<uint32_t>(base + nb + 3))));
          }
          for (uint64_t c : p.bucket_counts) {
            p.count += c;
          }
          p.min = p.count ? mn : 0;
          p.max = p.count ? mx : 0;
          m.points.push_back(std::move(p));
        }
        break;
      }
      case Kind::ObsGauge:
      case Kind::ObsCounter:
      case Kind::ObsUpDown:
        m.type = ins.kind == Kind::ObsGauge ? MetricType::Gauge : MetricType::Sum;
        m.monotonic = ins.kind == Kind::ObsCounter;
        if (ins.observe) {
          ins.observe(m.points);
        }
        break;
    }
  }
  return snap;
}

}  // namespace wstrace::telemetry
