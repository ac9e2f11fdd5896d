#include "telemetry/config.h"

#include <gtest/gtest.h>

#include <map>

#include "telemetry/env_parse.h"

namespace wstrace::telemetry {
namespace {

struct FakeEnv {
  std::map<std::string, std::string> vars;
  EnvFn fn() const {
    return [this](const char* name) -> const char* {
      auto it = vars.find(name);
      return it == vars.end() ? nullptr : it->second.c_str();
    };
  }
};

TelemetryConfig load(const FakeEnv& env, TelemetryOptions o = {}) {
  o.env = env.fn();
  return load_config(o);
}

std::string str_attr(const Resource& r, std::string_view k) {
  const AttrValue* v = r.find(k);
  return v && v->index() == 3 ? std::get<std::string>(*v) : std::string("<missing>");
}

TEST(EnvParse, PercentDecode) {
  EXPECT_EQ(percent_decode("a%20b%2Cc"), "a b,c");
  EXPECT_EQ(percent_decode("100%25"), "100%");
  EXPECT_FALSE(percent_decode("bad%2"));
  EXPECT_FALSE(percent_decode("bad%zz"));
  EXPECT_FALSE(percent_decode("%"));
}

TEST(EnvParse, KeyValueList) {
  auto l = parse_key_value_list(" a = 1 ,b=x%3Dy,, c=");
  ASSERT_TRUE(l);
  ASSERT_EQ(l->size(), 3u);
  EXPECT_EQ((*l)[0], (std::pair<std::string, std::string>{"a", "1"}));
  EXPECT_EQ((*l)[1].second, "x=y");
  EXPECT_EQ((*l)[2].second, "");
  EXPECT_FALSE(parse_key_value_list("novalue"));
  EXPECT_FALSE(parse_key_value_list("=v"));
  EXPECT_FALSE(parse_key_value_list("k=%G1"));
  EXPECT_TRUE(parse_key_value_list("")->empty());
}

TEST(EnvParse, Numbers) {
  EXPECT_EQ(parse_uint(" 42 "), 42u);
  EXPECT_FALSE(parse_uint("-1"));
  EXPECT_FALSE(parse_uint("1.5"));
  EXPECT_FALSE(parse_uint("99999999999999999999"));
  EXPECT_EQ(parse_bool("TRUE"), true);
  EXPECT_EQ(parse_bool("false"), false);
  EXPECT_FALSE(parse_bool("yes"));
}

TEST(Config, Defaults) {
  FakeEnv env;
  auto c = load(env);
  EXPECT_FALSE(c.sdk_disabled);
  EXPECT_EQ(str_attr(c.resource, "service.name"), "wstrace");
  EXPECT_EQ(str_attr(c.resource, "telemetry.sdk.language"), "cpp");
  EXPECT_NE(str_attr(c.resource, "host.name"), "<missing>");
  EXPECT_EQ(c.sampler.type(), Sampler::Type::ParentBasedAlwaysOn);
  EXPECT_EQ(c.bsp.max_queue_size, 2048u);
  EXPECT_EQ(c.bsp.schedule_delay_ms, 5000u);
  EXPECT_EQ(c.bsp.max_export_batch_size, 512u);
  EXPECT_EQ(c.bsp.export_timeout_ms, 30000u);
  EXPECT_EQ(c.metric_export_interval_ms, 60000u);
  EXPECT_EQ(c.limits.attribute_count, 128u);
  EXPECT_FALSE(c.traces);   // no endpoint: nothing exported
  EXPECT_FALSE(c.metrics);
}

TEST(Config, ResourceAndOverrides) {
  FakeEnv env;
  env.vars["OTEL_RESOURCE_ATTRIBUTES"] =
      "deployment.environment=prod,service.name=fromattrs,team=a%20b,service.instance.id=env";
  TelemetryOptions o;
  o.service_version = "1.2.3";
  o.node_id = "node-7";
  auto c = load(env, o);
  EXPECT_EQ(str_attr(c.resource, "service.name"), "fromattrs");
  EXPECT_EQ(str_attr(c.resource, "team"), "a b");
  EXPECT_EQ(str_attr(c.resource, "service.version"), "1.2.3");
  EXPECT_EQ(str_attr(c.resource, "service.instance.id"), "node-7");
  EXPECT_EQ(c.scope.version, "1.2.3");
  env.vars["OTEL_SERVICE_NAME"] = "svc";
  EXPECT_EQ(str_attr(load(env).resource, "service.name"), "svc");
  env.vars["OTEL_RESOURCE_ATTRIBUTES"] = "broken";
  auto c2 = load(env);
  EXPECT_EQ(c2.resource.find("deployment.environment"), nullptr);
}

TEST(Config, Endpoints) {
  FakeEnv env;
  env.vars["OTEL_EXPORTER_OTLP_ENDPOINT"] = "http://collector:4318/";
  auto c = load(env);
  ASSERT_TRUE(c.traces);
  ASSERT_TRUE(c.metrics);
  EXPECT_EQ(c.traces->url, "http://collector:4318/v1/traces");
  EXPECT_EQ(c.metrics->url, "http://collector:4318/v1/metrics");
  EXPECT_EQ(c.traces->protocol, OtlpProtocol::HttpProtobuf);
  EXPECT_EQ(c.traces->timeout_ms, 10000u);
  env.vars["OTEL_EXPORTER_OTLP_TRACES_ENDPOINT"] = "https://x.example/custom";
  env.vars["OTEL_EXPORTER_OTLP_PROTOCOL"] = "http/json";
  env.vars["OTEL_EXPORTER_OTLP_METRICS_PROTOCOL"] = "grpc";  // unsupported -> protobuf
  env.vars["OTEL_EXPORTER_OTLP_HEADERS"] = "a=1,b=2";
  env.vars["OTEL_EXPORTER_OTLP_TRACES_HEADERS"] = "b=3";
  env.vars["OTEL_EXPORTER_OTLP_TIMEOUT"] = "2000";
  env.vars["OTEL_EXPORTER_OTLP_METRICS_TIMEOUT"] = "oops";
  c = load(env);
  EXPECT_EQ(c.traces->url, "https://x.example/custom");
  EXPECT_EQ(c.traces->protocol, OtlpProtocol::HttpJson);
  EXPECT_EQ(c.metrics->protocol, OtlpProtocol::HttpProtobuf);
  EXPECT_EQ(c.traces->headers,
            (KeyValueList{{"a", "1"}, {"b", "3"}}));
  EXPECT_EQ(c.metrics->headers, (KeyValueList{{"a", "1"}, {"b", "2"}}));
  EXPECT_EQ(c.traces->timeout_ms, 2000u);
  EXPECT_EQ(c.metrics->timeout_ms, 2000u);
  env.vars["OTEL_METRICS_EXPORTER"] = "none";
  EXPECT_FALSE(load(env).metrics);
  env.vars["OTEL_EXPORTER_OTLP_TRACES_ENDPOINT"] = "collector:4318";
  EXPECT_FALSE(load(env).traces);  // not a URL: warned, disabled
}

TEST(Config, PerSignalVariables) {
  FakeEnv env;
  env.vars["OTEL_EXPORTER_OTLP_ENDPOINT"] = "http://base:4318";
  env.vars["OTEL_EXPORTER_OTLP_METRICS_ENDPOINT"] = "http://m.example:9/own/path";
  env.vars["OTEL_EXPORTER_OTLP_TIMEOUT"] = "3000";
  env.vars["OTEL_EXPORTER_OTLP_TRACES_TIMEOUT"] = "1234";
  env.vars["OTEL_EXPORTER_OTLP_HEADERS"] = "a=1,b=2";
  env.vars["OTEL_EXPORTER_OTLP_METRICS_HEADERS"] = "b=m,c=%20x";
  env.vars["OTEL_EXPORTER_OTLP_TRACES_PROTOCOL"] = "http/json";
  env.vars["OTEL_METRIC_EXPORT_TIMEOUT"] = "777";
  auto c = load(env);
  ASSERT_TRUE(c.traces);
  ASSERT_TRUE(c.metrics);
  EXPECT_EQ(c.traces->url, "http://base:4318/v1/traces");
  EXPECT_EQ(c.metrics->url, "http://m.example:9/own/path");  // used as is
  EXPECT_EQ(c.traces->timeout_ms, 1234u);                    // per-signal wins
  EXPECT_EQ(c.metrics->timeout_ms, 3000u);
  EXPECT_EQ(c.traces->headers, (KeyValueList{{"a", "1"}, {"b", "2"}}));
  EXPECT_EQ(c.metrics->headers, (KeyValueList{{"a", "1"}, {"b", "m"}, {"c", " x"}}));
  EXPECT_EQ(c.traces->protocol, OtlpProtocol::HttpJson);
  EXPECT_EQ(c.metrics->protocol, OtlpProtocol::HttpProtobuf);
  EXPECT_EQ(c.metric_export_timeout_ms, 777u);
  env.vars["OTEL_METRIC_EXPORT_TIMEOUT"] = "soon";
  EXPECT_EQ(load(env).metric_export_timeout_ms, 30000u);  // bad: the default
  env.vars["OTEL_EXPORTER_OTLP_TRACES_TIMEOUT"] = "-1";
  EXPECT_EQ(load(env).traces->timeout_ms, 3000u);  // bad: the general one
  env.vars["OTEL_TRACES_EXPORTER"] = "none";
  c = load(env);
  EXPECT_FALSE(c.traces);
  EXPECT_TRUE(c.metrics);
  env.vars["OTEL_TRACES_EXPORTER"] = "otlp";
  EXPECT_TRUE(load(env).traces);
}

TEST(Config, SpanLimitVariables) {
  FakeEnv env;
  env.vars["OTEL_ATTRIBUTE_COUNT_LIMIT"] = "20";
  env.vars["OTEL_ATTRIBUTE_VALUE_LENGTH_LIMIT"] = "64";
  auto c = load(env);
  // The general limits apply wherever no specific one is set.
  EXPECT_EQ(c.limits.attribute_count, 20u);
  EXPECT_EQ(c.limits.attributes_per_event, 20u);
  EXPECT_EQ(c.limits.attributes_per_link, 20u);
  EXPECT_EQ(c.limits.attribute_value_length, 64u);
  EXPECT_EQ(c.limits.event_count, 128u);
  EXPECT_EQ(c.limits.link_count, 128u);
  env.vars["OTEL_SPAN_ATTRIBUTE_COUNT_LIMIT"] = "7";
  env.vars["OTEL_SPAN_ATTRIBUTE_VALUE_LENGTH_LIMIT"] = "9";
  env.vars["OTEL_SPAN_EVENT_COUNT_LIMIT"] = "3";
  env.vars["OTEL_SPAN_LINK_COUNT_LIMIT"] = "2";
  env.vars["OTEL_EVENT_ATTRIBUTE_COUNT_LIMIT"] = "5";
  env.vars["OTEL_LINK_ATTRIBUTE_COUNT_LIMIT"] = "4";
  c = load(env);
  EXPECT_EQ(c.limits.attribute_count, 7u);
  EXPECT_EQ(c.limits.attribute_value_length, 9u);
  EXPECT_EQ(c.limits.event_count, 3u);
  EXPECT_EQ(c.limits.link_count, 2u);
  EXPECT_EQ(c.limits.attributes_per_event, 5u);
  EXPECT_EQ(c.limits.attributes_per_link, 4u);
  env.vars["OTEL_SPAN_LINK_COUNT_LIMIT"] = "many";
  EXPECT_EQ(load(env).limits.link_count, 128u);  // bad: the default
}

TEST(Config, BadValuesFallBack) {
  FakeEnv env;
  env.vars["OTEL_BSP_MAX_QUEUE_SIZE"] = "-5";
  env.vars["OTEL_BSP_SCHEDULE_DELAY"] = "abc";
  env.vars["OTEL_BSP_MAX_EXPORT_BATCH_SIZE"] = "4096";  // > queue: clamped
  env.vars["OTEL_METRIC_EXPORT_INTERVAL"] = "0";
  env.vars["OTEL_SDK_DISABLED"] = "maybe";
  env.vars["OTEL_TRACES_SAMPLER"] = "nonsense";
  env.vars["OTEL_SPAN_ATTRIBUTE_COUNT_LIMIT"] = "16";
  auto c = load(env);
  EXPECT_EQ(c.bsp.max_queue_size, 2048u);
  EXPECT_EQ(c.bsp.schedule_delay_ms, 5000u);
  EXPECT_EQ(c.bsp.max_export_batch_size, 2048u);
  EXPECT_EQ(c.metric_export_interval_ms, 60000u);
  EXPECT_FALSE(c.sdk_disabled);
  EXPECT_EQ(c.sampler.type(), Sampler::Type::ParentBasedAlwaysOn);
  EXPECT_EQ(c.limits.attribute_count, 16u);
}

TEST(Config, SdkDisabledExportsNothing) {
  FakeEnv env;
  env.vars["OTEL_SDK_DISABLED"] = "true";
  env.vars["OTEL_EXPORTER_OTLP_ENDPOINT"] = "http://127.0.0.1:1";
  auto c = load(env);
  EXPECT_TRUE(c.sdk_disabled);
  EXPECT_FALSE(c.traces);
  EXPECT_FALSE(c.metrics);
}

}  // namespace
}  // namespace wstrace::telemetry
