#include "http/server.h"

#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <charconv>
#include <cstring>
#include <deque>

#include "http/response.h"
#include "util/log.h"
#include "util/thread_name.h"

namespace wstrace::http {
namespace {

constexpr size_t kReadChunk = 64 * 1024;

Response plain(int status, std::string_view text, std::string extra = {}) {
  return {status, "text/plain; charset=utf-8", std::string(text), std::move(extra)};
}

// A refusal by the server itself, as text or JSON.
Response refusal(bool json, int status, std::string_view code, std::string_view text,
                 std::string extra = {}) {
  if (!json) return plain(status, text, std::move(extra));
  std::string body = "{\"error\":{\"code\":\"" + std::string(code) + "\",\"message\":\"";
  for (char c : text) {
    if (c == '\n') continue;
    if (c == '"' || c == '\\') body += '\\';
    body += c;
  }
  body += "\"}}\n";
  return {status, "application/json", std::move(body), std::move(extra)};
}

}  // namespace

// ---------------------------------------------------------------------------
// Responder

Responder& Responder::operator=(Responder&& o) noexcept {
  if (this != &o) {
    if (server_ != nullptr) send(plain(500, "internal error: the request was not answered\n"));
    server_ = o.server_;
    conn_ = o.conn_;
    seq_ = o.seq_;
    o.server_ = nullptr;
  }
  return *this;
}

Responder::~Responder() {
  if (server_ != nullptr) send(plain(500, "internal error: the request was not answered\n"));
}

void Responder::send(Response r) {
  Server* s = server_;
  if (s == nullptr) return;
  server_ = nullptr;
  if (std::this_thread::get_id() == s->loop_thread_.load(std::memory_order_relaxed)) {
    s->complete(conn_, seq_, std::move(r));
  } else {
    s->loop_.post([s, conn = conn_, seq = seq_, r = std::move(r)]() mutable {
      s->complete(conn, seq, std::move(r));
    });
  }
}

// ---------------------------------------------------------------------------
// A connection: requests parsed in order, each with a slot for its answer;
// answers leave in that order as soon as the oldest is ready.

class Server::Conn final : public net::IoHandler {
 public:
  Conn(Server& s, int fd, uint64_t id) : s_(s), fd_(fd), id_(id) {}
  ~Conn() { ::close(fd_); }
  int fd() const { return fd_; }
  uint64_t id() const { return id_; }

  void on_io(uint32_t events) override {
    if (events & EPOLLOUT) flush();
    if (closed_) return;
    if (events & (EPOLLIN | EPOLLHUP | EPOLLERR | EPOLLRDHUP)) read();
  }

  // The answer to request `seq` (sent when every earlier one has been).
  void complete(uint64_t seq, Response r) {
    if (seq < base_ || seq - base_ >= slots_.size()) return;
    Slot& slot = slots_[seq - base_];
    if (slot.ready) return;
    slot.ready = true;
    if (slot.head) {
      std::string all = make_response(r.status, r.content_type, r.body, r.extra_headers,
                                      slot.keep_alive);
      all.resize(all.size() - r.body.size());
      slot.bytes = std::move(all);
    } else {
      slot.bytes = make_response(r.status, r.content_type, r.body, r.extra_headers, slot.keep_alive);
    }
    if (!r.stream_topic.empty() && !slot.head) {
      slot.bytes = "HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\nCache-Control: no-store\r\n"
                   "Connection: close\r\nX-Accel-Buffering: no\r\n" + r.extra_headers + "\r\n" + r.body;
      slot.stream_topic = std::move(r.stream_topic);
    }
    bool moved = false;
    while (!slots_.empty() && slots_.front().ready) {
      out_ += slots_.front().bytes;
      if (!slots_.front().stream_topic.empty()) {
        // From here the connection is this stream: nothing after it is answered.
        topic_ = std::move(slots_.front().stream_topic);
        s_.streams_.fetch_add(1, std::memory_order_relaxed);
        stop_reading_ = true;
        slots_.clear();
        break;
      }
      if (!slots_.front().keep_alive) close_after_flush_ = true;
      slots_.pop_front();
      ++base_;
      moved = true;
    }
    if (!topic_.empty()) {
      flush();
      return;
    }
    if (!moved) return;
    flush();
    // A pipeline that had paused reading goes on.
    if (!closed_ && paused_ && slots_.size() < s_.options_.max_in_flight) {
      paused_ = false;
      process();
      if (!closed_ && !paused_) read();
    }
  }

