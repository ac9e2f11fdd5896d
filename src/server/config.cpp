#include "server/config.h"

#include <unistd.h>

#include <CLI/CLI.hpp>
#include <cstdlib>
#include <functional>
#include <iostream>
#include <optional>
#include <toml++/toml.h>

#include "cluster/redis_url.h"
#include "util/units.h"
#include "version.h"

namespace wstrace::server {
namespace {

using Setter = std::function<bool(Config&, const std::string&, std::string& why)>;

struct Option {
  const char* name;      // flag without dashes; env WSTRACE_<NAME>, TOML key <name>
  const char* kind;      // ADDR, SIZE, DURATION, N, BOOL, TEXT, LIST, ...
  const char* fallback;  // default as text (shown in --help)
  const char* help;
  Setter set;
};

// Frames, buffers and outbound queues count bytes in 32 bits.
constexpr uint64_t kMaxSize = 1ull << 30;

bool set_size(uint64_t& field, const std::string& v, std::string& why) {
  auto n = parse_size(v);
  if (!n) {
    why = "is not a size (examples: 512, 64KiB, 1MiB)";
    return false;
  }
  if (*n > kMaxSize) {
    why = "is larger than the largest supported size, 1GiB";
    return false;
  }
  field = *n;
  return true;
}

bool set_duration(uint64_t& field, const std::string& v, std::string& why) {
  auto n = parse_duration_ns(v);
  if (!n) {
    why = "is not a duration (examples: 500ms, 30s, 2m)";
    return false;
  }
  field = *n;
  return true;
}

template <typename T>
bool set_uint(T& field, const std::string& v, std::string& why, uint64_t max) {
  char* end = nullptr;
  errno = 0;
  unsigned long long n = std::strtoull(v.c_str(), &end, 10);
  if (v.empty() || *end != 0 || errno != 0 || n > max || v[0] == '-') {
    why = "is not a whole number between 0 and " + std::to_string(max);
    return false;
  }
  field = static_cast<T>(n);
  return true;
}

bool set_bool(bool& field, const std::string& v, std::string& why) {
  if (v == "true" || v == "1" || v == "on" || v == "yes") {
    field = true;
  } else if (v == "false" || v == "0" || v == "off" || v == "no") {
    field = false;
  } else {
    why = "is not a boolean (true/false, on/off, 1/0)";
    return false;
  }
  return true;
}

const std::vector<Option>& options() {
  static const std::vector<Option> kOptions = {
      {"listen", "ADDR", "0.0.0.0:8080",
       "WebSocket listener, host:port ([::]:port for IPv6; port 0 picks a free one). "
       "Clients connect to ws://ADDR/ws.",
       [](Config& c, const std::string& v, std::string&) { return c.listen = v, true; }},
      {"admin", "ADDR", "127.0.0.1:9464",
       "Admin HTTP listener (/metrics, /healthz, /readyz, /api/...), or 'off'. Read-only; "
       "keep it on loopback or behind a firewall.",
       [](Config& c, const std::string& v, std::string&) { return c.admin = v, true; }},
      {"threads", "N", "0",
       "Event-loop threads; connections are spread over them. 0 = one per CPU core.",
       [](Config& c, const std::string& v, std::string& why) {
         return set_uint(c.threads, v, why, 256);
       }},
      {"redis", "URL", "",
       "Join a cluster through Redis Pub/Sub: redis://[user:password@]host:port[/db]. "
       "Empty = standalone (in-process pub/sub).",
       [](Config& c, const std::string& v, std::string& why) {
         if (!v.empty() && !cluster::parse_redis_url(v, &why)) return false;
         c.redis = v;
         return true;
       }},
      {"redis-prefix", "TEXT", "wstrace",
       "Names this cluster in Redis: a channel C is the Redis channel PREFIX:C. Clusters that "
       "share one Redis need different prefixes (Pub/Sub ignores the /db of the URL).",
       [](Config& c, const std::string& v, std::string& why) {
         if (v.empty() || v.size() > 64) {
           why = "must be 1 to 64 characters";
           return false;
         }
         for (unsigned char ch : v) {
           if (ch <= ' ' || ch == 0x7f) {
             why = "must not contain spaces or control characters";
             return false;
           }
         }
         c.redis_prefix = v;
         return true;
       }},
      {"node-id", "TEXT", "<hostname>-<pid>",
       "This node's name in the cluster, in logs and as service.instance.id.",
       [](Config& c, const std::string& v, std::string&) { return c.node_id = v, true; }},
      {"heartbeat-interval", "DURATION", "30s",
       "Send a WebSocket Ping to every client this often (0 = never).",
       [](Config& c, const std::string& v, std::string& why) {
         return set_duration(c.heartbeat_interval_ns, v, why);
       }},
      {"client-timeout", "DURATION", "60s",
       "Close a client (code 4408) after this long without any frame from it (0 = never).",
       [](Config& c, const std::string& v, std::string& why) {
         return set_duration(c.client_timeout_ns, v, why);
       }},
      {"handshake-timeout", "DURATION", "10s",
       "Close a connection that has not completed its HTTP upgrade after this long.",
       [](Config& c, const std::string& v, std::string& why) {
         return set_duration(c.handshake_timeout_ns, v, why);
       }},
      {"close-timeout", "DURATION", "2s",
       "After sending a Close frame, wait this long for the client's before dropping it.",
       [](Config& c, const std::string& v, std::string& why) {
         return set_duration(c.close_timeout_ns, v, why);
       }},
      {"shutdown-timeout", "DURATION", "10s",
       "On SIGTERM/SIGINT: time allowed for the close handshakes and the telemetry flush.",
       [](Config& c, const std::string& v, std::string& why) {
         return set_duration(c.shutdown_timeout_ns, v, why);
       }},
      {"max-message-size", "SIZE", "1MiB",
       "Largest message accepted from a client, on the wire and after decompression; "
       "larger closes the connection with 1009.",
       [](Config& c, const std::string& v, std::string& why) {
         return set_size(c.max_message_size, v, why);
       }},
      {"max-content-size", "SIZE", "64KiB",
       "Largest 'content' of a published Message; larger is answered with Error "
       "message_too_large (the connection stays open).",
       [](Config& c, const std::string& v, std::string& why) {
         return set_size(c.max_content_size, v, why);
       }},
      {"max-backpressure", "SIZE", "1MiB",
       "Outbound bytes queued for one client; past it the client is closed with 4429 "
       "(slow consumer).",
       [](Config& c, const std::string& v, std::string& why) {
         return set_size(c.max_backpressure, v, why);
       }},
      {"max-connections", "N", "0",
       "Most WebSocket connections at once; the next upgrade gets HTTP 503. 0 = as many as "
       "the open-files limit allows.",
       [](Config& c, const std::string& v, std::string& why) {
         return set_uint(c.max_connections, v, why, 1ull << 40);
       }},
      {"max-subscriptions", "N", "100",
       "Channels one connection may subscribe to; more gets Error too_many_subscriptions.",
       [](Config& c, const std::string& v, std::string& why) {
         return set_uint(c.max_subscriptions, v, why, 65535);
       }},
      {"rate-limit", "N", "0",
       "Messages per second one connection may send; more gets Error rate_limited and is "
       "dropped. 0 = unlimited.",
       [](Config& c, const std::string& v, std::string& why) {
         return set_uint(c.rate_limit, v, why, 1u << 30);
       }},
      {"compression", "off|on", "off",
       "permessage-deflate (RFC 7692). Broadcasts are compressed once and shared.",
       [](Config& c, const std::string& v, std::string& why) {
         return set_bool(c.compression, v, why);
       }},
      {"allowed-origins", "LIST", "",
       "Comma-separated Origins browsers may connect from (https://app.example.com, "
       "https://*.example.com, *). Empty = any. Others get HTTP 403.",
       [](Config& c, const std::string& v, std::string&) {
         c.allowed_origins.clear();
         size_t start = 0;
         while (start <= v.size()) {
           size_t comma = v.find(',', start);
           std::string item = v.substr(start, comma == std::string::npos ? std::string::npos
                                                                          : comma - start);
           while (!item.empty() && item.front() == ' ') item.erase(item.begin());
           while (!item.empty() && item.back() == ' ') item.pop_back();
           if (!item.empty()) c.allowed_origins.push_back(item);
           if (comma == std::string::npos) break;
           start = comma + 1;
         }
         return true;
       }},
      {"auth-secret", "TEXT", "",
       "Require a JWT (HS256, signed with this secret) to subscribe and publish. Clients pass "
       "it as ?token= or 'Authorization: Bearer'. Empty = no authentication.",
       [](Config& c, const std::string& v, std::string&) { return c.auth_secret = v, true; }},
      {"log-level", "LEVEL", "info", "trace, debug, info, warn, error or off.",
       [](Config& c, const std::string& v, std::string& why) {
         if (log::parse_level(v, c.log_level)) return true;
         why = "is not a log level (trace, debug, info, warn, error, off)";
         return false;
       }},
      {"log-format", "text|json", "text", "Human-readable lines or one JSON object per line.",
       [](Config& c, const std::string& v, std::string& why) {
         if (log::parse_format(v, c.log_format)) return true;
         why = "is not a log format (text, json)";
         return false;
       }},
      {"echo", "BOOL", "false",
       "Also serve /echo: a plain echo endpoint on the same engine, for conformance suites.",
       [](Config& c, const std::string& v, std::string& why) { return set_bool(c.echo, v, why); }},
      {"trace-buffer", "N", "256", "Finished spans kept in memory for /api/traces (about 0.8 KiB each).",
       [](Config& c, const std::string& v, std::string& why) {
         return set_uint(c.trace_buffer, v, why, 1000000);
       }},
      {"channel-metrics", "N", "0",
       "Label per-channel metrics with the N busiest channels (the rest as 'other'). 0 = no "
       "channel label.",
       [](Config& c, const std::string& v, std::string& why) {
         return set_uint(c.channel_metrics, v, why, 1000);
       }},
  };
  return kOptions;
}

std::string env_name(const char* name) {
  std::string out = "WSTRACE_";
  for (const char* p = name; *p; ++p) out.push_back(*p == '-' ? '_' : static_cast<char>(toupper(*p)));
  return out;
}

std::string toml_value_text(const toml::node& node) {
  // value_exact: value<bool>() would also convert an integer (12 -> true).
  if (auto s = node.value_exact<std::string>()) return *s;
  if (auto b = node.value_exact<bool>()) return *b ? "true" : "false";
  if (auto i = node.value_exact<int64_t>()) return std::to_string(*i);
  if (auto d = node.value_exact<double>()) return std::to_string(*d);
  if (const auto* arr = node.as_array()) {
    std::string out;
    for (const auto& item : *arr) {
      if (!out.empty()) out += ",";
      out += toml_value_text(item);
    }
    return out;
  }
  return {};
}

constexpr const char* kFooter = R"(
Every option is also an environment variable WSTRACE_<NAME> (e.g.
WSTRACE_MAX_CONNECTIONS=50000) and a key in the TOML file given with --config
(e.g. max-connections = 50000). Precedence: flag > environment > file > default.
Sizes take units (512, 64KiB, 1MiB); durations take units (500ms, 30s, 2m).

OpenTelemetry is configured with its standard variables:
  OTEL_EXPORTER_OTLP_ENDPOINT     export traces and metrics over OTLP/HTTP (none: keep
                                  recent spans in memory only, served by /api/traces)
  OTEL_EXPORTER_OTLP_PROTOCOL     http/protobuf (default) or http/json
  OTEL_TRACES_SAMPLER[_ARG]       parentbased_always_on (default), traceidratio 0.01, ...
  OTEL_SERVICE_NAME, OTEL_RESOURCE_ATTRIBUTES, OTEL_SDK_DISABLED=true, OTEL_BSP_*,
  OTEL_METRIC_EXPORT_INTERVAL, OTEL_EXPORTER_OTLP_HEADERS

Examples:
  wstrace                                   # ws://0.0.0.0:8080/ws, admin on 127.0.0.1:9464
  wstrace --listen 127.0.0.1:9000 --compression on --log-format json
  wstrace --redis redis://127.0.0.1:6379 --node-id edge-1
)";

}  // namespace

