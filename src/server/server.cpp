#include "server/server.h"

#include "server/gather.h"
#include "server/tracing.h"

#include <fcntl.h>
#include <unistd.h>

#include <cerrno>
#include <condition_variable>
#include <cstring>
#include <mutex>
#include <random>
#include <set>
#include <thread>

#include "net/socket.h"
#include "ws/handshake.h"
#include "telemetry/json_writer.h"
#include "util/clock.h"
#include "util/log.h"
#include "util/units.h"
#include "version.h"

namespace wstrace::server {
namespace json = telemetry::json;
namespace {

uint64_t make_node_hash(const std::string& node_id) {
  std::random_device rd;
  uint64_t h = (uint64_t{rd()} << 32) ^ rd();
  for (char c : node_id) h = (h ^ static_cast<uint8_t>(c)) * 0x100000001b3ull;
  return h == 0 ? 1 : h;
}

}  // namespace

Server::Server(Config cfg) : cfg_(std::move(cfg)) {}

Server::~Server() { shutdown(); }

bool Server::start() {
  log::configure(cfg_.log_level, cfg_.log_format);
  node_ = std::make_unique<Node>(cfg_);
  Node& node = *node_;
  node.started_unix_ns = unix_ns();
  node.node_hash = make_node_hash(cfg_.node_id);

  // Load the code of the first handshake (OpenSSL's SHA-1 and base64) now, so
  // the first client does not pay for it and memory per connection measures
  // connections only.
  (void)ws::accept_key("dGhlIHNhbXBsZSBub25jZQ==");

  const uint64_t fd_limit = net::raise_fd_limit();
  // Keep some descriptors for listeners, Redis, the admin API and exports.
  const uint64_t fd_capacity = fd_limit > 64 ? fd_limit - 64 : fd_limit;
  node.max_connections = cfg_.max_connections;
  if (node.max_connections == 0 || node.max_connections > fd_capacity) {
    if (cfg_.max_connections > fd_capacity) {
      WS_LOG(Warn, "--max-connections is above what the open-files limit allows",
             {"max_connections", cfg_.max_connections}, {"rlimit_nofile", fd_limit});
    }
    node.max_connections = fd_capacity;
  }

  if (cfg_.max_connections_per_ip > 0 || cfg_.handshake_rate_per_ip > 0) {
    node.ip_limits =
        std::make_unique<IpLimits>(cfg_.max_connections_per_ip, cfg_.handshake_rate_per_ip);
  }

  unsigned threads = cfg_.threads;
  if (threads == 0) threads = std::max(1u, std::thread::hardware_concurrency());

  telemetry::TelemetryOptions topts;
  topts.service_version = WSTRACE_VERSION;
  topts.node_id = cfg_.node_id;
  topts.span_ring_size = cfg_.trace_buffer;
  node.telemetry = std::make_unique<telemetry::Telemetry>(topts);
  node.metrics.register_all(node.registry());
  node.rules = std::make_shared<stream::Rules>(cfg_.channel_rules);
  node.registry().add_observable_gauge(
      "websocket.history.entries", "Messages kept in channel history on this node (in-process)",
      "{message}", [this](std::vector<telemetry::Point>& out) {
        size_t n = 0;
        for (auto& w : workers_) n += w->history_totals().entries;
        out.push_back(telemetry::Point::of_int(static_cast<int64_t>(n)));
      });
  node.registry().add_observable_gauge(
      "websocket.history.bytes", "Memory taken by channel history on this node (in-process)",
      "By", [this](std::vector<telemetry::Point>& out) {
        size_t n = 0;
        for (auto& w : workers_) n += w->history_totals().bytes;
        out.push_back(telemetry::Point::of_int(static_cast<int64_t>(n)));
      });
  node.registry().add_observable_gauge(
      "websocket.channels.active", "Channels with at least one subscriber on this node",
      "{channel}", [&node](std::vector<telemetry::Point>& out) {
        out.push_back(telemetry::Point::of_int(static_cast<int64_t>(node.directory.size())));
      });
  pubsub::Publication::set_completion_hook(&on_publication_done, &node);
  if (cfg_.channel_metrics > 0) {
    channel_metrics_ = std::make_unique<ChannelMetrics>(cfg_.channel_metrics, [this] {
      ChannelMetrics::Sample merged;
      for (auto& part : gather<ChannelMetrics::Sample>([](Worker& w) {
                          ChannelMetrics::Sample s;
                          w.channel_sample(s);
                          return s;
                        }).results) {
        for (auto& [name, n] : part.published) merged.published[name] += n;
        for (auto& [name, n] : part.subscribers) merged.subscribers[name] += n;
      }
      return merged;
    });
    channel_metrics_->register_all(node.registry());
  }

  if (!cfg_.redis.empty()) {
    std::string url_error;
    auto url = cluster::parse_redis_url(cfg_.redis, &url_error);
    if (!url) {
      WS_LOG(Error, "bad --redis URL", {"redis", cfg_.redis}, {"error", url_error});
      return false;
    }
    cluster::BridgeOptions bopts;
    bopts.url = *url;
    bopts.node_id = cfg_.node_id;
    bopts.prefix = cfg_.redis_prefix + ":";
    bopts.node_hash = node.node_hash;
    bopts.stream_ttl_ns = cfg_.stream_ttl_ns;
    bopts.presence_ttl_ns = cfg_.presence_ttl_ns;
    bopts.rules = node.rules;
    bridge_ = std::make_unique<cluster::Bridge>(
        bopts, node.registry(),
        [&node](std::vector<pubsub::Publication*>&& batch) {
          // From the bridge thread to every worker: one task per worker per batch.
          for (auto* p : batch) p->expect_deliveries(static_cast<uint32_t>(node.workers.size()));
          for (Worker* w : node.workers) {
            for (auto* p : batch) p->ref();
            w->post_publications(batch);
          }
          for (auto* p : batch) p->unref();
        },
        [&node](stream::Reply&& reply) {
          node.workers[reply.request.worker]->post_stream_reply(std::move(reply));
        },
        [&node](unsigned worker, std::vector<stream::PublishResult>&& results) {
          node.workers[worker]->post_publish_results(std::move(results));
        });
    cluster::Bridge* bridge = bridge_.get();
    node.cluster_request = [bridge](stream::Request&& r) { bridge->request(std::move(r)); };
    node.directory.set_listener(
        [bridge](const std::string& channel, bool active) { bridge->set_interest(channel, active); });
    node.on_local_publish = [bridge](const std::vector<pubsub::Publication*>& batch) {
      bridge->publish(batch);
    };
    node.cluster_up = [bridge] { return bridge->link_up(); };
    node.cluster_presence = [bridge](PresenceChange&& p) {
      bridge->presence_update(std::move(p.channel), p.connection_id, std::move(p.user), p.joined,
                              p.presence, p.join_leave);
    };
    bridge->set_member_events([&node](const std::string& channel, std::string frame, bool join,
                                      uint64_t subject) {
      // Built once, sent by every worker to its subscribers of the channel.
      pubsub::Frame* f = pubsub::Frame::make(ws::Opcode::Text, frame);
      const OutType type = join ? OutType::Join : OutType::Leave;
      for (Worker* w : node.workers) {
        f->ref();
        w->loop().post([w, channel, f, type, subject] { w->deliver_event(channel, f, type, subject); });
      }
      f->unref();
    });
    // Every node acts on the server API's cluster-wide requests, with or
    // without an API listener of its own.
    control_ = std::make_unique<ClusterControl>(node, *bridge_);
    control_->attach();
  }

  {
    std::shared_ptr<const auth::KeySet> keys;
    std::string key_error;
    if (!load_auth_keys(cfg_, keys, key_error)) {
      WS_LOG(Error, "cannot use the token keys", {"error", key_error});
      return false;
    }
    if (keys) {
      for (const auto& line : keys->skipped()) WS_LOG(Warn, "token key left out", {"key", line});
      WS_LOG(Info, "token keys loaded", {"keys", static_cast<uint64_t>(keys->size())});
      node.auth_configured = true;
      node.auth_keys.store(std::move(keys));
    }
  }
  if (!cfg_.tls_cert.empty()) {
    std::string tls_error;
    auto tls = net::TlsContext::load(cfg_.tls_cert, cfg_.tls_key, tls_error);
    if (!tls) {
      WS_LOG(Error, "cannot use the TLS certificate", {"error", tls_error});
      return false;
    }
    WS_LOG(Info, "TLS certificate loaded", {"subject", tls->subject()},
           {"not_after", tls->not_after()}, {"kernel_tls", tls->kernel_tls()});
    node.tls.store(std::move(tls));
  }

  node.policy.pubsub_path = "/ws";
  if (cfg_.echo) node.policy.echo_path = "/echo";
  node.policy.allowed_origins = cfg_.allowed_origins;
  node.policy.compression = cfg_.compression;

  // Without --reuse-port: one listening socket, watched by every worker
  // (EPOLLEXCLUSIVE wakes one), so no other process can bind the port.
  // With it: one SO_REUSEPORT socket per worker, in the kernel's group that
  // other --reuse-port processes on this port join too. Either way, the
  // worker that accepts hands the connection to the one with fewest sockets.
  std::string error;
  auto addr = net::Address::parse(cfg_.listen, &error);
  if (!addr) {
    WS_LOG(Error, "bad --listen address", {"listen", cfg_.listen}, {"error", error});
    return false;
  }
  std::vector<int> fds;
  auto close_all = [&fds] {
    for (int f : fds) ::close(f);
  };
  for (unsigned i = 0; i < threads; ++i) {
    if (i > 0 && !cfg_.reuse_port) {
      int fd = ::fcntl(fds[0], F_DUPFD_CLOEXEC, 0);
      if (fd < 0) {
        WS_LOG(Error, "cannot share the listening socket", {"error", strerror(errno)});
        close_all();
        return false;
      }
      fds.push_back(fd);
      continue;
    }
    net::Address a = *addr;
    if (i > 0) {
      // Port 0 picked a free port for the first socket; the others share it.
      auto* sin = reinterpret_cast<sockaddr_in*>(&a.storage);
      auto* sin6 = reinterpret_cast<sockaddr_in6*>(&a.storage);
      if (a.storage.ss_family == AF_INET) sin->sin_port = htons(port_);
      if (a.storage.ss_family == AF_INET6) sin6->sin6_port = htons(port_);
    }
    int fd = net::listen_on(a, cfg_.reuse_port);
    if (fd < 0) {
      if (fd == -EADDRINUSE) {
        WS_LOG(Error,
               cfg_.reuse_port
                   ? "cannot listen: another process holds the --listen port without --reuse-port"
                   : "cannot listen: another process already listens on the --listen port",
               {"listen", cfg_.listen},
               {"fix", "stop that process, choose another --listen port, or start every process "
                       "that shares the port with --reuse-port"});
      } else {
        WS_LOG(Error, "cannot listen on --listen", {"listen", cfg_.listen},
               {"error", strerror(-fd)});
      }
      close_all();
      return false;
    }
    if (i == 0) port_ = net::local_address(fd)->port();
    fds.push_back(fd);
  }

  if (cfg_.admin_enabled()) {
    auto admin_addr = net::Address::parse(cfg_.admin, &error);
    if (!admin_addr) {
      WS_LOG(Error, "bad --admin address", {"admin", cfg_.admin}, {"error", error});
      close_all();
      return false;
    }
    admin_ = std::make_unique<http::Server>(
        [this](const http::Request& r, std::string_view, http::Responder done) {
          admin_request(r, std::move(done));
        },
        http::Server::Options{.thread_name = "ws-admin"});
    if (!admin_->start(*admin_addr, &error)) {
      if (error.find(strerror(EADDRINUSE)) != std::string::npos) {
        WS_LOG(Error, "cannot listen: another process already listens on the --admin port",
               {"admin", cfg_.admin},
               {"fix", "stop that process, choose another --admin address (port 0 picks a free "
                       "one), or --admin off"});
      } else {
        WS_LOG(Error, "cannot listen on --admin", {"admin", cfg_.admin}, {"error", error});
      }
      admin_.reset();
      close_all();
      return false;
    }
  }

  for (unsigned i = 0; i < threads; ++i) {
    workers_.push_back(std::make_unique<Worker>(node, i, fds[i]));
    node.workers.push_back(workers_.back().get());
  }
  if (cfg_.api_enabled()) {
    auto api_addr = net::Address::parse(cfg_.api, &error);
    api_ = std::make_unique<Api>(node, cfg_, control_.get());
    if (!api_addr || !api_->start(*api_addr, &error)) {
      if (error.find(strerror(EADDRINUSE)) != std::string::npos) {
        WS_LOG(Error, "cannot listen: another process already listens on the --api port",
               {"api", cfg_.api},
               {"fix", "stop that process, or choose another --api address (port 0 picks a "
                       "free one)"});
      } else {
        WS_LOG(Error, "cannot listen on --api", {"api", cfg_.api}, {"error", error});
      }
      api_.reset();
      return false;
    }
  }
  node.telemetry->start();
  if (bridge_) bridge_->start(node.registry().shard(telemetry::kMaxShards - 1));
  for (auto& w : workers_) w->start();

  if (admin_) {
    // One sample per second of the node for /api/samples (the dashboard).
    sampler_ = std::make_unique<Sampler>([this] { return reading(); }, samples_, 1000,
                                         [this](const Sample& smp) {
                                           admin_->publish("samples", "data: " + sample_json(smp) + "\n\n");
                                         });
    sampler_->start();
  }
  started_ = true;
  std::string where = addr->host() + ":" + std::to_string(port_);
  WS_LOG(Info, "wstrace listening",
         {"ws", std::string(node.tls.load() ? "wss://" : "ws://") + where + "/ws"},
         {"admin", admin_ ? cfg_.admin.substr(0, cfg_.admin.rfind(':')) + ":" +
                                std::to_string(admin_->port())
                          : std::string("off")},
         {"api", api_ ? cfg_.api.substr(0, cfg_.api.rfind(':')) + ":" + std::to_string(api_->port())
                      : std::string("off")},
         {"port", port_}, {"admin_port", admin_port()}, {"api_port", api_port()},
         {"threads", threads},
         {"reuse_port", cfg_.reuse_port},
         {"node_id", cfg_.node_id}, {"version", WSTRACE_VERSION});
  // A message larger than --max-backpressure is delivered only onto an empty
  // queue: a second one before the first is written closes the client.
  const uint64_t largest_out =
      std::max<uint64_t>(cfg_.max_content_size + 256, cfg_.echo ? cfg_.max_message_size : 0);
  if (largest_out > cfg_.max_backpressure) {
    WS_LOG(Warn,
           "messages can be larger than --max-backpressure: a client gets one only when nothing "
           "else is queued for it, and is closed with 4429 if another comes before it is written",
           {"max_backpressure", format_size(cfg_.max_backpressure)},
           {"largest_message", format_size(largest_out)},
           {"fix", "raise --max-backpressure to a few times --max-content-size (and "
                   "--max-message-size with --echo)"});
  }
  WS_LOG(Info, "capacity", {"rlimit_nofile", fd_limit},
         {"max_connections", node.max_connections},
         {"max_message_size", format_size(cfg_.max_message_size)},
         {"max_backpressure", format_size(cfg_.max_backpressure)},
         {"send_buffer", cfg_.send_buffer == 0 ? std::string("auto") : format_size(cfg_.send_buffer)},
         {"compression", cfg_.compression}, {"echo", cfg_.echo});
  return true;
}

void Server::shutdown() {
  if (stopped_ || !started_) return;
  stopped_ = true;
  Node& node = *node_;
  node.draining.store(true);
  const uint64_t start = mono_ns();
  const uint64_t deadline = start + cfg_.shutdown_timeout_ns;
  // Leave part of the budget for flushing telemetry.
  const uint64_t reserve = std::min<uint64_t>(cfg_.shutdown_timeout_ns / 4, 2'000'000'000ull);
  const uint64_t close_deadline = deadline - reserve;
  size_t open = 0;
  for (auto& w : workers_) open += w->socket_count();
  WS_LOG(Info, "shutting down", {"connections", open},
         {"timeout", format_duration_ns(cfg_.shutdown_timeout_ns)});

  for (auto& w : workers_) w->begin_shutdown();
  for (;;) {
    size_t left = 0;
    for (auto& w : workers_) left += w->socket_count();
    if (left == 0 || mono_ns() >= close_deadline) {
      if (left > 0) WS_LOG(Warn, "closing the remaining connections", {"connections", left});
      break;
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(5));
  }
  if (sampler_) sampler_->stop();
  for (auto& w : workers_) w->stop();
  for (auto& w : workers_) w->join();
  if (bridge_) bridge_->stop();
  if (api_) api_->stop();
  // No thread runs now; what the workers' loops still hold (drained when
  // they are destroyed, after the API) must not call into it.
  node.api_published = nullptr;
  node.api_reply = nullptr;
  if (admin_) admin_->stop();
  node.telemetry->shutdown(deadline);
  WS_LOG(Info, "stopped", {"seconds", static_cast<double>(mono_ns() - start) / 1e9});
}

void Server::reload(const Config& fresh) {
  // What changed, by the text each option was set from (a default is "").
  std::vector<std::string> applied, restart;
  auto value_of = [](const Config& c, const std::string& name) {
    auto it = c.sources.find(name);
    return it == c.sources.end() ? std::string() : it->second;
  };
  std::set<std::string> names;
  for (const auto& [name, v] : cfg_.sources) names.insert(name);
  for (const auto& [name, v] : fresh.sources) names.insert(name);
  for (const auto& name : names) {
    if (value_of(cfg_, name) == value_of(fresh, name)) continue;
    (option_is_live(name) ? applied : restart).push_back(name);
  }
  auto join = [](const std::vector<std::string>& v) {
    std::string out;
    for (const auto& s : v) out += (out.empty() ? "" : ",") + s;
    return out.empty() ? std::string("none") : out;
  };
  // The live options: the log settings (the log module reads them
  // atomically; no other thread reads them from cfg_) and the channel rules
  // (posted to every worker and the bridge, which each keep their own copy).
  cfg_.log_level = fresh.log_level;
  cfg_.log_format = fresh.log_format;
  log::configure(cfg_.log_level, cfg_.log_format);
  if (api_ && fresh.api_key != cfg_.api_key) {
    // Requests read the key atomically: from now on the new one.
    api_->set_key(fresh.api_key);
    cfg_.api_key = fresh.api_key;
  }
  if (!fresh.tls_cert.empty() && node_->tls.load() == nullptr) {
    // Turning TLS on changes what the port speaks: a restart does it.
    applied.erase(std::remove_if(applied.begin(), applied.end(),
                                 [](const std::string& n) { return n.rfind("tls-", 0) == 0; }),
                  applied.end());
    restart.push_back("tls-cert");
  } else if (!fresh.tls_cert.empty()) {
    // Always read again (a renewed certificate keeps its file name). New
    // handshakes use the new pair; open connections keep theirs.
    std::string error;
    if (auto tls = net::TlsContext::load(fresh.tls_cert, fresh.tls_key, error)) {
      const std::string subject = tls->subject();
      const std::string not_after = tls->not_after();
      node_->tls.store(std::move(tls));
      WS_LOG(Info, "TLS certificate reloaded (SIGHUP)", {"subject", subject},
             {"not_after", not_after});
      cfg_.tls_cert = fresh.tls_cert;
      cfg_.tls_key = fresh.tls_key;
      if (std::find(applied.begin(), applied.end(), "tls-cert") == applied.end()) {
        applied.push_back("tls-cert");
      }
    } else {
      WS_LOG(Error, "the new TLS certificate was refused, the running one stays (SIGHUP)",
             {"error", error});
      applied.erase(std::remove_if(applied.begin(), applied.end(),
                                   [](const std::string& n) { return n.rfind("tls-", 0) == 0; }),
                    applied.end());
    }
  }
  if (node_->auth_configured) {
    // Always read again (key rotation keeps the file names): new tokens are
    // checked with the new keys; a key set that fails keeps the old one.
    std::shared_ptr<const auth::KeySet> keys;
    std::string error;
    if (!load_auth_keys(fresh, keys, error) || !keys) {
      WS_LOG(Error, "the new token keys were refused, the running ones stay (SIGHUP)",
             {"error", keys ? error : std::string("no key configured any more")});
    } else {
      // Stored before the line is written: whoever reads it may rely on the keys.
      const auto count = static_cast<uint64_t>(keys->size());
      node_->auth_keys.store(std::move(keys));
      WS_LOG(Info, "token keys reloaded (SIGHUP)", {"keys", count});
    }
  }
  if (value_of(cfg_, "channel") != value_of(fresh, "channel")) {
    cfg_.channel_rules = fresh.channel_rules;
    node_->rules = std::make_shared<stream::Rules>(cfg_.channel_rules);
    // Applied by every worker before the reload is logged as done.
    auto rules = node_->rules;
    auto done = gather<bool>([rules](Worker& w) {
      w.apply_rules(rules);
      return true;
    });
    if (!done.missing.empty()) {
      WS_LOG(Warn, "some threads did not take the new channel rules within 2 s; they will",
             {"threads", static_cast<uint64_t>(done.missing.size())});
    }
    if (bridge_) bridge_->set_rules(node_->rules);
  }
  for (const auto& name : applied) cfg_.sources[name] = value_of(fresh, name);
  // Said even when the new level hides Info lines: a reload is always logged.
  log::write(log::enabled(log::Level::Info) ? log::Level::Info : log::Level::Warn,
             "configuration reloaded (SIGHUP)",
             {{"applied", join(applied)},
              {"config", cfg_.config_file.empty() ? std::string("none") : cfg_.config_file},
              {"log_level", log::level_name(cfg_.log_level)}});
  if (!restart.empty()) {
    WS_LOG(Warn, "changed options that only a restart applies were not changed",
           {"options", join(restart)});
  }
}

}  // namespace wstrace::server
