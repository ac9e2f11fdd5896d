#include "server/control.h"

#include <simdjson.h>

#include <atomic>

#include "protocol/json_writer.h"
#include "server/worker.h"
#include "telemetry/telemetry.h"
#include "util/log.h"

namespace wstrace::server {
namespace {

// The wire: a request is "<method>\n<id>\n<asking node>\n<JSON body>", an
// answer "<id>\n<JSON>" on the asking node's reply channel. The spans
// request (method "spans") has the trace id for its body.
constexpr std::string_view kSpansMethod = "spans";

bool split(std::string_view s, size_t parts, std::vector<std::string_view>& out) {
  out.clear();
  for (size_t i = 0; i + 1 < parts; ++i) {
    const size_t nl = s.find('\n');
    if (nl == std::string_view::npos) return false;
    out.push_back(s.substr(0, nl));
    s.remove_prefix(nl + 1);
  }
  out.push_back(s);
  return true;
}

std::string encode_answer(const NodeAnswer& a) {
  Buffer b;
  b.append("{\"node_id\":", 11);
  protocol::append_json_string(b, a.node_id);
  std::string tail = ",\"count\":" + std::to_string(a.count) +
                     ",\"connections\":" + std::to_string(a.connections) + ",\"channels\":[";
  b.append(tail.data(), tail.size());
  for (size_t i = 0; i < a.channels.size(); ++i) {
    if (i) b.append(",", 1);
    b.append("[", 1);
    protocol::append_json_string(b, a.channels[i].first);
    const std::string n = "," + std::to_string(a.channels[i].second) + "]";
    b.append(n.data(), n.size());
  }
  b.append("]", 1);
  if (!a.spans.empty()) {
    b.append(",\"spans\":", 9);
    b.append(a.spans.data(), a.spans.size());
  }
  b.append("}", 1);
  return std::string(reinterpret_cast<const char*>(b.data()), b.size());
}

bool decode_answer(std::string_view json, NodeAnswer& a) {
  thread_local simdjson::dom::parser parser;
  simdjson::dom::object obj;
  if (parser.parse(json.data(), json.size(), true).get(obj) != simdjson::SUCCESS) return false;
  std::string_view node;
  if (obj["node_id"].get_string().get(node) != simdjson::SUCCESS ||
      obj["count"].get_uint64().get(a.count) != simdjson::SUCCESS ||
      obj["connections"].get_uint64().get(a.connections) != simdjson::SUCCESS) {
    return false;
  }
  a.node_id.assign(node);
  simdjson::dom::array chans;
  if (obj["channels"].get_array().get(chans) != simdjson::SUCCESS) return false;
  for (simdjson::dom::element e : chans) {
    simdjson::dom::array pair;
    std::string_view name;
    uint64_t n = 0;
    if (e.get_array().get(pair) != simdjson::SUCCESS || pair.size() != 2 ||
        pair.at(0).get_string().get(name) != simdjson::SUCCESS ||
        pair.at(1).get_uint64().get(n) != simdjson::SUCCESS) {
      return false;
    }
    a.channels.emplace_back(std::string(name), n);
  }
  simdjson::dom::array spans;
  if (obj["spans"].get_array().get(spans) == simdjson::SUCCESS) a.spans = simdjson::minify(spans);
  return true;
}

}  // namespace

void run_on_node(Node& node, const protocol::ApiRequest& r,
                 std::function<void(NodeAnswer&&)> done) {
  struct State {
    std::atomic<size_t> left{0};
    std::atomic<uint64_t> count{0};
    std::mutex mu;
    std::map<std::string, uint64_t> channels;
    protocol::ApiRequest request;
    std::function<void(NodeAnswer&&)> done;
    Node* node = nullptr;
  };
  auto st = std::make_shared<State>();
  st->left = node.workers.size();
  st->request = r;
  st->done = std::move(done);
  st->node = &node;
  for (Worker* w : node.workers) {
    w->loop().post([st, w] {
      const protocol::ApiRequest& q = st->request;
      switch (q.method) {
        case protocol::ApiMethod::Channels: {
          std::vector<std::pair<std::string, size_t>> mine;
          w->collect_channels(mine);
          std::lock_guard lock(st->mu);
          for (auto& [name, n] : mine) st->channels[name] += n;
          break;
        }
        case protocol::ApiMethod::Disconnect:
          st->count += w->api_disconnect(q.user, q.connection_id, q.code, q.reason);
          break;
        case protocol::ApiMethod::Subscribe:
        case protocol::ApiMethod::Unsubscribe:
          st->count += w->api_subscribe(q.user, q.channel, q.method == protocol::ApiMethod::Subscribe);
          break;
        default:
          break;
      }
      if (--st->left != 0) return;
      NodeAnswer a;
      a.node_id = st->node->cfg.node_id;
      a.count = st->count.load();
      const int64_t conns = st->node->websockets.load(std::memory_order_relaxed);
      a.connections = conns > 0 ? static_cast<uint64_t>(conns) : 0;
      {
        std::lock_guard lock(st->mu);
        a.channels.assign(st->channels.begin(), st->channels.end());
      }
      st->done(std::move(a));
    });
  }
}

ClusterControl::ClusterControl(Node& node, cluster::Bridge& bridge) : node_(node), bridge_(bridge) {}

void ClusterControl::attach() {
  bridge_.set_control_handlers([this](std::string p) { on_request(std::move(p)); },
                               [this](std::string p) { on_reply(std::move(p)); });
}

uint64_t ClusterControl::request(protocol::ApiMethod method, std::string_view body, Done done) {
  return send(protocol::api_method_name(method), body, std::move(done));
}

uint64_t ClusterControl::request_spans(std::string_view trace_id_hex, Done done) {
  return send(kSpansMethod, trace_id_hex, std::move(done));
}

uint64_t ClusterControl::send(std::string_view method, std::string_view body, Done done) {
  uint64_t id;
  {
    std::lock_guard lock(mu_);
    id = next_id_++;
    asks_[id].done = std::move(done);
  }
  std::string payload(method);
  payload += '\n' + std::to_string(id) + '\n' + node_.cfg.node_id + '\n';
  payload.append(body);
  bridge_.control_request(std::move(payload), [this, id](long receivers) {
    std::function<void()> call;
    {
      std::lock_guard lock(mu_);
      auto it = asks_.find(id);
      if (it == asks_.end()) return;
      it->second.expected = receivers;
      call = maybe_finish(id, receivers <= 0);
    }
    if (call) call();
  });
  return id;
}

void ClusterControl::expire(uint64_t id) {
  std::function<void()> call;
  {
    std::lock_guard lock(mu_);
    call = maybe_finish(id, true);
  }
  if (call) call();
}

std::function<void()> ClusterControl::maybe_finish(uint64_t id, bool force) {
  auto it = asks_.find(id);
  if (it == asks_.end()) return {};
  Ask& a = it->second;
  if (!force && (a.expected < 0 || static_cast<long>(a.answers.size()) < a.expected)) return {};
  const long missing = a.expected <= 0 ? -1
                                       : std::max(0L, a.expected - static_cast<long>(a.answers.size()));
  auto call = [done = std::move(a.done), answers = std::move(a.answers), missing]() mutable {
    done(std::move(answers), missing);
  };
  asks_.erase(it);
  return call;
}

void ClusterControl::on_request(std::string payload) {
  std::vector<std::string_view> parts;
  protocol::ApiMethod method{};
  protocol::ApiRequest r;
  protocol::ApiError err;
  if (split(payload, 4, parts) && parts[0] == kSpansMethod) {
    // This node's spans of the trace: {"spans":[...]} minus its wrapper.
    NodeAnswer a;
    a.node_id = node_.cfg.node_id;
    const int64_t conns = node_.websockets.load(std::memory_order_relaxed);
    a.connections = conns > 0 ? static_cast<uint64_t>(conns) : 0;
    std::string doc = node_.telemetry->recent_spans_json(parts[3], kMaxSpansPerNode);
    constexpr std::string_view kHead = "{\"spans\":";
    if (doc.size() > kHead.size() + 1 && doc.compare(0, kHead.size(), kHead) == 0) {
      a.spans = doc.substr(kHead.size(), doc.size() - kHead.size() - 1);
    }
    bridge_.control_reply(std::string(parts[2]), std::string(parts[1]) + "\n" + encode_answer(a));
    return;
  }
  if (!split(payload, 4, parts) || !protocol::api_method_from_path(parts[0], method) ||
      !protocol::parse_api_request(method, parts[3], protocol::ApiLimits{}, r, err)) {
    WS_LOG(Warn, "malformed control request from the cluster ignored",
           {"payload", std::string_view(payload).substr(0, 120)});
    return;
  }
  std::string from(parts[2]);
  std::string id(parts[1]);
  run_on_node(node_, r, [this, from = std::move(from), id = std::move(id)](NodeAnswer&& a) {
    bridge_.control_reply(from, id + "\n" + encode_answer(a));
  });
}

void ClusterControl::on_reply(std::string payload) {
  std::vector<std::string_view> parts;
  NodeAnswer a;
  if (!split(payload, 2, parts) || !decode_answer(parts[1], a)) return;
  const uint64_t id = std::strtoull(std::string(parts[0]).c_str(), nullptr, 10);
  std::function<void()> call;
  {
    std::lock_guard lock(mu_);
    auto it = asks_.find(id);
    if (it == asks_.end()) return;  // answered already (expired)
    it->second.answers.push_back(std::move(a));
    call = maybe_finish(id, false);
  }
  if (call) call();
}

}  // namespace wstrace::server
