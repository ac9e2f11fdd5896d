#include "http/server.h"

#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>

#include "http/response.h"
#include "util/log.h"

namespace wstrace::http {
namespace {
constexpr size_t kMaxRequest = 16 * 1024;
constexpr size_t kMaxConnections = 256;
}  // namespace

class Server::Conn final : public net::IoHandler {
 public:
  Conn(Server& s, int fd) : s_(s), fd_(fd) {}
  ~Conn() { ::close(fd_); }
  int fd() const { return fd_; }

  void on_io(uint32_t events) override {
    if (events & EPOLLOUT) flush();
    if (closed_) return;
    if (events & (EPOLLIN | EPOLLHUP | EPOLLERR | EPOLLRDHUP)) read();
  }

 private:
  void read() {
    char buf[4096];
    for (;;) {
      ssize_t n = ::read(fd_, buf, sizeof buf);
      if (n > 0) {
        in_.append(buf, static_cast<size_t>(n));
        if (in_.size() > kMaxRequest) {
          respond({431, "text/plain", "request too large\n", {}}, false);
          return;
        }
        continue;
      }
      if (n == 0) {
        s_.close_conn(this);
        return;
      }
      if (errno == EINTR) continue;
      if (errno != EAGAIN) {
        s_.close_conn(this);
        return;
      }
      break;
    }
    while (!closed_) {
      Request req;
      size_t head = 0;
      auto st = parse_request(in_, kMaxRequest, req, &head);
      if (st == ParseStatus::NeedMore) return;
      if (st != ParseStatus::Complete) {
        respond({st == ParseStatus::HeadersTooLarge ? 431 : 400, "text/plain", "bad request\n", {}},
                false);
        return;
      }
      bool keep_alive = !req.header_has_token("Connection", "close") &&
                        (req.version_minor >= 1 || req.header_has_token("Connection", "keep-alive"));
      Response r;
      if (req.method != "GET" && req.method != "HEAD") {
        r = {405, "text/plain", "only GET is supported\n", "Allow: GET, HEAD\r\n"};
      } else {
        r = s_.handler_(req);
      }
      if (req.method == "HEAD") {
        std::string head_only = make_response(r.status, r.content_type, r.body, r.extra_headers,
                                              keep_alive);
        head_only.resize(head_only.size() - r.body.size());
        out_ += head_only;
      } else {
        out_ += make_response(r.status, r.content_type, r.body, r.extra_headers, keep_alive);
      }
      in_.erase(0, head);
      if (!keep_alive) close_after_flush_ = true;
      flush();
    }
  }

  void respond(const Response& r, bool keep_alive) {
    out_ += make_response(r.status, r.content_type, r.body, r.extra_headers, keep_alive);
    close_after_flush_ = true;
    flush();
  }

  void flush() {
    while (!out_.empty()) {
      ssize_t n = ::send(fd_, out_.data(), out_.size(), MSG_NOSIGNAL);
      if (n > 0) {
        out_.erase(0, static_cast<size_t>(n));
        continue;
      }
      if (n < 0 && errno == EINTR) continue;
      if (n < 0 && errno == EAGAIN) return;
      s_.close_conn(this);
      return;
    }
    if (close_after_flush_) s_.close_conn(this);
  }

 public:
  bool closed_ = false;

 private:
  Server& s_;
  int fd_;
  std::string in_;
  std::string out_;
  bool close_after_flush_ = false;
};

Server::Server(Handler handler) : handler_(std::move(handler)) {}

Server::~Server() { stop(); }

bool Server::start(const net::Address& addr, std::string* error) {
  int fd = net::listen_on(addr, false, 128);
  if (fd < 0) {
    if (error) *error = strerror(-fd);
    return false;
  }
  if (auto local = net::local_address(fd)) port_ = local->port();
  // The same EMFILE-safe accept path as the WebSocket listener: out of
  // descriptors, a client is answered 503 instead of making the loop spin.
  listener_ = std::make_unique<net::Listener>(
      loop_, fd, net::Listener::Callbacks{[this](int cfd, const net::Address&) { on_accept(cfd); }, {}});
  // Connections closed by a handler are freed once the iteration is over.
  loop_.add_before_sleep([this] {
    conns_.erase(std::remove_if(conns_.begin(), conns_.end(),
                                [](const std::unique_ptr<Conn>& c) { return c->closed_; }),
                 conns_.end());
  });
  thread_ = std::thread([this] { loop_.run(); });
  return true;
}

void Server::stop() {
  if (!thread_.joinable()) return;
  loop_.stop();
  thread_.join();
  conns_.clear();
  listener_.reset();  // closes the socket
}

void Server::on_accept(int fd) {
  size_t open = 0;
  for (const auto& c : conns_) open += c->closed_ ? 0 : 1;
  if (open >= kMaxConnections) {
    ::close(fd);
    return;
  }
  auto conn = std::make_unique<Conn>(*this, fd);
  loop_.add(fd, EPOLLIN | EPOLLOUT | EPOLLRDHUP | EPOLLET, conn.get());
  conns_.push_back(std::move(conn));
}

void Server::close_conn(Conn* c) {
  if (c->closed_) return;
  c->closed_ = true;
  loop_.remove(c->fd());
}

}  // namespace wstrace::http
