// The server API's node-wide requests — disconnect, subscribe, unsubscribe,
// channels, info — done on this node's workers, and, with --redis, on every
// node of the cluster through the bridge's control plane: the node that got
// the HTTP request PUBLISHes it, every node (itself included) does its part
// and answers, and the asker merges the answers (or says which are missing
// after a bound). The admin port's trace page asks the same way for every
// node's spans of one trace.
#pragma once

#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <unordered_map>
#include <vector>

#include "cluster/bridge.h"
#include "protocol/api.h"
#include "server/node.h"

namespace wstrace::server {

// One node's part of a request.
struct NodeAnswer {
  std::string node_id;
  uint64_t count = 0;        // connections disconnected / (un)subscribed
  uint64_t connections = 0;  // open WebSocket connections
  std::vector<std::pair<std::string, uint64_t>> channels;  // channel -> local subscribers
  std::string spans;  // a spans request: this node's spans of the trace, a JSON array
};

// Runs `r` on every worker of this node; `done` (on the last worker's
// thread) gets this node's answer.
void run_on_node(Node& node, const protocol::ApiRequest& r,
                 std::function<void(NodeAnswer&&)> done);

class ClusterControl {
 public:
  // `done(answers, missing)`: every node's answer, and how many nodes that
  // got the request did not answer in time (-1: the request reached no
  // node, the cluster link is down). Called on any thread.
  using Done = std::function<void(std::vector<NodeAnswer>&& answers, long missing)>;

  ClusterControl(Node& node, cluster::Bridge& bridge);
  // Installs the bridge's handlers (before it starts).
  void attach();
  // Asks every node; `body` is the request's JSON body (validated already).
  // Returns the request's id, for expire().
  uint64_t request(protocol::ApiMethod method, std::string_view body, Done done);
  // Asks every node for the spans of one trace it still holds (at most
  // kMaxSpansPerNode each; `trace_id_hex` validated already).
  uint64_t request_spans(std::string_view trace_id_hex, Done done);
  static constexpr size_t kMaxSpansPerNode = 512;
  // The bound passed: answers `done` with what came (no-op if done already).
  void expire(uint64_t id);

 private:
  struct Ask {
    Done done;
    long expected = -1;  // nodes the PUBLISH reached, once known
    std::vector<NodeAnswer> answers;
  };
  uint64_t send(std::string_view method, std::string_view body, Done done);
  void on_request(std::string payload);  // bridge thread
  void on_reply(std::string payload);    // bridge thread
  // Under mu_: finishes `id` when every answer came; returns what to call.
  std::function<void()> maybe_finish(uint64_t id, bool force);

  Node& node_;
  cluster::Bridge& bridge_;
  std::mutex mu_;
  uint64_t next_id_ = 1;
  std::unordered_map<uint64_t, Ask> asks_;
};

}  // namespace wstrace::server