  // A stream's new events (on the loop thread).
  void stream(const std::string& topic, const std::string& events) {
    if (closed_ || topic_ != topic) return;
    if (out_.size() > kMaxStreamBacklog) {
      s_.close_conn(this);
      return;
    }
    out_ += events;
    flush();
  }

  bool streaming() const { return !topic_.empty(); }

  bool closed_ = false;

 private:
  struct Slot {
    bool ready = false;
    bool keep_alive = true;
    bool head = false;
    std::string bytes;
    std::string stream_topic;
  };

  void read() {
    if (streaming()) {
      drain_stream_input();
      return;
    }
    if (paused_ || stop_reading_) return;
    for (;;) {
      const size_t have = in_.size();
      in_.resize(have + kReadChunk);
      ssize_t n = ::read(fd_, in_.data() + have, kReadChunk);
      in_.resize(have + (n > 0 ? static_cast<size_t>(n) : 0));
      if (n > 0) {
        process();
        if (closed_ || paused_ || stop_reading_) return;
        continue;
      }
      if (n == 0) {
        // The client is done sending: answer what it asked, then close.
        stop_reading_ = true;
        if (slots_.empty() && out_.empty()) {
          s_.close_conn(this);
        } else {
          close_after_flush_ = true;
        }
        return;
      }
      if (errno == EINTR) continue;
      if (errno != EAGAIN) s_.close_conn(this);
      return;
    }
  }

  // Parses every complete request buffered, giving each its slot.
  void process() {
    const Options& o = s_.options_;
    size_t at = 0;
    while (!closed_ && !stop_reading_) {
      if (slots_.size() >= o.max_in_flight) {
        paused_ = true;
        break;
      }
      std::string_view buf(in_.data() + at, in_.size() - at);
      if (buf.empty()) break;
      Request req;
      size_t head = 0;
      const ParseStatus st = parse_request(buf, o.max_head, req, &head);
      if (st == ParseStatus::NeedMore) break;
      if (st != ParseStatus::Complete) {
        if (st == ParseStatus::HeadersTooLarge) {
          refuse(431, "head_too_large", "request head too large\n");
        } else {
          refuse(400, "bad_request", "bad request: not an HTTP/1.1 request head\n");
        }
        break;
      }
      size_t body_len = 0;
      if (req.header("Transfer-Encoding")) {
        refuse(501, "not_implemented",
               "chunked request bodies are not supported: send Content-Length\n");
        break;
      }
      if (auto cl = req.header("Content-Length")) {
        auto [p, ec] = std::from_chars(cl->data(), cl->data() + cl->size(), body_len);
        if (ec != std::errc() || p != cl->data() + cl->size()) {
          refuse(400, "bad_request", "bad request: Content-Length is not a number\n");
          break;
        }
        if (body_len > o.max_body) {
          refuse(413, "body_too_large",
                 "request body too large (limit " + std::to_string(o.max_body) + " bytes)\n");
          break;
        }
      }
      if (buf.size() < head + body_len) break;  // the body is still coming
      const std::string_view body = buf.substr(head, body_len);
      const bool keep_alive =
          !req.header_has_token("Connection", "close") &&
          (req.version_minor >= 1 || req.header_has_token("Connection", "keep-alive"));
      slots_.push_back(Slot{false, keep_alive, req.method == "HEAD", {}});
      const uint64_t seq = base_ + slots_.size() - 1;
      if (!keep_alive) stop_reading_ = true;  // nothing after it is read
      at += head + body_len;
      const bool get = req.method == "GET" || req.method == "HEAD";
      if (!get && !(o.allow_post && req.method == "POST")) {
        complete(seq, refusal(o.json_errors, 405, "method_not_allowed",
                              o.allow_post ? "use GET or POST\n" : "only GET is supported\n",
                              o.allow_post ? "Allow: GET, HEAD, POST\r\n" : "Allow: GET, HEAD\r\n"));
      } else {
        s_.handler_(req, body, Responder(&s_, id_, seq));
      }
    }
    if (closed_) return;
    in_.erase(0, at);
    // What is left is part of one request: bounded by the head and body limits.
    if (!stop_reading_ && in_.size() > o.max_head + o.max_body + 4) {
      refuse(413, "body_too_large", "request too large\n");
    }
  }