int load_config(int argc, char** argv, Config& out) {
  CLI::App app{"wstrace — WebSocket pub/sub server with OpenTelemetry traces and metrics"};
  app.set_version_flag("--version", std::string("wstrace ") + WSTRACE_VERSION);
  app.footer(kFooter);
  app.get_formatter()->column_width(34);

  std::string config_file;
  app.add_option("--config", config_file, "TOML file with options (keys as below, without --)")
      ->type_name("FILE");
  const auto& opts = options();
  std::vector<std::string> flag_values(opts.size());
  std::vector<bool> bool_values(opts.size());
  std::vector<CLI::Option*> cli(opts.size());
  for (size_t i = 0; i < opts.size(); ++i) {
    const auto& o = opts[i];
    std::string help = std::string(o.help) + " [default: " + o.fallback + "] [env: " +
                       env_name(o.name) + "]";
    std::string flag = std::string("--") + o.name;
    if (std::string_view(o.kind) == "BOOL") {
      cli[i] = app.add_option(flag, flag_values[i], help)->type_name("[BOOL]")->expected(0, 1);
    } else {
      cli[i] = app.add_option(flag, flag_values[i], help)->type_name(o.kind);
    }
  }
  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    int rc = app.exit(e);
    return rc == 0 ? 0 : 2;
  }

  std::optional<toml::table> file;
  if (config_file.empty()) {
    if (const char* env = std::getenv("WSTRACE_CONFIG")) config_file = env;
  }
  if (!config_file.empty()) {
    try {
      file = toml::parse_file(config_file);
    } catch (const toml::parse_error& err) {
      std::cerr << "error: --config " << config_file << ": " << err.description() << " (line "
                << err.source().begin.line << ")\n";
      return 2;
    }
    // Unknown keys are mistakes (a typo silently ignored is worse than an error).
    for (const auto& [key, value] : *file) {
      bool known = false;
      for (const auto& o : opts) {
        std::string dashed(key.str());
        for (auto& ch : dashed) ch = ch == '_' ? '-' : ch;
        if (dashed == o.name) known = true;
      }
      if (!known) {
        std::cerr << "error: --config " << config_file << ": unknown option '" << key.str()
                  << "' (see wstrace --help)\n";
        return 2;
      }
    }
  }

  Config c;
  for (size_t i = 0; i < opts.size(); ++i) {
    const auto& o = opts[i];
    std::string value;
    std::string source;
    if (cli[i]->count() > 0) {
      value = flag_values[i].empty() && std::string_view(o.kind) == "BOOL" ? "true" : flag_values[i];
      source = std::string("--") + o.name;
    } else if (const char* env = std::getenv(env_name(o.name).c_str())) {
      value = env;
      source = env_name(o.name);
    } else if (file) {
      std::string underscored = o.name;
      for (auto& ch : underscored) ch = ch == '-' ? '_' : ch;
      const toml::node* node = file->get(o.name);
      if (node == nullptr) node = file->get(underscored);
      if (node != nullptr) {
        value = toml_value_text(*node);
        source = std::string(o.name) + " in " + config_file;
      }
    }
    if (source.empty()) continue;  // default stays
    std::string why;
    if (!o.set(c, value, why)) {
      std::cerr << "error: " << source << ": '" << value << "' " << why << "\n";
      return 2;
    }
  }

  // Cross-option checks.
  if (c.max_message_size < 128) {
    std::cerr << "error: --max-message-size must be at least 128 bytes\n";
    return 2;
  }
  if (c.max_backpressure < 1024) {
    std::cerr << "error: --max-backpressure must be at least 1KiB\n";
    return 2;
  }
  if (c.node_id.empty()) {
    char host[256] = {0};
    gethostname(host, sizeof host - 1);
    c.node_id = std::string(host[0] ? host : "wstrace") + "-" + std::to_string(getpid());
  }
  out = std::move(c);
  return -1;
}

}  // namespace wstrace::server
