#include "server/api.h"

#include <openssl/crypto.h>

#include <algorithm>
#include <map>
#include <mutex>
#include <optional>

#include "protocol/json_writer.h"
#include "server/tracing.h"
#include "server/worker.h"
#include "telemetry/trace_context.h"
#include "util/clock.h"
#include "util/log.h"
#include "version.h"

namespace wstrace::server {
namespace {

constexpr std::string_view kPrefix = "/api/v1/";
// How long the asking node waits for the other nodes' answers.
constexpr uint64_t kClusterAnswerTimeoutNs = 2'000'000'000ull;

void json_str(std::string& out, std::string_view s) {
  Buffer b;
  protocol::append_json_string(b, s);
  out.append(reinterpret_cast<const char*>(b.data()), b.size());
}

std::string error_body(std::string_view code, std::string_view message) {
  std::string out = "{\"error\":{\"code\":";
  json_str(out, code);
  out += ",\"message\":";
  json_str(out, message);
  out += "}}";
  return out;
}

// websocket.api.requests{method, outcome}: the series of (method, outcome).
uint32_t outcome_of(int status) {
  if (status < 400) return 0;                     // ok
  if (status == 401) return 2;                    // unauthorized
  return status < 500 ? 1u : 3u;                  // client_error, server_error
}

}  // namespace

// One request in flight: its responder, its server span, and (broadcast)
// the per-channel results still to come.
struct Api::Pending {
  http::Responder done;
  protocol::ApiMethod method = protocol::ApiMethod::Info;
  telemetry::SpanStart span;
  std::string route;
  uint64_t start_ns = 0;
  std::string channel;
  bool has_since = false;
  std::vector<std::string> results;  // broadcast: one JSON object per channel
  size_t left = 0;
};

Api::Api(Node& node, const Config& cfg, ClusterControl* control)
    : node_(node),
      cfg_(cfg),
      control_(control),
      http_([this](const http::Request& req, std::string_view body,
                   http::Responder done) { handle(req, body, std::move(done)); },
            http::Server::Options{true, cfg.api_max_body, 16 * 1024, 1024, 4096, true, "ws-api"}),
      tracer_(node.telemetry->tracer()) {
  set_key(cfg.api_key);
  outbox_.resize(node.workers.size());
}

Api::~Api() { stop(); }

bool Api::start(const net::Address& addr, std::string* error) {
  shard_ = &node_.registry().shard(telemetry::kMaxShards - 2);
  node_.api_published = [this](std::vector<stream::PublishResult>&& results) {
    http_.loop().post([this, results = std::move(results)]() mutable {
      for (auto& r : results) published(r);
    });
  };
  node_.api_reply = [this](stream::Reply&& reply) { on_reply(std::move(reply)); };
  http_.loop().add_before_sleep([this] { flush_publishes(); });
  return http_.start(addr, error);
}

void Api::stop() {
  http_.stop();
  // Answers the workers posted before they stopped: their references are
  // given back, their responders find no connection.
  http_.loop().drain();
  pending_.clear();
}

unsigned Api::worker_for(std::string_view channel) {
  // In-process the channel's owner sequences it: posting there saves a hop.
  // In a cluster Redis does: any worker, in turn.
  const size_t n = node_.workers.size();
  if (!node_.clustered()) return Worker::owner_of(channel, n);
  next_worker_ = (next_worker_ + 1) % static_cast<unsigned>(n);
  return next_worker_;
}

// ---------------------------------------------------------------------------
// Requests

void Api::handle(const http::Request& req, std::string_view body, http::Responder done) {
  auto p = std::make_unique<Pending>();
  p->done = std::move(done);
  p->start_ns = unix_ns();
  p->route.assign(req.path);
  // The backend's trace goes on here: a server span, child of its traceparent.
  std::optional<telemetry::SpanContext> parent;
  if (auto tp = req.header("traceparent")) parent = telemetry::parse_traceparent(*tp);
  p->span = tracer_.start(parent ? &*parent : nullptr, p->start_ns);

  if (req.path.substr(0, kPrefix.size()) != kPrefix ||
      !protocol::api_method_from_path(req.path.substr(kPrefix.size()), p->method)) {
    p->route = "unknown";
    fail(*p, 404, "not_found",
         "no such API method; POST /api/v1/ publish, broadcast, disconnect, subscribe, "
         "unsubscribe, history, channels, or GET /api/v1/info");
    return;
  }
  const std::shared_ptr<const std::string> key = key_.load();
  if (key && !key->empty()) {
    const auto auth = req.header("Authorization");
    const std::string_view given =
        auth && auth->size() > 7 && http::iequals(auth->substr(0, 7), "Bearer ")
            ? auth->substr(7)
            : std::string_view{};
    if (given.size() != key->size() || CRYPTO_memcmp(given.data(), key->data(), key->size()) != 0) {
      fail(*p, 401, "unauthorized",
           auth ? "wrong API key" : "send the API key as 'Authorization: Bearer KEY'");
      return;
    }
  }
  const bool get_ok =
      p->method == protocol::ApiMethod::Info || p->method == protocol::ApiMethod::Channels;
  if (req.method != "POST" && !(get_ok && (req.method == "GET" || req.method == "HEAD"))) {
    fail(*p, 405, "method_not_allowed", get_ok ? "use GET or POST" : "use POST");
    return;
  }
  protocol::ApiRequest r;
  protocol::ApiError err;
  protocol::ApiLimits limits;
  limits.max_content = cfg_.max_content_size;
  if (!protocol::parse_api_request(p->method, body, limits, r, err)) {
    fail(*p, err.status, err.code, err.message);
    return;
  }
  switch (p->method) {
    case protocol::ApiMethod::Publish:
    case protocol::ApiMethod::Broadcast:
      publish(std::move(p), r);
      return;
    case protocol::ApiMethod::History:
    case protocol::ApiMethod::Presence:
      history(std::move(p), r);
      return;
    case protocol::ApiMethod::Info:
    case protocol::ApiMethod::Channels:
    case protocol::ApiMethod::Disconnect:
    case protocol::ApiMethod::Subscribe:
    case protocol::ApiMethod::Unsubscribe:
      on_nodes(std::move(p), r, body);
      return;
  }
}

void Api::publish(std::unique_ptr<Pending> p, const protocol::ApiRequest& r) {
  const TraceContext trace = p->span.valid() ? to_trace_context(p->span) : TraceContext{};
  std::shared_ptr<Pending> shared(std::move(p));
  const std::vector<std::string> one{r.channel};
  const std::vector<std::string>& channels =
      shared->method == protocol::ApiMethod::Publish ? one : r.channels;
  shared->results.resize(channels.size());
  shared->left = channels.size();
  for (size_t i = 0; i < channels.size(); ++i) {
    const uint64_t token = next_token_++;
    pending_.emplace(token, PendingRef{shared, i});
    outbox_[worker_for(channels[i])].push_back(PublishTask{channels[i], r.content, trace, token});
  }
}

void Api::flush_publishes() {
  for (size_t w = 0; w < outbox_.size(); ++w) {
    if (outbox_[w].empty()) continue;
    Worker* worker = node_.workers[w];
    worker->loop().post([worker, tasks = std::move(outbox_[w])] {
      for (const PublishTask& t : tasks) worker->api_publish(t.channel, t.content, t.parent, t.token);
    });
    outbox_[w] = {};
  }
}

void Api::published(stream::PublishResult& r) {
  auto it = pending_.find(r.connection_id & ~Worker::kApiConnection);
  if (it == pending_.end()) return;
  PendingRef ref = std::move(it->second);
  pending_.erase(it);
  Pending& p = *ref.pending;
  std::string& out = p.results[ref.index];
  out = "{\"channel\":";
  json_str(out, r.channel);
  if (r.ok) {
    out += ",\"epoch\":";
    json_str(out, r.epoch);
    out += ",\"offset\":" + std::to_string(r.offset) + "}";
  } else {
    out += ",\"error\":" + error_body("unavailable",
                                      "not published: the cluster link is down (Redis "
                                      "unreachable); publish again later")
                               .substr(9);
    out.pop_back();
    out += "}";
  }
  if (--p.left > 0) return;
  if (p.method == protocol::ApiMethod::Publish) {
    if (!r.ok) {
      fail(p, 503, "unavailable",
           "not published: the cluster link is down (Redis unreachable); publish again later");
    } else {
      finish(p, 200, std::move(p.results[0]));
    }
    return;
  }
  std::string body = "{\"results\":[";
  for (size_t i = 0; i < p.results.size(); ++i) {
    if (i) body += ',';
    body += p.results[i];
  }
  body += "]}";
  finish(p, 200, std::move(body));
}

void Api::history(std::unique_ptr<Pending> p, const protocol::ApiRequest& r) {
  const uint64_t token = next_token_++;
  stream::Request req;
  req.kind = p->method == protocol::ApiMethod::Presence ? stream::Request::Kind::Presence
                                                       : stream::Request::Kind::History;
  req.connection_id = Worker::kApiConnection | token;
  req.channel = r.channel;
  req.has_since = r.has_since;
  req.epoch = r.epoch;
  req.since = r.since;
  req.limit = r.limit;
  req.started_unix_ns = p->start_ns;
  if (p->span.valid()) req.parent = to_trace_context(p->span);
  p->channel = r.channel;
  p->has_since = r.has_since;
  pending_.emplace(token, PendingRef{std::shared_ptr<Pending>(std::move(p)), 0});
  Worker* worker = node_.workers[worker_for(r.channel)];
  worker->loop().post([worker, req = std::move(req)]() mutable {
    worker->api_stream_request(std::move(req));
  });
}

void Api::on_reply(stream::Reply&& reply) {
  // The publications' references travel with the task; a task that never
  // runs (the API stopped first) is drained in stop(), which gives them back.
  auto shared = std::make_shared<stream::Reply>(std::move(reply));
  http_.loop().post([this, shared] {
    stream::Reply& r = *shared;
    auto it = pending_.find(r.request.connection_id & ~Worker::kApiConnection);
    if (it != pending_.end()) {
      PendingRef ref = std::move(it->second);
      pending_.erase(it);
      Pending& p = *ref.pending;
      if (!r.ok) {
        fail(p, 503, "unavailable",
             "the channel's history and presence cannot be read while the cluster link is down; "
             "ask again later");
      } else if (r.request.kind == stream::Request::Kind::Presence) {
        if (!r.enabled) {
          fail(p, 400, "not_enabled",
               "presence is not enabled for this channel (a channel rule with presence = true)");
        } else {
          std::string out = "{\"channel\":";
          json_str(out, p.channel);
          out += "," + r.presence + "}";
          finish(p, 200, std::move(out));
        }
      } else {
        std::string out = "{\"channel\":";
        json_str(out, p.channel);
        out += ",\"epoch\":";
        json_str(out, r.epoch);
        out += ",\"offset\":" + std::to_string(r.offset);
        if (p.has_since) out += r.recovered ? ",\"recovered\":true" : ",\"recovered\":false";
        out += ",\"messages\":[";
        for (size_t i = 0; i < r.pubs.size(); ++i) {
          out += i ? ",{\"offset\":" : "{\"offset\":";
          out += std::to_string(r.pubs[i]->offset()) + ",\"content\":";
          json_str(out, r.pubs[i]->content());
          out += "}";
        }
        out += "]}";
        finish(p, 200, std::move(out));
      }
    }
    for (pubsub::Publication* pub : r.pubs) pub->unref();
    r.pubs.clear();
  });
}

// Channels, info, disconnect, subscribe, unsubscribe: every worker of this
// node does its part, and with --redis every node of the cluster does (the
// control plane); the answers are merged here.
void Api::on_nodes(std::unique_ptr<Pending> p, const protocol::ApiRequest& r,
                   std::string_view body) {
  std::shared_ptr<Pending> shared(std::move(p));
  auto answer = [this, shared](std::vector<NodeAnswer>&& answers, long missing) {
    http_.loop().post([this, shared, answers = std::move(answers), missing]() mutable {
      answer_nodes(*shared, answers, missing);
    });
  };
  if (control_ == nullptr) {
    run_on_node(node_, r, [answer](NodeAnswer&& a) mutable {
      std::vector<NodeAnswer> one;
      one.push_back(std::move(a));
      answer(std::move(one), 0);
    });
    return;
  }
  const uint64_t id = control_->request(r.method, body, std::move(answer));
  // Nodes that do not answer within the bound are named as missing.
  ClusterControl* control = control_;
  http_.loop().add_timer(kClusterAnswerTimeoutNs, 0, [control, id] { control->expire(id); });
}

void Api::answer_nodes(Pending& p, std::vector<NodeAnswer>& answers, long missing) {
  if (missing < 0) {
    fail(p, 503, "unavailable",
         "the cluster link is down (Redis unreachable): no node could be asked; try again later");
    return;
  }
  std::sort(answers.begin(), answers.end(),
            [](const NodeAnswer& a, const NodeAnswer& b) { return a.node_id < b.node_id; });
  uint64_t count = 0, connections = 0;
  std::map<std::string, uint64_t> channels;
  for (const NodeAnswer& a : answers) {
    count += a.count;
    connections += a.connections;
    for (const auto& [name, n] : a.channels) channels[name] += n;
  }
  std::string out;
  switch (p.method) {
    case protocol::ApiMethod::Channels: {
      out = "{\"channels\":[";
      bool first = true;
      for (auto& [name, n] : channels) {
        out += first ? "{\"channel\":" : ",{\"channel\":";
        first = false;
        json_str(out, name);
        out += ",\"subscribers\":" + std::to_string(n) + "}";
      }
      out += "]";
      break;
    }
    case protocol::ApiMethod::Info: {
      out = "{\"node_id\":";
      json_str(out, cfg_.node_id);
      out += ",\"version\":";
      json_str(out, WSTRACE_VERSION);
      const double uptime = static_cast<double>(unix_ns() - node_.started_unix_ns) / 1e9;
      out += ",\"uptime_seconds\":" + std::to_string(static_cast<uint64_t>(uptime)) +
             ",\"threads\":" + std::to_string(node_.workers.size()) +
             ",\"connections\":" + std::to_string(connections) +
             ",\"clustered\":" + (node_.clustered() ? "true" : "false") + ",\"nodes\":[";
      for (size_t i = 0; i < answers.size(); ++i) {
        out += i ? ",{\"node_id\":" : "{\"node_id\":";
        json_str(out, answers[i].node_id);
        out += ",\"connections\":" + std::to_string(answers[i].connections) + "}";
      }
      out += "]";
      break;
    }
    case protocol::ApiMethod::Disconnect:
      out = "{\"disconnected\":" + std::to_string(count);
      break;
    case protocol::ApiMethod::Subscribe:
      out = "{\"subscribed\":" + std::to_string(count);
      break;
    default:
      out = "{\"unsubscribed\":" + std::to_string(count);
      break;
  }
  if (p.method != protocol::ApiMethod::Info) out += ",\"nodes\":" + std::to_string(answers.size());
  if (missing > 0) out += ",\"missing_nodes\":" + std::to_string(missing);
  out += "}";
  finish(p, 200, std::move(out));
}

// ---------------------------------------------------------------------------
// Answers

void Api::fail(Pending& p, int status, std::string_view code, std::string_view message) {
  finish(p, status, error_body(code, message));
}

void Api::finish(Pending& p, int status, std::string body) {
  const uint64_t now = unix_ns();
  if (shard_ != nullptr) {
    node_.metrics.api_requests.add(
        *shard_, 1,
        static_cast<uint32_t>(p.method) * 4 + outcome_of(status));
    node_.metrics.api_duration.record(
        *shard_, static_cast<double>(now > p.start_ns ? now - p.start_ns : 0) / 1e9);
  }
  if (tracer_.will_export(p.span)) {
    const std::string name = "POST " + p.route;
    telemetry::SpanData d = tracer_.record(p.span, name, telemetry::SpanKind::Server);
    d.set("http.request.method", "POST");
    d.set("http.route", p.route);
    d.set("url.path", p.route);
    d.set("http.response.status_code", static_cast<int64_t>(status));
    d.set("websocket.node_id", cfg_.node_id);
    if (status >= 500) d.set_status(telemetry::StatusCode::Error, "HTTP " + std::to_string(status));
    tracer_.end(std::move(d), now);
  }
  http::Response r;
  r.status = status;
  r.content_type = "application/json";
  r.body = std::move(body);
  r.body += '\n';
  if (status == 401) r.extra_headers = "WWW-Authenticate: Bearer realm=\"wstrace\"\r\n";
  p.done.send(std::move(r));
}

}  // namespace wstrace::server
