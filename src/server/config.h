// Server configuration. Every option is a flag, a WSTRACE_<NAME> environment
// variable and a key of the optional TOML file (--config); precedence is
// flag > environment > file > default. The option table in config.cpp is the
// single place an option is declared.
#pragma once

#include <cstdint>
#include <map>
#include <string>
#include <string_view>
#include <vector>

#include "stream/rules.h"
#include "util/log.h"

namespace wstrace::server {

struct Config {
  std::string listen = "0.0.0.0:8080";
  bool reuse_port = false;               // share --listen with other --reuse-port processes
  std::string admin = "127.0.0.1:9464";  // "off": no admin listener
  std::string api = "off";               // the server API listener, or "off"
  std::string api_key;                   // Authorization: Bearer KEY on every API request
  uint64_t api_max_body = 1 << 20;       // largest API request body
  unsigned threads = 0;                  // 0: one per core
  std::string redis;                     // empty: standalone
  std::string redis_prefix = "wstrace";  // Redis channel = <prefix>:<channel>
  std::string node_id;                   // empty: <hostname>-<pid>
  uint64_t heartbeat_interval_ns = 30'000'000'000ull;
  uint64_t client_timeout_ns = 60'000'000'000ull;
  uint64_t handshake_timeout_ns = 10'000'000'000ull;
  uint64_t close_timeout_ns = 2'000'000'000ull;
  uint64_t shutdown_timeout_ns = 10'000'000'000ull;
  uint64_t stall_timeout_ns = 10'000'000'000ull;  // /healthz fails past this
  uint64_t max_message_size = 1 << 20;
  uint64_t max_content_size = 64 << 10;
  uint64_t max_backpressure = 1 << 20;
  uint64_t send_buffer = 128 << 10;  // SO_SNDBUF of client sockets; 0: kernel autotuning
  uint64_t max_connections = 0;  // 0: bounded only by RLIMIT_NOFILE
  uint32_t max_subscriptions = 100;
  uint32_t rate_limit = 0;  // messages per second per connection; 0: off
  uint32_t rate_burst = 0;  // messages a connection may save up; 0: rate_limit
  uint32_t max_connections_per_ip = 0;  // per address (IPv6: per /64); 0: off
  uint32_t handshake_rate_per_ip = 0;   // new connections per second per address; 0: off
  uint32_t error_budget = 100;          // Error replies per connection per minute; 0: off
  bool compression = false;
  std::vector<std::string> allowed_origins;
  std::string auth_secret;      // HS256/384/512 secret for JWTs
  std::string auth_public_key;  // PEM public key (RS*, PS256, ES*, EdDSA)
  std::string auth_jwks;        // JWK Set file, keys chosen by kid
  std::string auth_audience;    // expected "aud"
  std::string auth_issuer;      // expected "iss"
  uint64_t auth_leeway_ns = 30'000'000'000ull;          // clock skew on exp/nbf
  uint64_t auth_refresh_before_ns = 60'000'000'000ull;  // ask for a new token this early
  std::string tls_cert;     // PEM certificate chain; with tls_key: wss:// on --listen
  std::string tls_key;      // PEM private key
  log::Level log_level = log::Level::Info;
  log::Format log_format = log::Format::Text;
  bool echo = false;
  uint32_t trace_buffer = 256;    // recent spans kept for /api/traces
  uint32_t channel_metrics = 0;   // top-N channels labelled in metrics; 0: off
  uint64_t history_memory = 64ull << 20;        // in-process history, node-wide
  uint64_t stream_ttl_ns = 3600'000'000'000ull;  // idle positions kept this long
  uint64_t presence_ttl_ns = 30'000'000'000ull;  // with --redis: a dead node's members expire
  std::vector<stream::ChannelRule> channel_rules;  // [[channel]] tables of the file

  bool admin_enabled() const { return admin != "off" && !admin.empty(); }
  bool api_enabled() const { return api != "off" && !api.empty(); }

  // Where it came from (for SIGHUP): the command line after argv[0], the
  // file read, and the value text of every option that was set.
  std::vector<std::string> args;
  std::string config_file;
  std::map<std::string, std::string, std::less<>> sources;
};

// Parses flags, environment and config file. Returns -1 when the server
// should run, otherwise the process exit code (0 after --help/--version,
// 2 after a bad option — the message, naming the option, is already printed).
int load_config(int argc, char** argv, Config& out);

// SIGHUP: reads the configuration again from the same command line, the
// environment and the file. False (with `error`, one line naming the option)
// when anything is wrong; `out` is then untouched.
bool reload_config(const std::vector<std::string>& args, Config& out, std::string& error);

// Whether a reload applies a new value of this option without a restart.
bool option_is_live(std::string_view name);

}  // namespace wstrace::server
