// The server API (--api): HTTP/1.1 JSON for backends, on its own thread with
// the http::Server of the admin API (keep-alive, pipelining). Requests that
// need a worker are posted to it (publishes batched: one task per worker per
// loop turn) and answered when the worker's result comes back; nothing here
// blocks. Each request is counted and is a server span that continues the
// request's traceparent through the publication's broadcast and fan-outs.
#pragma once

#include <atomic>
#include <cstdint>
#include <memory>
#include <string>
#include <unordered_map>
#include <vector>

#include "http/server.h"
#include "protocol/api.h"
#include "server/control.h"
#include "server/node.h"
#include "telemetry/tracer.h"

namespace wstrace::server {

class Api {
 public:
  // `control`: the cluster's control plane (null standalone).
  Api(Node& node, const Config& cfg, ClusterControl* control);
  ~Api();
  Api(const Api&) = delete;
  Api& operator=(const Api&) = delete;

  bool start(const net::Address& addr, std::string* error);
  void stop();
  uint16_t port() const { return http_.port(); }
  // SIGHUP: the key requests must present from now on.
  void set_key(std::string key) { key_.store(std::make_shared<const std::string>(std::move(key))); }

 private:
  struct Pending;
  struct PendingRef {  // a token's request, and its place among a broadcast's results
    std::shared_ptr<Pending> pending;
    size_t index = 0;
  };
  struct PublishTask {
    std::string channel;
    std::string content;
    TraceContext parent;
    uint64_t token;
  };

  void handle(const http::Request& req, std::string_view body, http::Responder done);
  // Per method; `p` holds the responder and the request's span.
  void publish(std::unique_ptr<Pending> p, const protocol::ApiRequest& r);
  void history(std::unique_ptr<Pending> p, const protocol::ApiRequest& r);
  void on_nodes(std::unique_ptr<Pending> p, const protocol::ApiRequest& r, std::string_view body);
  void answer_nodes(Pending& p, std::vector<NodeAnswer>& answers, long missing);
  // A History reply from a worker (any thread; posted to the API thread).
  void on_reply(stream::Reply&& r);
  // On the API thread.
  void published(stream::PublishResult& r);
  void finish(Pending& p, int status, std::string body);
  void fail(Pending& p, int status, std::string_view code, std::string_view message);
  void flush_publishes();
  unsigned worker_for(std::string_view channel);

  Node& node_;
  const Config& cfg_;
  ClusterControl* control_;
  http::Server http_;
  telemetry::Tracer& tracer_;
  telemetry::Shard* shard_ = nullptr;
  std::atomic<std::shared_ptr<const std::string>> key_;
  uint64_t next_token_ = 1;
  unsigned next_worker_ = 0;
  std::unordered_map<uint64_t, PendingRef> pending_;
  std::vector<std::vector<PublishTask>> outbox_;  // per worker, sent once per loop turn
};

}  // namespace wstrace::server
