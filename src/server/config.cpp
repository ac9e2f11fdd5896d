#include "server/config.h"

#include <unistd.h>

#include <CLI/CLI.hpp>
#include <cstdlib>
#include <fstream>
#include <sstream>
#include <functional>
#include <tuple>
#include <iostream>
#include <optional>
#include <toml++/toml.h>

#include "cluster/redis_url.h"
#include "net/socket.h"
#include "net/tls.h"
#include "server/auth.h"
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
  bool live = false;  // SIGHUP applies a new value without a restart
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

// host:port, checked (and host names resolved) now, so a bad address stops the
// server before anything starts.
bool set_address(std::string& field, const std::string& v, std::string& why, bool allow_off) {
  if (allow_off && v == "off") {
    field = v;
    return true;
  }
  std::string error;
  if (!net::Address::parse(v, &error)) {
    why = "is not a listen address (" + error + "; examples: 0.0.0.0:8080, 127.0.0.1:0, [::]:8080" +
          (allow_off ? ", off)" : ")");
    return false;
  }
  field = v;
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
       [](Config& c, const std::string& v, std::string& why) {
         return set_address(c.listen, v, why, false);
       }},
      {"reuse-port", "BOOL", "false",
       "Share the --listen port with other wstrace processes started with --reuse-port too "
       "(SO_REUSEPORT: the kernel spreads new connections over all of them), e.g. several nodes "
       "of a cluster on one host. Without it, a port another process listens on is an error.",
       [](Config& c, const std::string& v, std::string& why) {
         return set_bool(c.reuse_port, v, why);
       }},
      {"admin", "ADDR", "127.0.0.1:9464",
       "Admin HTTP listener (/metrics, /healthz, /readyz, /api/...), or 'off'. Read-only; "
       "keep it on loopback or behind a firewall.",
       [](Config& c, const std::string& v, std::string& why) {
         return set_address(c.admin, v, why, true);
       }},
      {"api", "ADDR", "off",
       "Server API listener for backends (HTTP/1.1 JSON: publish, broadcast, disconnect, "
       "subscribe, history, channels, info), or 'off'. Off loopback it needs --api-key.",
       [](Config& c, const std::string& v, std::string& why) {
         return set_address(c.api, v, why, true);
       }},
      {"api-key", "TEXT", "",
       "Secret every server API request must present as 'Authorization: Bearer KEY'. "
       "Required when --api is not on a loopback address.",
       [](Config& c, const std::string& v, std::string&) { return c.api_key = v, true; }, true},
      {"api-max-body", "SIZE", "1MiB",
       "Largest server API request body; larger is answered 413.",
       [](Config& c, const std::string& v, std::string& why) {
         return set_size(c.api_max_body, v, why);
       }},
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
      {"stall-timeout", "DURATION", "10s",
       "/healthz answers 503 when a worker's event loop has not turned for this long (a "
       "stuck thread). An idle loop still turns several times a second.",
       [](Config& c, const std::string& v, std::string& why) {
         if (!set_duration(c.stall_timeout_ns, v, why)) return false;
         if (c.stall_timeout_ns < 100'000'000ull) {
           why = "must be at least 100ms";
           return false;
         }
         return true;
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
       "Outbound bytes one client may have queued: a message that finds more than this "
       "already queued closes the client with 4429 (slow consumer). An empty queue always "
       "takes one message, however large.",
       [](Config& c, const std::string& v, std::string& why) {
         return set_size(c.max_backpressure, v, why);
       }},
      {"send-buffer", "SIZE", "128KiB",
       "Kernel send buffer of each client socket (SO_SNDBUF; the kernel doubles it). It bounds "
       "what a client that stops reading holds in the kernel on top of --max-backpressure. "
       "0 = the kernel's autotuning (up to net.ipv4.tcp_wmem's maximum, often 4MiB).",
       [](Config& c, const std::string& v, std::string& why) {
         if (!set_size(c.send_buffer, v, why)) return false;
         if (c.send_buffer > (64u << 20)) {
           why = "is larger than 64MiB";
           return false;
         }
         return true;
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
       "Messages per second one connection may send (a token bucket: N per second, up to "
       "--rate-burst saved up); more gets Error rate_limited and is dropped. 0 = unlimited.",
       [](Config& c, const std::string& v, std::string& why) {
         return set_uint(c.rate_limit, v, why, 1u << 30);
       }},
      {"rate-burst", "N", "0",
       "Messages a connection may send at once after being quiet, under --rate-limit. "
       "0 = the same as --rate-limit (one second's worth).",
       [](Config& c, const std::string& v, std::string& why) {
         return set_uint(c.rate_burst, v, why, 1u << 30);
       }},
      {"max-connections-per-ip", "N", "0",
       "Most connections one client address may hold (IPv6: one /64); more are refused "
       "with HTTP 429 at once. 0 = no limit.",
       [](Config& c, const std::string& v, std::string& why) {
         return set_uint(c.max_connections_per_ip, v, why, 1u << 24);
       }},
      {"handshake-rate-per-ip", "N", "0",
       "New connections per second one client address may open (a token bucket, N saved up); "
       "more are refused with HTTP 429. 0 = no limit.",
       [](Config& c, const std::string& v, std::string& why) {
         return set_uint(c.handshake_rate_per_ip, v, why, 1u << 24);
       }},
      {"error-budget", "N", "100",
       "Error replies one connection may cause per minute (invalid JSON, unknown types, ...); "
       "past it the connection is closed with 1008. 0 = no limit.",
       [](Config& c, const std::string& v, std::string& why) {
         return set_uint(c.error_budget, v, why, 1u << 24);
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
      {"tls-cert", "FILE", "",
       "PEM certificate (chain: the server's first, then intermediates). With --tls-key, "
       "--listen serves wss:// (TLS 1.2 and 1.3). SIGHUP loads the files again; new "
       "handshakes use them, open connections keep theirs.",
       [](Config& c, const std::string& v, std::string&) { return c.tls_cert = v, true; },
       true},
      {"tls-key", "FILE", "", "PEM private key of --tls-cert.",
       [](Config& c, const std::string& v, std::string&) { return c.tls_key = v, true; }, true},
      {"auth-secret", "TEXT", "",
       "Require a JWT signed with this secret (HS256, HS384, HS512). Clients pass it as "
       "?token= or 'Authorization: Bearer'. With no --auth-* key: no authentication.",
       [](Config& c, const std::string& v, std::string&) { return c.auth_secret = v, true; },
       true},
      {"auth-public-key", "FILE", "",
       "Require a JWT signed with the private key of this PEM public key (or certificate): "
       "RS256/384/512, PS256 (RSA), ES256/ES384 (P-256/P-384), EdDSA (Ed25519).",
       [](Config& c, const std::string& v, std::string&) { return c.auth_public_key = v, true; },
       true},
      {"auth-jwks", "FILE", "",
       "Require a JWT signed by a key of this JWK Set file (RFC 7517); the token's kid picks "
       "the key. SIGHUP reads it again (key rotation).",
       [](Config& c, const std::string& v, std::string&) { return c.auth_jwks = v, true; },
       true},
      {"auth-audience", "TEXT", "",
       "The token's aud must be or contain this. Empty: tokens must not carry an aud.",
       [](Config& c, const std::string& v, std::string&) { return c.auth_audience = v, true; }},
      {"auth-issuer", "TEXT", "", "The token's iss must be this. Empty: not checked.",
       [](Config& c, const std::string& v, std::string&) { return c.auth_issuer = v, true; }},
      {"auth-leeway", "DURATION", "30s", "Clock skew allowed on the token's exp and nbf.",
       [](Config& c, const std::string& v, std::string& why) {
         return set_duration(c.auth_leeway_ns, v, why);
       }},
      {"auth-refresh-before", "DURATION", "60s",
       "Ask a client for a new token ({\"type\":\"Refresh\"}) this long before its token "
       "expires; without one by then (plus --auth-leeway) it is closed with 4401.",
       [](Config& c, const std::string& v, std::string& why) {
         return set_duration(c.auth_refresh_before_ns, v, why);
       }},
      {"log-level", "LEVEL", "info", "trace, debug, info, warn, error or off.",
       [](Config& c, const std::string& v, std::string& why) {
         if (log::parse_level(v, c.log_level)) return true;
         why = "is not a log level (trace, debug, info, warn, error, off)";
         return false;
       },
       true},
      {"log-format", "text|json", "text", "Human-readable lines or one JSON object per line.",
       [](Config& c, const std::string& v, std::string& why) {
         if (log::parse_format(v, c.log_format)) return true;
         why = "is not a log format (text, json)";
         return false;
       },
       true},
      {"echo", "BOOL", "false",
       "Also serve /echo: a plain echo endpoint on the same engine, for conformance suites.",
       [](Config& c, const std::string& v, std::string& why) { return set_bool(c.echo, v, why); }},
      {"trace-buffer", "N", "256", "Finished spans kept in memory for /api/traces (about 0.8 KiB each).",
       [](Config& c, const std::string& v, std::string& why) {
         return set_uint(c.trace_buffer, v, why, 1000000);
       }},
      {"history-memory", "SIZE", "64MiB",
       "Most memory the history of all channels may take on this node (in-process mode; with "
       "--redis the history lives in Redis). Past it the oldest messages go first.",
       [](Config& c, const std::string& v, std::string& why) {
         return set_size(c.history_memory, v, why);
       }},
      {"presence-ttl", "DURATION", "30s",
       "With --redis: how long a node's presence entries (channel rule presence) outlive it. A "
       "node refreshes its own every third of this; a node that dies without a word vanishes "
       "from Presence answers this much later at most.",
       [](Config& c, const std::string& v, std::string& why) {
         if (!set_duration(c.presence_ttl_ns, v, why)) return false;
         if (c.presence_ttl_ns < 1'000'000'000ull) {
           why = "must be at least 1s";
           return false;
         }
         return true;
       }},
      {"stream-ttl", "DURATION", "1h",
       "How long a channel's position (epoch and offset) is kept after its last use when it has "
       "no subscriber and no history left. A client recovering after that learns it lost its "
       "place (a new epoch).",
       [](Config& c, const std::string& v, std::string& why) {
         if (!set_duration(c.stream_ttl_ns, v, why)) return false;
         if (c.stream_ttl_ns < 1'000'000'000ull) {
           why = "must be at least 1s";
           return false;
         }
         return true;
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
SIGHUP reads flags, environment and file again and applies the options marked
[SIGHUP reloads it]; a bad new configuration is refused and the old one kept.

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

namespace {

struct Cli {
  CLI::App app{"wstrace — WebSocket pub/sub server with OpenTelemetry traces and metrics"};
  std::string config_file;
  std::vector<std::string> values;
  std::vector<CLI::Option*> options;
};

void build_cli(Cli& cli) {
  CLI::App& app = cli.app;
  app.set_version_flag("--version", std::string("wstrace ") + WSTRACE_VERSION);
  app.footer(kFooter);
  app.get_formatter()->column_width(34);
  app.add_option("--config", cli.config_file, "TOML file with options (keys as below, without --)")
      ->type_name("FILE");
  const auto& opts = options();
  cli.values.resize(opts.size());
  cli.options.resize(opts.size());
  for (size_t i = 0; i < opts.size(); ++i) {
    const auto& o = opts[i];
    std::string help = std::string(o.help) + " [default: " + o.fallback + "] [env: " +
                       env_name(o.name) + "]";
    if (o.live) help += " [SIGHUP reloads it]";
    std::string flag = std::string("--") + o.name;
    if (std::string_view(o.kind) == "BOOL") {
      cli.options[i] = app.add_option(flag, cli.values[i], help)->type_name("[BOOL]")->expected(0, 1);
    } else {
      cli.options[i] = app.add_option(flag, cli.values[i], help)->type_name(o.kind);
    }
  }
}

std::string trim(std::string_view v) {
  while (!v.empty() && (v.front() == ' ' || v.front() == '\t')) v.remove_prefix(1);
  while (!v.empty() && (v.back() == ' ' || v.back() == '\t' || v.back() == '\r')) v.remove_suffix(1);
  return std::string(v);
}

// toml++ reads `listen = 127.0.0.1:0` as a broken date or number. When the
// failing line is `key = value` with a bare value that is no TOML number or
// boolean, say that text needs quotes.
std::string quote_hint(const std::string& file, size_t line_no) {
  std::ifstream in(file);
  std::string line;
  for (size_t i = 0; i < line_no && std::getline(in, line); ++i) {
  }
  size_t eq = line.find('=');
  if (eq == std::string::npos) return {};
  std::string key = trim(std::string_view(line).substr(0, eq));
  std::string value = trim(std::string_view(line).substr(eq + 1));
  if (size_t hash = value.find(" #"); hash != std::string::npos) value = trim(value.substr(0, hash));
  if (key.empty() || value.empty()) return {};
  const char first = value.front();
  if (first == '"' || first == '\'' || first == '[' || first == '{') return {};
  if (value == "true" || value == "false") return {};
  if (value.find_first_not_of("0123456789+-._eE") == std::string::npos) return {};
  return "; text values need quotes in TOML: " + key + " = \"" + value + "\"";
}

// [[channel]] tables: each key and value as text with its kind and line,
// checked by stream::build_rules.
bool read_channel_rules(const toml::table& file, const std::string& path,
                        std::vector<stream::ChannelRule>& out, std::string& error) {
  const toml::node* node = file.get("channel");
  if (node == nullptr) return true;
  const toml::array* arr = node->as_array();
  if (arr == nullptr || !arr->is_array_of_tables()) {
    error = "--config " + path + " line " + std::to_string(node->source().begin.line) +
            ": 'channel' must be [[channel]] tables (one per rule)";
    return false;
  }
  std::vector<stream::RawRule> raw;
  for (const auto& item : *arr) {
    stream::RawRule rule;
    for (const auto& [key, value] : *item.as_table()) {
      stream::RawValue v;
      v.line = value.source().begin.line;
      if (auto s = value.value_exact<std::string>()) {
        v.kind = stream::RawValue::Kind::String;
        v.text = *s;
      } else if (auto i = value.value_exact<int64_t>()) {
        v.kind = stream::RawValue::Kind::Integer;
        v.text = std::to_string(*i);
      } else if (auto b = value.value_exact<bool>()) {
        v.kind = stream::RawValue::Kind::Boolean;
        v.text = *b ? "true" : "false";
      } else if (auto d = value.value_exact<double>()) {
        v.kind = stream::RawValue::Kind::Float;
        v.text = std::to_string(*d);
      } else {
        std::ostringstream text;
        value.visit([&text](auto&& n) { text << n; });
        v.text = text.str();
      }
      rule.emplace_back(std::string(key.str()), std::move(v));
    }
    raw.push_back(std::move(rule));
  }
  std::string why;
  if (!stream::build_rules(raw, out, why)) {
    error = "--config " + path + ": " + why;
    return false;
  }
  return true;
}

struct Failure {
  int rank;      // 0 flag, 1 environment, 2 file: the first of the lowest rank is reported
  size_t order;  // option index (flags, environment) or line (file)
  std::string message;
};

// Everything after the command line: environment, file, values, cross-checks.
bool resolve(Cli& cli, Config& out, std::string& error) {
  const auto& opts = options();
  std::string config_file = cli.config_file;
  if (config_file.empty()) {
    if (const char* env = std::getenv("WSTRACE_CONFIG")) config_file = env;
  }
  std::optional<toml::table> file;
  if (!config_file.empty()) {
    try {
      file = toml::parse_file(config_file);
    } catch (const toml::parse_error& err) {
      const size_t line = err.source().begin.line;
      error = "--config " + config_file + " line " + std::to_string(line) + ": " +
              std::string(err.description()) + quote_hint(config_file, line);
      return false;
    }
    // Unknown keys are mistakes (a typo silently ignored is worse than an error).
    for (const auto& [key, value] : *file) {
      bool known = key.str() == "channel";  // [[channel]] rules, read below
      for (const auto& o : opts) {
        std::string dashed(key.str());
        for (auto& ch : dashed) ch = ch == '_' ? '-' : ch;
        if (dashed == o.name) known = true;
      }
      if (!known) {
        error = "--config " + config_file + " line " + std::to_string(value.source().begin.line) +
                ": unknown option '" + std::string(key.str()) + "' (see wstrace --help)";
        return false;
      }
    }
  }

  Config c;
  c.config_file = config_file;
  if (file) {
    if (!read_channel_rules(*file, config_file, c.channel_rules, error)) return false;
    // What reload compares: the rules as read.
    if (!c.channel_rules.empty()) {
      std::string text;
      for (const auto& r : c.channel_rules) {
        text += r.match + "|" + std::to_string(r.history_size) + "|" +
                std::to_string(r.history_ttl_ns) + ";";
      }
      c.sources["channel"] = text;
    }
  }
  std::vector<Failure> failures;
  for (size_t i = 0; i < opts.size(); ++i) {
    const auto& o = opts[i];
    std::string value;
    std::string source;
    int rank = 0;
    size_t order = i;
    if (cli.options[i]->count() > 0) {
      value = cli.values[i].empty() && std::string_view(o.kind) == "BOOL" ? "true" : cli.values[i];
      source = std::string("--") + o.name;
    } else if (const char* env = std::getenv(env_name(o.name).c_str())) {
      value = env;
      source = env_name(o.name);
      rank = 1;
    } else if (file) {
      std::string underscored = o.name;
      for (auto& ch : underscored) ch = ch == '-' ? '_' : ch;
      const toml::node* node = file->get(o.name);
      if (node == nullptr) node = file->get(underscored);
      if (node != nullptr) {
        value = toml_value_text(*node);
        order = node->source().begin.line;
        source = std::string(o.name) + " in " + config_file + " line " + std::to_string(order);
        rank = 2;
      }
    }
    if (source.empty()) continue;  // default stays
    std::string why;
    if (!o.set(c, value, why)) {
      failures.push_back({rank, order, source + ": '" + value + "' " + why});
      continue;
    }
    c.sources[o.name] = value;
  }
  if (!failures.empty()) {
    const Failure* first = &failures[0];
    for (const auto& f : failures) {
      if (std::tie(f.rank, f.order) < std::tie(first->rank, first->order)) first = &f;
    }
    error = first->message;
    return false;
  }

  // Cross-option checks.
  if (c.max_message_size < 128) {
    error = "--max-message-size must be at least 128 bytes";
    return false;
  }
  if (c.max_backpressure < 1024) {
    error = "--max-backpressure must be at least 1KiB";
    return false;
  }
  if (c.api_enabled() && c.api_key.empty()) {
    std::string ignored;
    auto a = net::Address::parse(c.api, &ignored);
    const std::string host = a ? a->host() : std::string();
    if (host.rfind("127.", 0) != 0 && host != "::1") {
      error = "--api " + c.api +
              " is not on loopback: set --api-key (backends then send 'Authorization: Bearer "
              "KEY'), or listen on 127.0.0.1";
      return false;
    }
  }
  if (c.tls_cert.empty() != c.tls_key.empty()) {
    error = c.tls_cert.empty() ? "--tls-key needs --tls-cert (the certificate it belongs to)"
                               : "--tls-cert needs --tls-key (its private key)";
    return false;
  }
  {
    // The keys are read now, so a bad key file stops the start-up here.
    std::shared_ptr<const auth::KeySet> keys;
    std::string why;
    if (!load_auth_keys(c, keys, why)) {
      error = why;
      return false;
    }
  }
  if (!c.tls_cert.empty()) {
    // Loaded once now, so a bad certificate or key stops the start-up here.
    std::string why;
    if (!net::TlsContext::load(c.tls_cert, c.tls_key, why)) {
      error = why;
      return false;
    }
  }
  if (c.node_id.empty()) {
    char host[256] = {0};
    gethostname(host, sizeof host - 1);
    c.node_id = std::string(host[0] ? host : "wstrace") + "-" + std::to_string(getpid());
  }
  out = std::move(c);
  return true;
}

}  // namespace

int load_config(int argc, char** argv, Config& out) {
  Cli cli;
  build_cli(cli);
  try {
    cli.app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    int rc = cli.app.exit(e);
    return rc == 0 ? 0 : 2;
  }
  std::string error;
  if (!resolve(cli, out, error)) {
    std::cerr << "error: " << error << "\n";
    return 2;
  }
  out.args.assign(argv + 1, argv + argc);
  return -1;
}

bool reload_config(const std::vector<std::string>& args, Config& out, std::string& error) {
  Cli cli;
  build_cli(cli);
  std::vector<const char*> argv{"wstrace"};
  for (const auto& a : args) argv.push_back(a.c_str());
  try {
    cli.app.parse(static_cast<int>(argv.size()), argv.data());
  } catch (const CLI::ParseError& e) {
    error = e.what();
    return false;
  }
  Config fresh;
  if (!resolve(cli, fresh, error)) return false;
  fresh.args = args;
  // The node id defaults to host-pid: the same process keeps the same one.
  if (fresh.sources.count("node-id") == 0) fresh.node_id = out.node_id;
  out = std::move(fresh);
  return true;
}

bool option_is_live(std::string_view name) {
  if (name == "channel") return true;  // the [[channel]] rules
  for (const auto& o : options()) {
    if (name == o.name) return o.live;
  }
  return false;
}

}  // namespace wstrace::server
