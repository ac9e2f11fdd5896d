// A small HTTP/1.1 server on its own event-loop thread, for the admin API:
// GET requests, keep-alive, bounded request size, one handler for all paths.
// Not for the data plane.
#pragma once

#include <functional>
#include <memory>
#include <string>
#include <thread>
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
};

class Server {
 public:
  using Handler = std::function<Response(const Request&)>;

  explicit Server(Handler handler);
  ~Server();
  Server(const Server&) = delete;
  Server& operator=(const Server&) = delete;

  // Binds and starts the thread. Returns false with `error` set.
  bool start(const net::Address& addr, std::string* error);
  void stop();
  uint16_t port() const { return port_; }

 private:
  class Conn;
  void on_accept(int fd);
  void close_conn(Conn* c);

  Handler handler_;
  net::EventLoop loop_;
  std::unique_ptr<net::Listener> listener_;
  std::vector<std::unique_ptr<Conn>> conns_;
  std::thread thread_;
  uint16_t port_ = 0;
};

}  // namespace wstrace::http
