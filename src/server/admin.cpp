// The admin API's answers: /api/stats, /api/connections, /api/channels,
// /api/samples (and its event stream), /api/traces, health, the dashboard.
#include <algorithm>
#include <cctype>
#include <charconv>
#include <cstdlib>

#include "dashboard/assets.h"
#include "server/gather.h"
#include "server/server.h"
#include "telemetry/json_writer.h"
#include "telemetry/span_ring.h"
#include "telemetry/trace_context.h"
#include "util/clock.h"
#include "util/log.h"
#include "version.h"

namespace wstrace::server {
namespace json = telemetry::json;
namespace {

uint64_t metric_int(const telemetry::MetricsSnapshot& s, std::string_view name) {
  const telemetry::MetricData* m = s.find(name);
  if (m == nullptr) return 0;
  int64_t total = 0;
  for (const auto& p : m->points) total += p.type == telemetry::Point::Type::Histogram
                                               ? static_cast<int64_t>(p.count)
                                               : p.as_int;
  return total < 0 ? 0 : static_cast<uint64_t>(total);
}

// Whether Accept-Encoding lists gzip (or *) with a q above 0.
bool accepts_gzip(const http::Request& req) {
  std::string v;
  if (!req.header_joined("Accept-Encoding", v)) return false;
  for (char& c : v) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  std::string_view rest = v;
  while (!rest.empty()) {
    const size_t comma = rest.find(',');
    std::string_view item = rest.substr(0, comma);
    rest = comma == std::string_view::npos ? std::string_view() : rest.substr(comma + 1);
    const size_t semi = item.find(';');
    std::string_view coding = item.substr(0, semi);
    while (!coding.empty() && coding.front() == ' ') coding.remove_prefix(1);
    while (!coding.empty() && coding.back() == ' ') coding.remove_suffix(1);
    if (coding != "gzip" && coding != "*") continue;
    if (semi == std::string_view::npos) return true;
    const std::string_view params = item.substr(semi + 1);
    const size_t q = params.find("q=");
    if (q == std::string_view::npos) return true;
    return std::strtod(std::string(params.substr(q + 2)).c_str(), nullptr) > 0;
  }
  return false;
}

// One /api/connections row.
void append_connection(std::string& out, const Worker::ConnInfo& c, bool events = false) {
  out += "{\"id\":";
  json::append_uint(out, c.id);
  out += ",\"peer\":";
  json::append_string(out, c.peer);
  out += ",\"state\":";
  json::append_string(out, c.state);
  if (!c.user_id.empty()) {
    out += ",\"user_id\":";
    json::append_string(out, c.user_id);
  }
  out += ",\"connected_seconds\":";
  json::append_double(out, static_cast<double>(unix_ns() - c.opened_unix_ns) / 1e9);
  out += ",\"subscriptions\":";
  json::append_uint(out, c.subscriptions);
  out += ",\"rtt_ms\":";
  json::append_double(out, c.rtt_ms);
  out += ",\"queued_bytes\":";
  json::append_uint(out, c.queued_bytes);
  out += ",\"kernel_queued_bytes\":";
  json::append_uint(out, c.kernel_queued_bytes);
  out += ",\"compression\":";
  out += c.deflate ? "true" : "false";
  out += ",\"messages_sent\":";
  json::append_uint(out, c.stats.messages_sent);
  out += ",\"messages_received\":";
  json::append_uint(out, c.stats.messages_received);
  out += ",\"bytes_sent\":";
  json::append_uint(out, c.stats.bytes_sent);
  out += ",\"bytes_received\":";
  json::append_uint(out, c.stats.bytes_received);
  out += ",\"errors\":";
  json::append_uint(out, c.stats.errors);
  out += ",\"messages_dropped\":";
  json::append_uint(out, c.stats.dropped());
  out += ",\"messages_dropped_by_reason\":{\"slow_consumer\":";
  json::append_uint(out, c.stats.dropped_slow_consumer);
  out += ",\"lost\":";
  json::append_uint(out, c.stats.dropped_lost);
  out += '}';
  out += ",\"thread\":";
  json::append_uint(out, c.thread);
  out += ",\"write_calls\":";
  json::append_uint(out, c.write_calls);
  out += ",\"trace_id\":\"" + c.trace_id + "\",\"span_id\":\"" + c.span_id + "\",\"sampled\":";
  out += c.sampled ? "true" : "false";
  if (events) {
    out += ",\"events\":";
    telemetry::append_events_json(out, c.events);
  }
  out += '}';
}

}  // namespace

void Server::append_partial(std::string& out, const std::vector<unsigned>& missing) {
  if (missing.empty()) return;
  out += ",\"partial\":true,\"missing_threads\":[";
  for (size_t i = 0; i < missing.size(); ++i) {
    if (i > 0) out += ',';
    json::append_uint(out, missing[i]);
  }
  out += ']';
}

std::vector<std::pair<unsigned, double>> Server::stalled_workers() const {
  std::vector<std::pair<unsigned, double>> out;
  const uint64_t now = mono_ns();
  for (const auto& w : workers_) {
    const uint64_t last = w->last_turn_ns();
    if (now > last && now - last > cfg_.stall_timeout_ns) {
      out.emplace_back(w->index(), static_cast<double>(now - last) / 1e9);
    }
  }
  return out;
}

Reading Server::reading() {
  Reading r;
  r.unix_ms = static_cast<int64_t>(unix_ns() / 1'000'000ull);
  read_metrics(node_->registry().collect(), r);
  r.connections = node_->websockets.load();
  for (auto& w : workers_) r.sockets_per_thread.push_back(w->socket_count());
  if (bridge_) r.cluster_link = bridge_->link_up() ? 1 : 0;
  return r;
}

std::string Server::stats_json() {
  Node& node = *node_;
  telemetry::MetricsSnapshot s = node.registry().collect();
  std::string out = "{\"node_id\":";
  json::append_string(out, cfg_.node_id);
  out += ",\"version\":";
  json::append_string(out, WSTRACE_VERSION);
  out += ",\"uptime_seconds\":";
  json::append_double(out, static_cast<double>(unix_ns() - node.started_unix_ns) / 1e9);
  out += ",\"threads\":";
  json::append_uint(out, workers_.size());
  out += ",\"draining\":";
  out += node.draining.load() ? "true" : "false";
  out += ",\"cluster\":";
  if (bridge_) {
    out += "{\"link_up\":";
    out += bridge_->link_up() ? "true" : "false";
    out += ",\"redis_subscriptions\":";
    json::append_uint(out, bridge_->redis_subscriptions());
    out += ",\"published_total\":";
    json::append_uint(out, metric_int(s, "websocket.pubsub.published"));
    out += ",\"received_total\":";
    json::append_uint(out, metric_int(s, "websocket.pubsub.received"));
    out += ",\"dropped_total\":";
    json::append_uint(out, metric_int(s, "websocket.pubsub.dropped"));
    out += '}';
  } else {
    out += "null";
  }
  out += ",\"connections\":{\"active\":";
  json::append_int(out, node.websockets.load());
  out += ",\"max\":";
  json::append_uint(out, node.max_connections);
  size_t sockets = 0;
  for (auto& w : workers_) sockets += w->socket_count();
  out += ",\"sockets\":";
  json::append_uint(out, sockets);
  out += ",\"sockets_per_thread\":[";
  for (size_t i = 0; i < workers_.size(); ++i) {
    if (i > 0) out += ',';
    json::append_uint(out, workers_[i]->socket_count());
  }
  out += "],\"accepted_total\":";
  const telemetry::MetricData* conns = s.find("websocket.connections");
  uint64_t accepted = 0, rejected = 0;
  if (conns != nullptr) {
    for (const auto& p : conns->points) {
      bool is_accepted = !p.labels.empty() && p.labels[0].second == "accepted";
      (is_accepted ? accepted : rejected) += static_cast<uint64_t>(p.as_int);
    }
  }
  json::append_uint(out, accepted);
  out += ",\"rejected_total\":";
  json::append_uint(out, rejected);
  out += "},\"channels\":";
  json::append_uint(out, node.directory.size());
  out += ",\"subscriptions\":";
  json::append_uint(out, metric_int(s, "websocket.subscriptions.active"));
  out += ",\"messages\":{\"received_total\":";
  json::append_uint(out, metric_int(s, "websocket.messages.received"));
  out += ",\"sent_total\":";
  json::append_uint(out, metric_int(s, "websocket.messages.sent"));
  out += ",\"broadcasted_total\":";
  json::append_uint(out, metric_int(s, "websocket.messages.broadcasted"));
  out += ",\"dropped_total\":";
  json::append_uint(out, metric_int(s, "websocket.messages.dropped"));
  out += "},\"bytes\":{\"received_total\":";
  json::append_uint(out, metric_int(s, "websocket.bytes.received"));
  out += ",\"sent_total\":";
  json::append_uint(out, metric_int(s, "websocket.bytes.sent"));
  out += "},\"heartbeat_timeouts_total\":";
  json::append_uint(out, metric_int(s, "websocket.heartbeat.timeouts"));
  out += ",\"slow_consumer_disconnects_total\":";
  json::append_uint(out, metric_int(s, "websocket.slow_consumer.disconnects"));
  out += ",\"errors_total\":";
  json::append_uint(out, metric_int(s, "websocket.errors"));
  {
    Worker::HistoryTotals h;
    for (auto& w : workers_) {
      auto t = w->history_totals();
      h.bytes += t.bytes;
      h.entries += t.entries;
      h.streams += t.streams;
      h.evicted_for_memory += t.evicted_for_memory;
    }
    out += ",\"history\":{\"entries\":";
    json::append_uint(out, h.entries);
    out += ",\"bytes\":";
    json::append_uint(out, h.bytes);
    out += ",\"memory_limit\":";
    json::append_uint(out, cfg_.history_memory);
    out += ",\"streams\":";
    json::append_uint(out, h.streams);
    out += ",\"evicted_for_memory\":";
    json::append_uint(out, h.evicted_for_memory);
    out += ",\"recoveries\":{\"recovered\":";
    const telemetry::MetricData* rec = s.find("websocket.recoveries");
    uint64_t recovered = 0, not_recovered = 0;
    if (rec != nullptr) {
      for (const auto& p : rec->points) {
        const bool ok = !p.labels.empty() && p.labels[0].second == "recovered";
        (ok ? recovered : not_recovered) += static_cast<uint64_t>(p.as_int);
      }
    }
    json::append_uint(out, recovered);
    out += ",\"not_recovered\":";
    json::append_uint(out, not_recovered);
    out += "},\"recovered_messages\":";
    json::append_uint(out, metric_int(s, "websocket.recovery.messages"));
    out += ",\"gaps\":";
    json::append_uint(out, metric_int(s, "websocket.gaps"));
    out += '}';
  }
  out += ",\"compression\":{\"connections\":";
  json::append_int(out, node.deflate_connections.load(std::memory_order_relaxed));
  out += ",\"connection_inflaters\":";
  json::append_int(out, node.connection_inflaters.load(std::memory_order_relaxed));
  out += "}}";
  return out;
}

std::string Server::connections_json(const http::Request& req) {
  size_t limit = 100, offset = 0;
  if (auto v = http::query_param(req.query, "limit")) limit = std::strtoull(v->c_str(), nullptr, 10);
  if (auto v = http::query_param(req.query, "offset")) offset = std::strtoull(v->c_str(), nullptr, 10);
  limit = std::clamp<size_t>(limit, 1, 1000);
  // Filters: ?user=U (the token's sub), ?channel=C (subscribed to C),
  // ?thread=N (the worker's index).
  Worker::ConnFilter filter;
  if (auto v = http::query_param(req.query, "user")) filter.user = *v;
  if (auto v = http::query_param(req.query, "channel")) filter.channel = *v;
  if (auto v = http::query_param(req.query, "peer")) filter.peer = *v;
  long thread = -1;
  if (auto v = http::query_param(req.query, "thread")) thread = std::strtol(v->c_str(), nullptr, 10);
  std::vector<Worker::ConnInfo> all;
  auto parts = gather<std::vector<Worker::ConnInfo>>([filter, thread](Worker& w) {
    std::vector<Worker::ConnInfo> mine;
    if (thread < 0 || static_cast<unsigned>(thread) == w.index()) w.collect_connections(mine, filter);
    return mine;
  });
  for (auto& part : parts.results) {
    all.insert(all.end(), std::make_move_iterator(part.begin()), std::make_move_iterator(part.end()));
  }
  std::sort(all.begin(), all.end(), [](const auto& a, const auto& b) { return a.id < b.id; });
  std::string out = "{\"total\":";
  json::append_uint(out, all.size());
  out += ",\"offset\":";
  json::append_uint(out, offset);
  out += ",\"limit\":";
  json::append_uint(out, limit);
  append_partial(out, parts.missing);
  out += ",\"connections\":[";
  for (size_t i = offset; i < all.size() && i < offset + limit; ++i) {
    const auto& c = all[i];
    if (i > offset) out += ',';
    append_connection(out, c);
  }
  out += "]}";
  return out;
}

// /api/connections/<id>: one connection with its span's events so far.
http::Response Server::connection_json(uint64_t id) {
  Worker::ConnFilter filter;
  filter.id = id;
  filter.events = true;
  auto parts = gather<std::vector<Worker::ConnInfo>>([filter](Worker& w) {
    std::vector<Worker::ConnInfo> mine;
    w.collect_connections(mine, filter);
    return mine;
  });
  for (const auto& part : parts.results) {
    if (part.empty()) continue;
    std::string out = "{\"connection\":";
    append_connection(out, part.front(), true);
    out += '}';
    return {200, "application/json", std::move(out), {}};
  }
  std::string why = parts.missing.empty() ? "no open connection has this id"
                                          : "no answering thread has it (some did not answer)";
  return {404, "application/json", "{\"error\":\"" + why + "\"}", {}};
}

std::string Server::channels_json() {
  // Subscribers from every worker; epoch, offset and history from each
  // channel's owner (in-process mode).
  struct Part {
    std::vector<std::pair<std::string, size_t>> channels;
    std::vector<Worker::StreamInfo> streams;
  };
  auto parts = gather<Part>([](Worker& w) {
    Part mine;
    w.collect_channels(mine.channels);
    w.collect_streams(mine.streams);
    return mine;
  });
  std::unordered_map<std::string, size_t> counts;
  std::unordered_map<std::string, Worker::StreamInfo> streams;
  for (auto& part : parts.results) {
    for (auto& [name, n] : part.channels) counts[name] += n;
    for (auto& info : part.streams) {
      // A channel nobody subscribes to is listed while it keeps history.
      if (info.history_entries > 0) counts.try_emplace(info.channel, 0);
      streams[info.channel] = std::move(info);
    }
  }
  std::vector<std::pair<std::string, size_t>> sorted(counts.begin(), counts.end());
  std::sort(sorted.begin(), sorted.end(), [](const auto& a, const auto& b) {
    return a.second != b.second ? a.second > b.second : a.first < b.first;
  });
  std::string out = "{\"total\":";
  json::append_uint(out, sorted.size());
  append_partial(out, parts.missing);
  out += ",\"channels\":[";
  for (size_t i = 0; i < sorted.size(); ++i) {
    if (i > 0) out += ',';
    out += "{\"name\":";
    json::append_string(out, sorted[i].first);
    out += ",\"subscribers\":";
    json::append_uint(out, sorted[i].second);
    auto it = streams.find(sorted[i].first);
    if (it != streams.end()) {
      out += ",\"epoch\":";
      json::append_string(out, it->second.epoch);
      out += ",\"offset\":";
      json::append_uint(out, it->second.offset);
      out += ",\"history\":{\"entries\":";
      json::append_uint(out, it->second.history_entries);
      out += ",\"bytes\":";
      json::append_uint(out, it->second.history_bytes);
      out += '}';
    }
    out += '}';
  }
  out += "]}";
  return out;
}

void Server::admin_request(const http::Request& req, http::Responder done) {
  // With --redis, one trace's spans come from every node that holds some
  // (local=1: this node's only).
  if (control_ && req.path == "/api/traces") {
    const std::string trace_id = http::query_param(req.query, "trace_id").value_or("");
    if (telemetry::TraceId::from_hex(trace_id) && http::query_param(req.query, "local") != "1") {
      cluster_spans(trace_id, std::move(done));
      return;
    }
  }
  done.send(handle_admin(req));
}

// {"spans":[every node's spans],"nodes":[ids that answered],"missing":n};
// the link down: this node's spans and "missing":null with the reason.
void Server::cluster_spans(const std::string& trace_id, http::Responder done) {
  constexpr uint64_t kAnswerTimeoutNs = 2'000'000'000ull;
  auto responder = std::make_shared<http::Responder>(std::move(done));
  Node* node = node_.get();
  auto answer = [responder, node, trace_id](std::vector<NodeAnswer>&& answers, long missing) {
    std::string out;
    if (missing < 0) {
      out = node->telemetry->recent_spans_json(trace_id, ClusterControl::kMaxSpansPerNode);
      out.pop_back();
      out += ",\"nodes\":[";
      json::append_string(out, node->cfg.node_id);
      out += "],\"missing\":null,\"error\":\"the cluster link is down: this node's spans only\"}";
      responder->send({200, "application/json", std::move(out), {}});
      return;
    }
    std::sort(answers.begin(), answers.end(),
              [](const NodeAnswer& a, const NodeAnswer& b) { return a.node_id < b.node_id; });
    out = "{\"spans\":[";
    bool first = true;
    for (const NodeAnswer& a : answers) {
      if (a.spans.size() <= 2) continue;  // "[]"
      if (!first) out.push_back(',');
      first = false;
      out.append(a.spans, 1, a.spans.size() - 2);
    }
    out += "],\"nodes\":[";
    for (size_t i = 0; i < answers.size(); ++i) {
      if (i) out.push_back(',');
      json::append_string(out, answers[i].node_id);
    }
    out += "],\"missing\":";
    json::append_uint(out, static_cast<uint64_t>(missing));
    out.push_back('}');
    responder->send({200, "application/json", std::move(out), {}});
  };
  const uint64_t id = control_->request_spans(trace_id, std::move(answer));
  ClusterControl* control = control_.get();
  admin_->loop().add_timer(kAnswerTimeoutNs, 0, [control, id] { control->expire(id); });
}

http::Response Server::handle_admin(const http::Request& req) {
  const std::string_view path = req.path;
  constexpr const char* kJson = "application/json";
  if (path == "/healthz") {
    // Alive means every event loop turns: one that has not for
    // --stall-timeout is stuck (a blocking call, a loop that never yields).
    auto stalled = stalled_workers();
    if (stalled.empty()) return {200, "text/plain; charset=utf-8", "ok\n", {}};
    std::string body;
    for (const auto& [index, seconds] : stalled) {
      char line[128];
      std::snprintf(line, sizeof line, "worker %u: event loop stalled for %.1f s\n", index, seconds);
      body += line;
    }
    return {503, "text/plain; charset=utf-8", body, {}};
  }
  if (path == "/readyz") {
    if (node_->draining.load()) return {503, "text/plain; charset=utf-8", "draining\n", {}};
    if (node_->cluster_up && !node_->cluster_up()) {
      return {503, "text/plain; charset=utf-8", "cluster link down (Redis unreachable)\n", {}};
    }
    return {200, "text/plain; charset=utf-8", "ready\n", {}};
  }
  if (path == "/metrics") {
    return {200, "text/plain; version=0.0.4; charset=utf-8", node_->telemetry->prometheus_text(), {}};
  }
  if (path == "/api/stats") return {200, kJson, stats_json(), {}};
  if (path.rfind("/api/connections/", 0) == 0) {
    const std::string_view rest = path.substr(std::string_view("/api/connections/").size());
    uint64_t id = 0;
    auto [p, ec] = std::from_chars(rest.data(), rest.data() + rest.size(), id);
    if (ec != std::errc() || p != rest.data() + rest.size() || id == 0) {
      return {400, kJson, "{\"error\":\"the connection id must be a positive integer\"}", {}};
    }
    return connection_json(id);
  }
  if (path == "/api/connections") return {200, kJson, connections_json(req), {}};
  if (path == "/api/channels") return {200, kJson, channels_json(), {}};
  if (path == "/api/samples/stream") {
    // Server-Sent Events: each new sample as one `data:` line.
    http::Response r{200, "text/event-stream", "retry: 2000\n\n", {}};
    r.stream_topic = "samples";
    return r;
  }
  if (path == "/api/samples") {
    int64_t since = 0;
    if (auto v = http::query_param(req.query, "since")) since = std::strtoll(v->c_str(), nullptr, 10);
    return {200, kJson, samples_json(samples_.since(since), sampler_ ? sampler_->interval_ms() : 1000,
                                     samples_.capacity()), {}};
  }
  if (path == "/api/traces") {
    size_t limit = 100;
    if (auto v = http::query_param(req.query, "limit")) limit = std::strtoull(v->c_str(), nullptr, 10);
    std::string trace_id = http::query_param(req.query, "trace_id").value_or("");
    return {200, kJson, node_->telemetry->recent_spans_json(trace_id, limit), {}};
  }
  // The dashboard: its page, script, style and Chart.js, from the binary.
  if (auto a = dashboard::asset(path)) {
    // Revalidated on every load (no-cache) against the content's ETag: a
    // reload of an unchanged binary's page is a few 304s.
    std::string headers = "Cache-Control: no-cache\r\nETag: " + std::string(a->etag) +
                          "\r\nVary: Accept-Encoding\r\n";
    if (auto inm = req.header("If-None-Match"); inm && inm->find(a->etag) != std::string_view::npos) {
      return {304, std::string(a->content_type), {}, std::move(headers)};
    }
    if (accepts_gzip(req)) {
      return {200, std::string(a->content_type), std::string(a->gzip),
              headers + "Content-Encoding: gzip\r\n"};
    }
    return {200, std::string(a->content_type), std::string(a->body), std::move(headers)};
  }

  return {404, "text/plain; charset=utf-8", "not found\n", {}};
}

}  // namespace wstrace::server
