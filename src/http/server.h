// A small HTTP/1.1 server on its own event-loop thread: keep-alive,
// pipelining (answers go out in request order, however late each is ready),
// request bodies by Content-Length up to a limit, bounded connections and
// requests in flight. The admin API answers GETs at once; the server API
// answers POSTs later, from the threads that did the work (a Responder).
// Not for the WebSocket data plane.
#pragma once

#include <atomic>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <thread>
#include <unordered_map>
#include <vector>

#include "http/request.h"
#include "net/event_loop.h"
#include "net/listener.h"
#include "net/socket.h"

namespace wstrace::http {

struct Response {
  int status = 200;
  std::string content_type = "text/plain; charset=utf-8";
  std::string body;
  std::string extra_headers;  // each line ends with CRLF
  // Non-empty: a Server-Sent Events stream (text/event-stream, no length;
  // `body` is its first events). The connection then carries only what
  // Server::publish sends to this topic, until the client goes away.
  std::string stream_topic;
};

class Server;

// Completes one request, from any thread, exactly once (a Responder dropped
// unanswered answers 500 so that the pipeline behind it moves on).
class Responder {
 public:
  Responder() = default;
  Responder(Responder&& o) noexcept { *this = std::move(o); }
  Responder& operator=(Responder&& o) noexcept;
  Responder(const Responder&) = delete;
  Responder& operator=(const Responder&) = delete;
  ~Responder();

  void send(Response r);
  bool valid() const { return server_ != nullptr; }

 private:
  friend class Server;
  Responder(Server* s, uint64_t conn, uint64_t seq) : server_(s), conn_(conn), seq_(seq) {}
  Server* server_ = nullptr;
  uint64_t conn_ = 0;
  uint64_t seq_ = 0;
};

class Server {
 public:
  using Handler = std::function<Response(const Request&)>;
  // `body` (and the request's views) are valid only during the call.
  using AsyncHandler =
      std::function<void(const Request& req, std::string_view body, Responder done)>;

  struct Options {
    bool allow_post = false;      // else GET and HEAD only (405 for the rest)
    size_t max_body = 0;          // Content-Length above this: 413
    size_t max_head = 16 * 1024;  // request head above this: 431
    size_t max_connections = 256;
    size_t max_in_flight = 1024;  // per connection: past it, reading pauses
    // The server's own refusals (400, 405, 413, 431, 501) as
    // {"error":{"code":..,"message":..}} instead of plain text.
    bool json_errors = false;
    const char* thread_name = "ws-http";  // what top -H shows for its thread
  };

  explicit Server(Handler handler);
  Server(AsyncHandler handler, Options options);
  ~Server();
  Server(const Server&) = delete;
  Server& operator=(const Server&) = delete;

  // Binds and starts the thread. Returns false with `error` set.
  bool start(const net::Address& addr, std::string* error);
  void stop();
  // From any thread: `events` (whole SSE events, each ending "\n\n") to
  // every stream of `topic`. A stream whose client reads slower than it is
  // fed (over kMaxStreamBacklog unsent) is closed; the page reconnects.
  void publish(std::string topic, std::string events);
  // Streams open now (any thread).
  size_t streams() const { return streams_.load(std::memory_order_relaxed); }
  static constexpr size_t kMaxStreamBacklog = 1 << 20;
  uint16_t port() const { return port_; }
  net::EventLoop& loop() { return loop_; }

 private:
  friend class Responder;
  class Conn;
  void on_accept(int fd);
  void close_conn(Conn* c);
  // On the loop thread: the answer to request `seq` of connection `conn`.
  void complete(uint64_t conn, uint64_t seq, Response r);

  AsyncHandler handler_;
  Options options_;
  net::EventLoop loop_;
  std::unique_ptr<net::Listener> listener_;
  std::vector<std::unique_ptr<Conn>> conns_;
  std::unordered_map<uint64_t, Conn*> by_id_;
  uint64_t next_conn_id_ = 1;
  std::thread thread_;
  std::atomic<std::thread::id> loop_thread_{};  // answers made there are sent at once
  std::atomic<size_t> streams_{0};
  uint16_t port_ = 0;
};

}  // namespace wstrace::http
