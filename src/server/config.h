// Server configuration. Every option is a flag, a WSTRACE_<NAME> environment
// variable and a key of the optional TOML file (--config); precedence is
// flag > environment > file > default. The option table in config.cpp is the
// single place an option is declared.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "util/log.h"

namespace wstrace::server {

struct Config {
  std::string listen = "0.0.0.0:8080";
  std::string admin = "127.0.0.1:9464";  // "off": no admin listener
  unsigned threads = 0;                  // 0: one per core
  std::string redis;                     // empty: standalone
  std::string redis_prefix = "wstrace";  // Redis channel = <prefix>:<channel>
  std::string node_id;                   // empty: <hostname>-<pid>
  uint64_t heartbeat_interval_ns = 30'000'000'000ull;
  uint64_t client_timeout_ns = 60'000'000'000ull;
  uint64_t handshake_timeout_ns = 10'000'000'000ull;
  uint64_t close_timeout_ns = 2'000'000'000ull;
  uint64_t shutdown_timeout_ns = 10'000'000'000ull;
  uint64_t max_message_size = 1 << 20;
  uint64_t max_content_size = 64 << 10;
  uint64_t max_backpressure = 1 << 20;
  uint64_t max_connections = 0;  // 0: bounded only by RLIMIT_NOFILE
  uint32_t max_subscriptions = 100;
  uint32_t rate_limit = 0;  // messages per second per connection; 0: off
  bool compression = false;
  std::vector<std::string> allowed_origins;
  std::string auth_secret;  // HS256 secret for JWTs; empty: no auth
  log::Level log_level = log::Level::Info;
  log::Format log_format = log::Format::Text;
  bool echo = false;
  uint32_t trace_buffer = 256;    // recent spans kept for /api/traces
  uint32_t channel_metrics = 0;   // top-N channels labelled in metrics; 0: off

  bool admin_enabled() const { return admin != "off" && !admin.empty(); }
};

// Parses flags, environment and config file. Returns -1 when the server
// should run, otherwise the process exit code (0 after --help/--version,
// 2 after a bad option — the message, naming the option, is already printed).
int load_config(int argc, char** argv, Config& out);

}  // namespace wstrace::server
