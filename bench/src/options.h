// Command-line options of wstrace-bench, shared by the parent and workers.
#pragma once

#include <netinet/in.h>

#include <cstdint>
#include <string>
#include <vector>

namespace wsbench {

enum class Scenario : uint8_t { Connect, Fanout, Churn, Recover };

struct Target {
  std::string text;  // host:port as given
  sockaddr_in addr{};
};

struct Options {
  Scenario scenario = Scenario::Fanout;
  std::string scenario_name = "fanout";
  std::vector<Target> targets;
  std::string path = "/ws";
  std::string channel_prefix = "ch";
  uint32_t procs = 1;
  uint32_t source_addrs = 4;      // bind to 127.0.0.2 .. 127.0.0.(1+K); 0 = let the kernel pick
  uint64_t connections = 1000;    // connect: total; churn: concurrent loops
  double rate = 0;                // connect: conns/s; fanout: msgs/s (all publishers); churn: cycles/s
  double duration_s = 10;
  double warmup_s = 2;
  uint32_t channels = 1;
  uint32_t subscribers = 1000;
  uint32_t publishers = 1;
  uint32_t window = 64;           // fanout with rate 0: messages ahead of delivery, per publisher
  uint32_t message_size = 64;     // bytes of the `content` field
  bool compression = false;
  bool tls = false;               // wss:// (the server's certificate is not verified)
  bool subscribe = false;         // connect: each connection subscribes before holding
  bool spread = false;            // fanout: spread connections over targets regardless of channel
  uint32_t laggards = 0;          // fanout: subscribers that stop reading after warm-up
  uint32_t missed = 50;           // recover: messages published per channel while away
  double handshake_timeout_s = 10;
  double drain_timeout_s = 5;
  uint32_t max_pending = 256;     // handshakes in flight per worker when --rate 0
  std::vector<int> server_pids;
  std::vector<int> aux_pids;      // sampled and reported apart from the servers (redis-server)
  Target api_target;              // --api: fanout publishers POST to the server API here
  bool api = false;
  std::string api_key;            // --api-key: sent as Authorization: Bearer
  Target redis_info;              // --redis-info: commands Redis processed in the window
  bool has_redis_info = false;
  bool no_perf = false;           // write syscalls from syscw, no perf tracepoint counters
  bool json = false;
  bool quiet = false;             // no progress line
};

}  // namespace wsbench
