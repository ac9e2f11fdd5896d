#include "telemetry/otlp_http.h"

#include <gtest/gtest.h>

#include <ctime>
#include <future>

#include "proto_decoder.h"
#include "test_http_server.h"
#include "test_spans.h"
#include "util/clock.h"

namespace wstrace::telemetry {
namespace {

using testing::TestHttpServer;

uint64_t in_ms(uint64_t ms) { return mono_ns() + ms * 1'000'000ull; }

HttpConfig config_for(const std::string& url) {
  HttpConfig c;
  c.url = url;
  c.timeout_ms = 5000;
  c.retry.initial_backoff_ms = 1;
  c.retry.max_backoff_ms = 5;
  return c;
}

TEST(RetryLogic, RetryableStatusesAndRetryAfter) {
  for (long s : {429L, 502L, 503L, 504L}) {
    EXPECT_TRUE(is_retryable_status(s)) << s;
  }
  for (long s : {200L, 400L, 401L, 404L, 413L, 500L, 501L}) {
    EXPECT_FALSE(is_retryable_status(s)) << s;
  }
  EXPECT_EQ(parse_retry_after_ms(" 3"), 3000u);
  EXPECT_EQ(parse_retry_after_ms("0"), 0u);
  EXPECT_FALSE(parse_retry_after_ms("-1"));
  EXPECT_FALSE(parse_retry_after_ms(""));
  EXPECT_FALSE(parse_retry_after_ms("soon"));
  EXPECT_FALSE(parse_retry_after_ms("3 seconds"));
}

TEST(RetryLogic, RetryAfterHttpDate) {
  // RFC 9110 §5.6.7: IMF-fixdate, and the obsolete RFC 850 and asctime
  // forms, all for Sun, 06 Nov 1994 08:49:37 GMT = 784111777.
  constexpr int64_t kDate = 784111777;
  EXPECT_EQ(parse_retry_after_ms("Sun, 06 Nov 1994 08:49:37 GMT", kDate - 7), 7000u);
  EXPECT_EQ(parse_retry_after_ms("Sunday, 06-Nov-94 08:49:37 GMT", kDate - 2), 2000u);
  EXPECT_EQ(parse_retry_after_ms("Sun Nov  6 08:49:37 1994", kDate - 1), 1000u);
  EXPECT_EQ(parse_retry_after_ms(" Sun, 06 Nov 1994 08:49:37 GMT ", kDate - 3), 3000u);
  // In the past (or now): retry at once.
  EXPECT_EQ(parse_retry_after_ms("Sun, 06 Nov 1994 08:49:37 GMT", kDate + 60), 0u);
  EXPECT_EQ(parse_retry_after_ms("Sun, 06 Nov 1994 08:49:37 GMT", kDate), 0u);
  // More than a day away: not trusted.
  EXPECT_FALSE(parse_retry_after_ms("Sun, 06 Nov 1994 08:49:37 GMT", kDate - 86401));
  EXPECT_FALSE(parse_retry_after_ms("Sun, 99 Nov 1994 08:49:37 GMT", kDate));
}

TEST(RetryLogic, BackoffGrowsCappedAndJittered) {
  RetryPolicy p;  // 1 s, x1.5, max 5 s
  EXPECT_EQ(backoff_ms(p, 1, 0), 500u);          // jitter floor 0.5
  EXPECT_NEAR(backoff_ms(p, 1, UINT64_MAX), 1000u, 1);
  EXPECT_NEAR(backoff_ms(p, 2, UINT64_MAX), 1500u, 1);
  EXPECT_NEAR(backoff_ms(p, 3, UINT64_MAX), 2250u, 1);
  EXPECT_NEAR(backoff_ms(p, 10, UINT64_MAX), 5000u, 1);
  EXPECT_EQ(backoff_ms(p, 10, 0), 2500u);
  for (uint32_t r = 1; r < 20; ++r) {
    uint64_t d = backoff_ms(p, r, r * 0x9e3779b97f4a7c15ull);
    EXPECT_GE(d, 500u);
    EXPECT_LE(d, 5000u);
  }
}

TEST(OtlpHttp, RetriesOn503HonouringRetryAfterThenSucceeds) {
  TestHttpServer server;
  server.script({503, "Retry-After: 1\r\n"});
  server.script({200, ""});
  HttpConfig cfg = config_for(server.url("/v1/traces"));
  cfg.headers = {{"authorization", "Bearer t"}, {"x-tenant", "a b"}};
  OtlpHttpClient client(cfg);
  auto r = client.post("payload", in_ms(20'000));
  EXPECT_TRUE(r.ok) << r.error;
  EXPECT_EQ(r.attempts, 2u);
  EXPECT_EQ(r.status, 200);
  EXPECT_EQ(r.last_delay_ms, 1000u);  // Retry-After, not the 1-5 ms backoff
  auto reqs = server.requests();
  ASSERT_EQ(reqs.size(), 2u);
  for (const auto& q : reqs) {
    EXPECT_EQ(q.method, "POST");
    EXPECT_EQ(q.path, "/v1/traces");
    EXPECT_EQ(q.body, "payload");
    EXPECT_NE(q.headers.find("Content-Type: application/x-protobuf"), std::string::npos);
    EXPECT_NE(q.headers.find("authorization: Bearer t"), std::string::npos);
    EXPECT_NE(q.headers.find("x-tenant: a b"), std::string::npos);
  }
}

TEST(OtlpHttp, BackoffOn429And502) {
  TestHttpServer server;
  server.script({429, ""});
  server.script({502, ""});
  server.script({504, ""});
  OtlpHttpClient client(config_for(server.url("/v1/metrics")));
  auto r = client.post("x", in_ms(20'000));
  EXPECT_TRUE(r.ok);
  EXPECT_EQ(r.attempts, 4u);
  EXPECT_LE(r.last_delay_ms, 5u);
}

TEST(OtlpHttp, NonRetryableFailsAtOnce) {
  TestHttpServer server;
  server.script({400, ""});
  OtlpHttpClient client(config_for(server.url("/v1/traces")));
  auto r = client.post("x", in_ms(20'000));
  EXPECT_FALSE(r.ok);
  EXPECT_EQ(r.attempts, 1u);
  EXPECT_EQ(r.status, 400);
}

TEST(OtlpHttp, BoundedAttempts) {
  TestHttpServer server;
  for (int i = 0; i < 10; ++i) {
    server.script({503, ""});
  }
  HttpConfig cfg = config_for(server.url("/v1/traces"));
  cfg.retry.max_attempts = 3;
  OtlpHttpClient client(cfg);
  auto r = client.post("x", in_ms(20'000));
  EXPECT_FALSE(r.ok);
  EXPECT_EQ(r.attempts, 3u);
  EXPECT_EQ(server.requests().size(), 3u);
}

// An HTTP-date Retry-After is honoured like delay-seconds, capped by
// max_retry_after_ms: a date 30 s away waits the 1 s cap, not the 1-5 ms
// computed backoff.
TEST(OtlpHttp, RetriesHonouringAnHttpDateRetryAfter) {
  char date[64];
  const time_t when = static_cast<time_t>(unix_ns() / 1'000'000'000ull) + 30;
  struct tm tm_utc;
  gmtime_r(&when, &tm_utc);
  strftime(date, sizeof date, "%a, %d %b %Y %H:%M:%S GMT", &tm_utc);
  TestHttpServer server;
  server.script({503, std::string("Retry-After: ") + date + "\r\n"});
  HttpConfig cfg = config_for(server.url("/v1/traces"));
  cfg.retry.max_retry_after_ms = 1000;
  OtlpHttpClient client(cfg);
  auto r = client.post("x", in_ms(20'000));
  EXPECT_TRUE(r.ok) << r.error;
  EXPECT_EQ(r.attempts, 2u);
  EXPECT_EQ(r.last_delay_ms, 1000u);
}

TEST(OtlpHttp, RetryAfterBeyondDeadlineGivesUp) {
  TestHttpServer server;
  server.script({503, "Retry-After: 20\r\n"});
  OtlpHttpClient client(config_for(server.url("/v1/traces")));
  auto r = client.post("x", in_ms(2'000));
  EXPECT_FALSE(r.ok);
  EXPECT_EQ(r.attempts, 1u);
}

TEST(OtlpHttp, ConnectionRefusedIsRetriedThenFails) {
  int port;
  {
    TestHttpServer gone;  // take a free port, then close it
    port = gone.port();
  }
  HttpConfig cfg = config_for("http://127.0.0.1:" + std::to_string(port) + "/v1/traces");
  cfg.retry.max_attempts = 3;
  OtlpHttpClient client(cfg);
  auto r = client.post("x", in_ms(20'000));
  EXPECT_FALSE(r.ok);
  EXPECT_EQ(r.attempts, 3u);
  EXPECT_FALSE(r.error.empty());
}

TEST(OtlpHttp, CancelAbortsAStalledRequest) {
  TestHttpServer server;
  server.script({200, "", /*stall=*/true});
  OtlpHttpClient client(config_for(server.url("/v1/traces")));
  auto fut = std::async(std::launch::async, [&] { return client.post("x", in_ms(60'000)); });
  ASSERT_TRUE(server.wait_requests(1));
  client.cancel();
  auto r = fut.get();
  EXPECT_FALSE(r.ok);
}

TEST(OtlpHttp, SpanExporterSendsProtobufAndJson) {
  TestHttpServer server;
  ExportCounters counters;
  std::vector<SpanPtr> batch = {std::make_shared<SpanData>(testing::sample_span())};
  {
    OtlpSpanExporter ex(config_for(server.url("/v1/traces")), {}, {}, &counters);
    EXPECT_EQ(ex.export_spans(batch, in_ms(10'000)), ExportResult::Success);
  }
  {
    HttpConfig cfg = config_for(server.url("/v1/traces"));
    cfg.protocol = OtlpProtocol::HttpJson;
    OtlpSpanExporter ex(cfg, {}, {}, &counters);
    EXPECT_EQ(ex.export_spans(batch, in_ms(10'000)), ExportResult::Success);
  }
  server.script({400, ""});
  {
    OtlpSpanExporter ex(config_for(server.url("/v1/traces")), {}, {}, &counters);
    EXPECT_EQ(ex.export_spans(batch, in_ms(10'000)), ExportResult::Failure);
  }
  auto reqs = server.requests();
  ASSERT_EQ(reqs.size(), 3u);
  auto span = testing::sub(testing::sub(testing::sub(testing::decode(reqs[0].body), 1), 2), 2);
  EXPECT_EQ(span.str(5), "websocket.connection");
  EXPECT_NE(reqs[1].headers.find("Content-Type: application/json"), std::string::npos);
  EXPECT_EQ(reqs[1].body.rfind("{\"resourceSpans\":", 0), 0u);
  EXPECT_EQ(counters.requests.load(), 2u);
  EXPECT_EQ(counters.failures.load(), 1u);
}

}  // namespace
}  // namespace wstrace::telemetry
