// OTLP/HTTP export with libcurl, from background threads only: POST of a
// protobuf or JSON body, retries with exponential backoff and jitter on
// 429/502/503/504 and connection errors (Retry-After honoured), bounded in
// attempts and by a deadline. A batch that cannot be sent is dropped and
// counted by the caller; nothing throws.
#pragma once

#include <atomic>
#include <condition_variable>
#include <cstdint>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>

#include "telemetry/env_parse.h"
#include "telemetry/exporter.h"
#include "telemetry/otlp_encode.h"

struct curl_slist;

namespace wstrace::telemetry {

enum class OtlpProtocol : uint8_t { HttpProtobuf, HttpJson };

struct RetryPolicy {
  uint32_t max_attempts = 5;  // including the first
  uint64_t initial_backoff_ms = 1000;
  uint64_t max_backoff_ms = 5000;
  double multiplier = 1.5;
  uint64_t max_retry_after_ms = 30000;  // a longer Retry-After is capped
};

struct HttpConfig {
  std::string url;  // full URL, e.g. http://localhost:4318/v1/traces
  KeyValueList headers;
  uint64_t timeout_ms = 10000;  // per attempt (OTEL_EXPORTER_OTLP_TIMEOUT)
  OtlpProtocol protocol = OtlpProtocol::HttpProtobuf;
  RetryPolicy retry;
};

// 429, 502, 503, 504.
bool is_retryable_status(long status);
// Retry-After (RFC 9110 §10.2.3) in milliseconds: delay-seconds, or an
// HTTP-date (IMF-fixdate, RFC 850 or asctime) minus now (`now_unix_s`; the
// one-argument form uses the current time), 0 for a date in the past.
// nullopt for anything else or more than a day away: the computed backoff is
// used then. The caller caps the delay (RetryPolicy::max_retry_after_ms).
std::optional<uint64_t> parse_retry_after_ms(std::string_view value, int64_t now_unix_s);
std::optional<uint64_t> parse_retry_after_ms(std::string_view value);
// Backoff before retry number `retry` (1 = first retry): initial * multiplier^(retry-1),
// capped, then scaled by a jitter factor in [0.5, 1.0] taken from `random`.
uint64_t backoff_ms(const RetryPolicy& policy, uint32_t retry, uint64_t random);

class OtlpHttpClient {
 public:
  struct Result {
    bool ok = false;
    uint32_t attempts = 0;
    long status = 0;              // last HTTP status, 0 when none
    uint64_t last_delay_ms = 0;   // the last wait before a retry
    std::string error;            // last error text
  };

  explicit OtlpHttpClient(HttpConfig config);
  ~OtlpHttpClient();
  OtlpHttpClient(const OtlpHttpClient&) = delete;
  OtlpHttpClient& operator=(const OtlpHttpClient&) = delete;

  // One request body, retried as needed until deadline_mono_ns.
  Result post(const std::string& body, uint64_t deadline_mono_ns) noexcept;
  // From any thread: aborts the transfer in flight and every later wait.
  void cancel() noexcept;

  const HttpConfig& config() const { return config_; }

 private:
  struct Attempt {
    long status = 0;
    bool transport_error = false;
    bool cancelled = false;
    std::optional<uint64_t> retry_after_ms;
    std::string error;
  };
  Attempt attempt(const std::string& body, uint64_t timeout_ms);
  bool wait_ms(uint64_t ms);  // false when cancelled

  HttpConfig config_;
  void* curl_ = nullptr;              // CURL*
  ::curl_slist* headers_ = nullptr;
  std::mutex mu_;                     // one post at a time
  std::mutex wait_mu_;
  std::condition_variable wait_cv_;
  std::atomic<bool> cancelled_{false};
  uint64_t rng_;
};

// Counters shared by the OTLP exporters, read by the exporter metrics.
struct ExportCounters {
  std::atomic<uint64_t> requests{0};        // successful requests
  std::atomic<uint64_t> failures{0};        // requests given up
  std::atomic<uint64_t> retries{0};
};

class OtlpSpanExporter final : public SpanExporter {
 public:
  OtlpSpanExporter(HttpConfig config, Resource resource, Scope scope, ExportCounters* counters);
  ExportResult export_spans(const std::vector<SpanPtr>& batch,
                            uint64_t deadline_mono_ns) noexcept override;
  void cancel() noexcept override { client_.cancel(); }

 private:
  OtlpHttpClient client_;
  Resource resource_;
  Scope scope_;
  ExportCounters* counters_;
};

class OtlpMetricExporter final : public MetricExporter {
 public:
  OtlpMetricExporter(HttpConfig config, Resource resource, Scope scope, ExportCounters* counters);
  ExportResult export_metrics(const MetricsSnapshot& snapshot,
                              uint64_t deadline_mono_ns) noexcept override;
  void cancel() noexcept override { client_.cancel(); }

 private:
  OtlpHttpClient client_;
  Resource resource_;
  Scope scope_;
  ExportCounters* counters_;
};

}  // namespace wstrace::telemetry