  // An answer after which the connection closes (the stream cannot be
  // trusted any more): queued behind the answers still due.
  void refuse(int status, std::string_view code, std::string text) {
    stop_reading_ = true;
    slots_.push_back(Slot{false, false, false, {}});
    complete(base_ + slots_.size() - 1, refusal(s_.options_.json_errors, status, code, text));
  }

  // A stream's client sends nothing more that matters: read to see it leave.
  void drain_stream_input() {
    char buf[4096];
    for (;;) {
      ssize_t n = ::read(fd_, buf, sizeof buf);
      if (n > 0) continue;
      if (n < 0 && errno == EINTR) continue;
      if (n < 0 && errno == EAGAIN) return;
      s_.close_conn(this);
      return;
    }
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
    if (close_after_flush_ && slots_.empty()) s_.close_conn(this);
  }

  Server& s_;
  int fd_;
  uint64_t id_;
  std::string in_;
  std::string out_;
  std::deque<Slot> slots_;
  uint64_t base_ = 0;  // sequence number of slots_.front()
  bool close_after_flush_ = false;
  bool stop_reading_ = false;  // a Connection: close request or a refusal was read
  bool paused_ = false;        // max_in_flight answers outstanding
  std::string topic_;          // a Server-Sent Events stream's topic
};

// ---------------------------------------------------------------------------
// Server

Server::Server(Handler handler)
    : handler_([h = std::move(handler)](const Request& req, std::string_view, Responder done) {
        done.send(h(req));
      }) {}

Server::Server(AsyncHandler handler, Options options)
    : handler_(std::move(handler)), options_(options) {}

Server::~Server() {
  stop();
  loop_.drain();  // answers posted after the stop find no connection
}

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
  thread_ = std::thread([this] {
    name_this_thread(options_.thread_name);
    loop_thread_.store(std::this_thread::get_id(), std::memory_order_relaxed);
    loop_.run();
  });
  return true;
}

void Server::stop() {
  if (!thread_.joinable()) return;
  loop_.stop();
  thread_.join();
  // Answers from now on come while this thread tears down: no connection is left.
  loop_thread_.store(std::this_thread::get_id(), std::memory_order_relaxed);
  by_id_.clear();
  conns_.clear();
  listener_.reset();  // closes the socket
}

void Server::on_accept(int fd) {
  if (by_id_.size() >= options_.max_connections) {
    ::close(fd);
    return;
  }
  // Answers are whole when written: Nagle would only hold the next one back
  // (pipelined answers waited ~1 ms for the client's delayed ACK).
  net::tune_accepted(fd);
  auto conn = std::make_unique<Conn>(*this, fd, next_conn_id_++);
  by_id_[conn->id()] = conn.get();
  loop_.add(fd, EPOLLIN | EPOLLOUT | EPOLLRDHUP | EPOLLET, conn.get());
  conns_.push_back(std::move(conn));
}

void Server::close_conn(Conn* c) {
  if (c->closed_) return;
  c->closed_ = true;
  if (c->streaming()) streams_.fetch_sub(1, std::memory_order_relaxed);
  by_id_.erase(c->id());
  loop_.remove(c->fd());
}

void Server::publish(std::string topic, std::string events) {
  if (streams() == 0) return;
  loop_.post([this, topic = std::move(topic), events = std::move(events)] {
    for (auto& c : conns_) {
      if (c->streaming()) c->stream(topic, events);
    }
  });
}

void Server::complete(uint64_t conn, uint64_t seq, Response r) {
  auto it = by_id_.find(conn);
  if (it == by_id_.end()) return;  // the client went away meanwhile
  it->second->complete(seq, std::move(r));
}

}  // namespace wstrace::http
