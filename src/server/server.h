// The wstrace server: worker threads, the admin API, telemetry, signals and
// graceful shutdown. main() is a thin wrapper around this class, and the
// tests run it in-process the same way.
#pragma once

#include <memory>
#include <vector>

#include "cluster/bridge.h"
#include "http/server.h"
#include "server/api.h"
#include "server/channel_metrics.h"
#include "server/config.h"
#include "server/node.h"
#include "server/samples.h"
#include "server/worker.h"

namespace wstrace::server {

class Server {
 public:
  explicit Server(Config cfg);
  ~Server();
  Server(const Server&) = delete;
  Server& operator=(const Server&) = delete;

  // Binds the listeners and starts every thread. False (logged) on failure.
  bool start();
  // Stops accepting, closes every client with 1001, flushes telemetry and
  // joins the threads, all within --shutdown-timeout.
  void shutdown();
  // SIGHUP: applies what changed in a freshly read configuration that can
  // change without a restart, logs it, and names what would need one.
  void reload(const Config& fresh);

  uint16_t port() const { return port_; }
  uint16_t admin_port() const { return admin_ ? admin_->port() : 0; }
  uint16_t api_port() const { return api_ ? api_->port() : 0; }
  Node& node() { return *node_; }
  const Config& config() const { return cfg_; }

 private:
  // On the admin thread: answers `req`, at once or (a trace across the
  // cluster) when the other nodes have answered.
  void admin_request(const http::Request& req, http::Responder done);
  http::Response handle_admin(const http::Request& req);
  void cluster_spans(const std::string& trace_id, http::Responder done);
  std::string stats_json();
  // The node's cumulative metrics and gauges now, for the sampler.
  Reading reading();
  std::string connections_json(const http::Request& req);
  http::Response connection_json(uint64_t id);
  std::string channels_json();
  // Runs fn(worker) on every worker's thread and collects the answers that
  // came within a bound (a worker answers within one loop iteration); the
  // workers that did not answer in time are named, so an answer built from
  // the rest says it is partial instead of silently counting less.
  template <typename R>
  struct Gathered {
    std::vector<R> results;
    std::vector<unsigned> missing;  // worker indexes that did not answer
  };
  template <typename R>
  Gathered<R> gather(std::function<R(Worker&)> fn);
  // ,"partial":true,"missing_threads":[..] when some worker did not answer.
  static void append_partial(std::string& out, const std::vector<unsigned>& missing);
  // Workers whose event loop has not turned for --stall-timeout.
  std::vector<std::pair<unsigned, double>> stalled_workers() const;

  Config cfg_;
  std::unique_ptr<Node> node_;
  std::vector<std::unique_ptr<Worker>> workers_;
  std::unique_ptr<http::Server> admin_;
  std::unique_ptr<ClusterControl> control_;
  std::unique_ptr<Api> api_;
  std::unique_ptr<cluster::Bridge> bridge_;
  std::unique_ptr<ChannelMetrics> channel_metrics_;
  SampleRing samples_;
  std::unique_ptr<Sampler> sampler_;
  uint16_t port_ = 0;
  bool started_ = false;
  bool stopped_ = false;
};

}  // namespace wstrace::server
