#include "telemetry/otlp_http.h"

#include <curl/curl.h>
#include <sys/random.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstring>
#include <mutex>

#include "util/clock.h"
#include "util/log.h"

namespace wstrace::telemetry {

namespace {

void global_init() {
  static std::once_flag once;
  std::call_once(once, [] { curl_global_init(CURL_GLOBAL_DEFAULT); });
}

struct Response {
  std::optional<uint64_t> retry_after_ms;
  std::string body;  // first bytes only, for error messages
};

size_t on_header(char* data, size_t size, size_t n, void* user) {
  auto* r = static_cast<Response*>(user);
  std::string_view line(data, size * n);
  constexpr std::string_view kName = "retry-after:";
  if (line.size() > kName.size()) {
    bool match = true;
    for (size_t i = 0; i < kName.size(); ++i) {
      if (std::tolower(static_cast<unsigned char>(line[i])) != kName[i]) {
        match = false;
        break;
      }
    }
    if (match) {
      std::string_view v = line.substr(kName.size());
      while (!v.empty() && (v.back() == '\r' || v.back() == '\n')) {
        v.remove_suffix(1);
      }
      r->retry_after_ms = parse_retry_after_ms(v);
    }
  }
  return size * n;
}

size_t on_body(char* data, size_t size, size_t n, void* user) {
  auto* r = static_cast<Response*>(user);
  size_t room = r->body.size() < 512 ? 512 - r->body.size() : 0;
  r->body.append(data, std::min(room, size * n));
  return size * n;
}

int on_progress(void* user, curl_off_t, curl_off_t, curl_off_t, curl_off_t) {
  return static_cast<std::atomic<bool>*>(user)->load(std::memory_order_relaxed) ? 1 : 0;
}

// Failures are logged at most once per 10 s per process so a dead collector
// does not flood the log; the counters keep the exact numbers.
bool should_log_failure() {
  static std::atomic<uint64_t> last{0};
  uint64_t now = mono_ns();
  uint64_t prev = last.load(std::memory_order_relaxed);
  if (prev != 0 && now - prev < 10'000'000'000ull) {
    return false;
  }
  return last.compare_exchange_strong(prev, now, std::memory_order_relaxed);
}

}  // namespace

bool is_retryable_status(long status) {
  return status == 429 || status == 502 || status == 503 || status == 504;
}

std::optional<uint64_t> parse_retry_after_ms(std::string_view value, int64_t now_unix_s) {
  while (!value.empty() && (value.front() == ' ' || value.front() == '\t')) value.remove_prefix(1);
  while (!value.empty() && (value.back() == ' ' || value.back() == '\t')) value.remove_suffix(1);
  if (value.empty()) {
    return std::nullopt;
  }
  if (value.front() >= '0' && value.front() <= '9') {
    // delay-seconds
    auto secs = parse_uint(value);
    if (!secs || *secs > 86400) {
      return std::nullopt;
    }
    return *secs * 1000;
  }
  // HTTP-date (RFC 9110 §5.6.7): IMF-fixdate, and the obsolete RFC 850 and
  // asctime forms a recipient must accept too -- all parsed by curl_getdate.
  // It names a time in one-second resolution; a past one means "now".
  if (value.size() > 64) {
    return std::nullopt;
  }
  const std::string text(value);
  const time_t when = curl_getdate(text.c_str(), nullptr);
  if (when == static_cast<time_t>(-1)) {
    return std::nullopt;
  }
  const int64_t delta = static_cast<int64_t>(when) - now_unix_s;
  if (delta <= 0) {
    return 0;
  }
  if (delta > 86400) {
    return std::nullopt;
  }
  return static_cast<uint64_t>(delta) * 1000;
}

std::optional<uint64_t> parse_retry_after_ms(std::string_view value) {
  return parse_retry_after_ms(value, static_cast<int64_t>(unix_ns() / 1'000'000'000ull));
}

uint64_t backoff_ms(const RetryPolicy& p, uint32_t retry, uint64_t random) {
  double d = static_cast<double>(p.initial_backoff_ms);
  for (uint32_t i = 1; i < retry && d < static_cast<double>(p.max_backoff_ms); ++i) {
    d *= p.multiplier;
  }
  d = std::min(d, static_cast<double>(p.max_backoff_ms));
  double jitter = 0.5 + 0.5 * static_cast<double>(random >> 11) / 9007199254740992.0;  // [0.5, 1)
  return static_cast<uint64_t>(d * jitter);
}

OtlpHttpClient::OtlpHttpClient(HttpConfig config) : config_(std::move(config)) {
  global_init();
  if (getrandom(&rng_, sizeof rng_, GRND_NONBLOCK) != static_cast<ssize_t>(sizeof rng_)) {
    rng_ = mono_ns();
  }
  curl_ = curl_easy_init();
  headers_ = curl_slist_append(headers_, config_.protocol == OtlpProtocol::HttpJson
                                             ? "Content-Type: application/json"
                                             : "Content-Type: application/x-protobuf");
  headers_ = curl_slist_append(headers_, "Expect:");  // no 100-continue round trip
  for (const auto& [k, v] : config_.headers) {
    std::string h = k + ": " + v;
    headers_ = curl_slist_append(headers_, h.c_str());
  }
  if (!curl_) {
    WS_LOG(Error, "curl_easy_init failed; OTLP export disabled", {"url", config_.url});
    return;
  }
  CURL* c = static_cast<CURL*>(curl_);
  curl_easy_setopt(c, CURLOPT_URL, config_.url.c_str());
  curl_easy_setopt(c, CURLOPT_HTTPHEADER, headers_);
  curl_easy_setopt(c, CURLOPT_NOSIGNAL, 1L);
  curl_easy_setopt(c, CURLOPT_USERAGENT, "wstrace-otlp-exporter");
  curl_easy_setopt(c, CURLOPT_HEADERFUNCTION, on_header);
  curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, on_body);
  curl_easy_setopt(c, CURLOPT_NOPROGRESS, 0L);
  curl_easy_setopt(c, CURLOPT_XFERINFOFUNCTION, on_progress);
  curl_easy_setopt(c, CURLOPT_XFERINFODATA, &cancelled_);
  curl_easy_setopt(c, CURLOPT_FOLLOWLOCATION, 0L);
}

OtlpHttpClient::~OtlpHttpClient() {
  if (curl_) {
    curl_easy_cleanup(static_cast<CURL*>(curl_));
  }
  curl_slist_free_all(headers_);
}

void OtlpHttpClient::cancel() noexcept {
  cancelled_.store(true, std::memory_order_relaxed);
  std::lock_guard lock(wait_mu_);
  wait_cv_.notify_all();
}

bool OtlpHttpClient::wait_ms(uint64_t ms) {
  std::unique_lock lock(wait_mu_);
  return !wait_cv_.wait_for(lock, std::chrono::milliseconds(ms),
                            [&] { return cancelled_.load(std::memory_order_relaxed); });
}

OtlpHttpClient::Attempt OtlpHttpClient::attempt(const std::string& body, uint64_t timeout_ms) {
  Attempt a;
  CURL* c = static_cast<CURL*>(curl_);
  Response resp;
  curl_easy_setopt(c, CURLOPT_POSTFIELDS, body.data());
  curl_easy_setopt(c, CURLOPT_POSTFIELDSIZE_LARGE, static_cast<curl_off_t>(body.size()));
  curl_easy_setopt(c, CURLOPT_TIMEOUT_MS, static_cast<long>(std::max<uint64_t>(1, timeout_ms)));
  curl_easy_setopt(c, CURLOPT_CONNECTTIMEOUT_MS,
                   static_cast<long>(std::max<uint64_t>(1, timeout_ms)));
  curl_easy_setopt(c, CURLOPT_HEADERDATA, &resp);
  curl_easy_setopt(c, CURLOPT_WRITEDATA, &resp);
  CURLcode rc = curl_easy_perform(c);
  if (rc != CURLE_OK) {
    a.transport_error = true;
    a.cancelled = rc == CURLE_ABORTED_BY_CALLBACK;
    a.error = curl_easy_strerror(rc);
    return a;
  }
  curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &a.status);
  a.retry_after_ms = resp.retry_after_ms;
  if (a.status < 200 || a.status >= 300) {
    a.error = "HTTP " + std::to_string(a.status);
    if (!resp.body.empty()) {
      a.error += ": " + resp.body.substr(0, 200);
    }
  }
  return a;
}

OtlpHttpClient::Result OtlpHttpClient::post(const std::string& body,
                                            uint64_t deadline_mono_ns) noexcept {
  Result r;
  std::lock_guard lock(mu_);
  if (!curl_) {
    r.error = "no curl handle";
    return r;
  }
  try {
    for (uint32_t n = 1;; ++n) {
      if (cancelled_.load(std::memory_order_relaxed)) {
        r.error = "cancelled";
        return r;
      }
      uint64_t now = mono_ns();
      if (now >= deadline_mono_ns) {
        if (r.error.empty()) {
          r.error = "deadline exceeded";
        }
        return r;
      }
      uint64_t left_ms = (deadline_mono_ns - now) / 1'000'000;
      Attempt a = attempt(body, std::min(config_.timeout_ms, std::max<uint64_t>(left_ms, 1)));
      r.attempts = n;
      r.status = a.status;
      if (!a.transport_error && a.status >= 200 && a.status < 300) {
        r.ok = true;
        r.error.clear();
        return r;
      }
      r.error = a.error;
      bool retryable = !a.cancelled && (a.transport_error || is_retryable_status(a.status));
      if (!retryable || n >= config_.retry.max_attempts) {
        return r;
      }
      rng_ = rng_ * 6364136223846793005ull + 1442695040888963407ull;
      uint64_t delay = a.retry_after_ms
                           ? std::min(*a.retry_after_ms, config_.retry.max_retry_after_ms)
                           : backoff_ms(config_.retry, n, rng_);
      if (mono_ns() + delay * 1'000'000 >= deadline_mono_ns) {
        r.error += " (no time left to retry)";
        return r;
      }
      r.last_delay_ms = delay;
      if (!wait_ms(delay)) {
        r.error = "cancelled";
        return r;
      }
    }
  } catch (...) {
    r.error = "out of memory";
    return r;
  }
}

namespace {

// Encodes, posts (with the client's retries), counts, and logs a failure
// (rate-limited). `encode` may throw only std::bad_alloc.
template <typename Encode>
ExportResult post_export(OtlpHttpClient& client, ExportCounters* counters, Encode&& encode,
                         uint64_t deadline_mono_ns, const char* what, size_t items) noexcept {
  OtlpHttpClient::Result r;
  try {
    r = client.post(encode(), deadline_mono_ns);
  } catch (...) {
    r.error = "out of memory";
  }
  if (counters) {
    counters->retries.fetch_add(r.attempts > 1 ? r.attempts - 1 : 0, std::memory_order_relaxed);
    (r.ok ? counters->requests : counters->failures).fetch_add(1, std::memory_order_relaxed);
  }
  if (r.ok) return ExportResult::Success;
  if (should_log_failure()) {
    WS_LOG(Warn, "OTLP export failed; data dropped", {"signal", what},
           {"url", client.config().url}, {"items", items}, {"attempts", r.attempts},
           {"error", r.error});
  }
  return ExportResult::Failure;
}

}  // namespace

OtlpSpanExporter::OtlpSpanExporter(HttpConfig config, Resource resource, Scope scope,
                                   ExportCounters* counters)
    : client_(std::move(config)),
      resource_(std::move(resource)),
      scope_(std::move(scope)),
      counters_(counters) {}

ExportResult OtlpSpanExporter::export_spans(const std::vector<SpanPtr>& batch,
                                            uint64_t deadline_mono_ns) noexcept {
  const bool json = client_.config().protocol == OtlpProtocol::HttpJson;
  return post_export(
      client_, counters_,
      [&] {
        return json ? encode_traces_json(resource_, scope_, batch)
                    : encode_traces_protobuf(resource_, scope_, batch);
      },
      deadline_mono_ns, "traces", batch.size());
}

OtlpMetricExporter::OtlpMetricExporter(HttpConfig config, Resource resource, Scope scope,
                                       ExportCounters* counters)
    : client_(std::move(config)),
      resource_(std::move(resource)),
      scope_(std::move(scope)),
      counters_(counters) {}

ExportResult OtlpMetricExporter::export_metrics(const MetricsSnapshot& snapshot,
                                                uint64_t deadline_mono_ns) noexcept {
  const bool json = client_.config().protocol == OtlpProtocol::HttpJson;
  return post_export(
      client_, counters_,
      [&] {
        return json ? encode_metrics_json(resource_, scope_, snapshot)
                    : encode_metrics_protobuf(resource_, scope_, snapshot);
      },
      deadline_mono_ns, "metrics", snapshot.metrics.size());
}

}  // namespace wstrace::telemetry
