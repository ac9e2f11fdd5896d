// A scripted HTTP/1.1 server on 127.0.0.1 (port 0) for exporter tests: it
// records each request and answers with the next scripted response (200
// when the script is empty), or never answers when told to stall.
#pragma once

#include <arpa/inet.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <condition_variable>
#include <cstring>
#include <deque>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

namespace wstrace::telemetry::testing {

class TestHttpServer {
 public:
  struct Request {
    std::string method, path, headers, body;
  };
  struct Response {
    int status = 200;
    std::string extra_headers;  // "Name: value\r\n" lines
    bool stall = false;         // read the request, never answer
  };

  TestHttpServer() {
    listen_fd_ = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    sockaddr_in a{};
    a.sin_family = AF_INET;
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    a.sin_port = 0;
    bind(listen_fd_, reinterpret_cast<sockaddr*>(&a), sizeof a);
    listen(listen_fd_, 16);
    socklen_t len = sizeof a;
    getsockname(listen_fd_, reinterpret_cast<sockaddr*>(&a), &len);
    port_ = ntohs(a.sin_port);
    thread_ = std::thread([this] { run(); });
  }
  ~TestHttpServer() {
    stop_ = true;
    thread_.join();
    close(listen_fd_);
  }

  int port() const { return port_; }
  std::string url(const std::string& path) const {
    return "http://127.0.0.1:" + std::to_string(port_) + path;
  }
  void script(Response r) {
    std::lock_guard lock(mu_);
    script_.push_back(std::move(r));
  }
  std::vector<Request> requests() {
    std::lock_guard lock(mu_);
    return requests_;
  }
  bool wait_requests(size_t n, int seconds = 10) {
    std::unique_lock lock(mu_);
    return cv_.wait_for(lock, std::chrono::seconds(seconds), [&] { return requests_.size() >= n; });
  }

 private:
  void run() {
    std::vector<int> conns;
    std::vector<std::string> bufs;
    while (!stop_) {
      std::vector<pollfd> fds;
      fds.push_back({listen_fd_, POLLIN, 0});
      for (int c : conns) {
        fds.push_back({c, POLLIN, 0});
      }
      if (poll(fds.data(), fds.size(), 20) <= 0) {
        continue;
      }
      if (fds[0].revents & POLLIN) {
        int c = accept4(listen_fd_, nullptr, nullptr, SOCK_CLOEXEC);
        if (c >= 0) {
          conns.push_back(c);
          bufs.emplace_back();
        }
      }
      for (size_t i = 1; i < fds.size(); ++i) {
        if (!(fds[i].revents & (POLLIN | POLLHUP | POLLERR))) {
          continue;
        }
        char tmp[65536];
        ssize_t n = read(conns[i - 1], tmp, sizeof tmp);
        if (n <= 0) {
          close(conns[i - 1]);
          conns[i - 1] = -1;
          continue;
        }
        bufs[i - 1].append(tmp, static_cast<size_t>(n));
        handle(conns[i - 1], bufs[i - 1]);
      }
      for (size_t i = conns.size(); i-- > 0;) {
        if (conns[i] < 0) {
          conns.erase(conns.begin() + static_cast<long>(i));
          bufs.erase(bufs.begin() + static_cast<long>(i));
        }
      }
    }
    for (int c : conns) {
      close(c);
    }
  }

  void handle(int fd, std::string& buf) {
    for (;;) {
      size_t end = buf.find("\r\n\r\n");
      if (end == std::string::npos) {
        return;
      }
      std::string head = buf.substr(0, end + 2);
      size_t clen = 0;
      std::string lower = head;
      std::transform(lower.begin(), lower.end(), lower.begin(), ::tolower);
      size_t p = lower.find("content-length:");
      if (p != std::string::npos) {
        clen = std::stoul(head.substr(p + 15));
      }
      if (buf.size() < end + 4 + clen) {
        return;
      }
      Request r;
      size_t sp1 = head.find(' ');
      size_t sp2 = head.find(' ', sp1 + 1);
      r.method = head.substr(0, sp1);
      r.path = head.substr(sp1 + 1, sp2 - sp1 - 1);
      r.headers = head;
      r.body = buf.substr(end + 4, clen);
      buf.erase(0, end + 4 + clen);
      Response resp;
      {
        std::lock_guard lock(mu_);
        requests_.push_back(r);
        if (!script_.empty()) {
          resp = script_.front();
          script_.pop_front();
        }
        cv_.notify_all();
      }
      if (resp.stall) {
        continue;
      }
      std::string out = "HTTP/1.1 " + std::to_string(resp.status) + " X\r\n" + resp.extra_headers +
                        "Content-Length: 0\r\n\r\n";
      (void)!write(fd, out.data(), out.size());
    }
  }

  int listen_fd_ = -1;
  int port_ = 0;
  std::atomic<bool> stop_{false};
  std::mutex mu_;
  std::condition_variable cv_;
  std::deque<Response> script_;
  std::vector<Request> requests_;
  std::thread thread_;
};

}  // namespace wstrace::telemetry::testing
