// http::Server over a real loopback socket: pipelined requests answered in
// order however late each answer is ready (answers made on other threads,
// the last first), request bodies by Content-Length, and the refusals that
// close the connection (413, 501, 400).
#include "http/server.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <gtest/gtest.h>

#include <chrono>
#include <functional>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

namespace wstrace::http {
namespace {

// A loopback TCP connection to `port` with a 10 s receive timeout.
int connect_to(uint16_t port) {
  int fd = ::socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_port = htons(port);
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  timeval tv{10, 0};
  setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
  EXPECT_EQ(::connect(fd, reinterpret_cast<sockaddr*>(&a), sizeof a), 0);
  return fd;
}

// Sends `req`, closes the write side, reads until the server closes.
std::string exchange(uint16_t port, const std::string& req) {
  int fd = connect_to(port);
  EXPECT_EQ(::send(fd, req.data(), req.size(), 0), static_cast<ssize_t>(req.size()));
  ::shutdown(fd, SHUT_WR);
  std::string out;
  char buf[4096];
  for (;;) {
    ssize_t n = ::recv(fd, buf, sizeof buf, 0);
    if (n <= 0) break;
    out.append(buf, static_cast<size_t>(n));
  }
  ::close(fd);
  return out;
}

std::string post(std::string_view path, std::string_view body) {
  return "POST " + std::string(path) + " HTTP/1.1\r\nHost: x\r\nContent-Length: " +
         std::to_string(body.size()) + "\r\n\r\n" + std::string(body);
}

struct Fixture {
  std::mutex mu;
  std::vector<std::pair<std::string, Responder>> held;  // answered later, last first
  std::unique_ptr<Server> server;
  std::thread answerer;

  explicit Fixture(size_t hold, size_t max_body = 64) {
    Server::Options o;
    o.allow_post = true;
    o.max_body = max_body;
    server = std::make_unique<Server>(
        [this, hold](const Request& req, std::string_view body, Responder done) {
          std::string text = std::string(req.method) + " " + std::string(req.path) + " " +
                             std::string(body);
          std::lock_guard lock(mu);
          held.emplace_back(std::move(text), std::move(done));
          if (held.size() < hold) return;
          // From another thread, in reverse order.
          auto batch = std::move(held);
          held.clear();
          std::thread([batch = std::move(batch)]() mutable {
            for (auto it = batch.rbegin(); it != batch.rend(); ++it) {
              it->second.send({200, "text/plain", it->first, {}});
            }
          }).detach();
        },
        o);
    std::string error;
    auto addr = net::Address::parse("127.0.0.1:0", &error);
    EXPECT_TRUE(server->start(*addr, &error)) << error;
  }
};

TEST(HttpServer, PipelinedAnswersComeInRequestOrder) {
  Fixture f(3);
  const std::string out = exchange(f.server->port(), post("/a", "one") + post("/b", "two") +
                                                         "GET /c HTTP/1.1\r\nHost: x\r\n\r\n");
  const size_t a = out.find("POST /a one"), b = out.find("POST /b two"), c = out.find("GET /c ");
  ASSERT_NE(a, std::string::npos) << out;
  ASSERT_NE(b, std::string::npos) << out;
  ASSERT_NE(c, std::string::npos) << out;
  EXPECT_LT(a, b);
  EXPECT_LT(b, c);
}

TEST(HttpServer, RefusalsCloseTheConnectionAfterTheEarlierAnswers) {
  Fixture f(1, 8);
  std::string out = exchange(f.server->port(), post("/ok", "1234") + post("/big", "123456789") +
                                                   post("/never", "x"));
  EXPECT_NE(out.find("POST /ok 1234"), std::string::npos) << out;
  EXPECT_NE(out.find("HTTP/1.1 413"), std::string::npos) << out;
  EXPECT_EQ(out.find("/never"), std::string::npos) << out;
  out = exchange(f.server->port(),
                 "POST /c HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n");
  EXPECT_NE(out.find("HTTP/1.1 501"), std::string::npos) << out;
  out = exchange(f.server->port(), "POST /n HTTP/1.1\r\nHost: x\r\nContent-Length: 1x\r\n\r\n");
  EXPECT_NE(out.find("HTTP/1.1 400"), std::string::npos) << out;
  out = exchange(f.server->port(), "PUT /p HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\n\r\n");
  EXPECT_NE(out.find("HTTP/1.1 405"), std::string::npos) << out;
}

TEST(HttpServer, AnUnansweredResponderAnswers500) {
  Server::Options o;
  o.allow_post = true;
  Server s([](const Request&, std::string_view, Responder) {}, o);  // drops it
  std::string error;
  ASSERT_TRUE(s.start(*net::Address::parse("127.0.0.1:0", &error), &error));
  const std::string out = exchange(s.port(), "GET / HTTP/1.1\r\nHost: x\r\n\r\n");
  EXPECT_NE(out.find("HTTP/1.1 500"), std::string::npos) << out;
}

TEST(HttpServer, GetOnlyServerRefusesPost) {
  Server s([](const Request&) { return Response{200, "text/plain", "ok", {}}; });
  std::string error;
  ASSERT_TRUE(s.start(*net::Address::parse("127.0.0.1:0", &error), &error));
  const std::string out = exchange(s.port(), post("/x", "") + "GET /y HTTP/1.1\r\nHost: x\r\n\r\n");
  EXPECT_NE(out.find("HTTP/1.1 405"), std::string::npos) << out;
  EXPECT_NE(out.find("HTTP/1.1 200"), std::string::npos) << out;
}

}  // namespace
}  // namespace wstrace::http

namespace wstrace::http {
namespace {


// Reads until `want` has arrived (or the 10 s receive timeout / EOF).
std::string read_until(int fd, std::string& got, std::string_view want) {
  char buf[4096];
  while (got.find(want) == std::string::npos) {
    ssize_t n = ::recv(fd, buf, sizeof buf, 0);
    if (n <= 0) break;
    got.append(buf, static_cast<size_t>(n));
  }
  return got;
}

bool wait_for(const std::function<bool()>& pred) {
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(10);
  while (!pred()) {
    if (std::chrono::steady_clock::now() > deadline) return false;
    std::this_thread::sleep_for(std::chrono::milliseconds(2));
  }
  return true;
}

TEST(HttpServer, EventStreamsGetWhatIsPublishedToTheirTopicUntilTheClientLeaves) {
  Server server([](const Request& req) {
    Response r{200, "text/event-stream", "retry: 1000\n\n", {}};
    r.stream_topic = std::string(req.path);
    return r;
  });
  std::string error;
  auto addr = net::Address::parse("127.0.0.1:0", &error);
  ASSERT_TRUE(server.start(*addr, &error)) << error;
  int a = connect_to(server.port());
  int b = connect_to(server.port());
  const std::string get_a = "GET /a HTTP/1.1\r\nHost: x\r\n\r\nGET /ignored HTTP/1.1\r\nHost: x\r\n\r\n";
  const std::string get_b = "GET /b HTTP/1.1\r\nHost: x\r\n\r\n";
  ASSERT_EQ(::send(a, get_a.data(), get_a.size(), 0), static_cast<ssize_t>(get_a.size()));
  ASSERT_EQ(::send(b, get_b.data(), get_b.size(), 0), static_cast<ssize_t>(get_b.size()));
  std::string got_a, got_b;
  read_until(a, got_a, "retry: 1000\n\n");
  read_until(b, got_b, "retry: 1000\n\n");
  EXPECT_EQ(got_a.rfind("HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\n", 0), 0u) << got_a;
  EXPECT_EQ(got_a.find("Content-Length"), std::string::npos);
  ASSERT_TRUE(wait_for([&] { return server.streams() == 2; }));
  server.publish("/a", "data: one\n\n");
  server.publish("/b", "data: for b\n\n");
  server.publish("/a", "data: two\n\n");
  read_until(a, got_a, "data: two\n\n");
  read_until(b, got_b, "data: for b\n\n");
  EXPECT_NE(got_a.find("data: one\n\ndata: two\n\n"), std::string::npos) << got_a;
  EXPECT_EQ(got_a.find("for b"), std::string::npos);
  EXPECT_EQ(got_a.find("HTTP/1.1", 5), std::string::npos) << "the pipelined request is not answered";
  ::close(a);
  EXPECT_TRUE(wait_for([&] { return server.streams() == 1; }));
  ::close(b);
  EXPECT_TRUE(wait_for([&] { return server.streams() == 0; }));
  server.publish("/a", "data: nobody\n\n");
  server.stop();
}

TEST(HttpServer, AStreamThatDoesNotReadIsClosedPastItsBacklog) {
  Server server([](const Request&) {
    Response r{200, "text/event-stream", "", {}};
    r.stream_topic = "t";
    return r;
  });
  std::string error;
  auto addr = net::Address::parse("127.0.0.1:0", &error);
  ASSERT_TRUE(server.start(*addr, &error)) << error;
  int fd = connect_to(server.port());
  int small = 4096;
  setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &small, sizeof small);
  const std::string get = "GET /s HTTP/1.1\r\nHost: x\r\n\r\n";
  ASSERT_EQ(::send(fd, get.data(), get.size(), 0), static_cast<ssize_t>(get.size()));
  ASSERT_TRUE(wait_for([&] { return server.streams() == 1; }));
  const std::string event = "data: " + std::string(64 * 1024, 'x') + "\n\n";
  // Far more than the kernel buffers and the backlog hold, never read.
  EXPECT_TRUE(wait_for([&] {
    server.publish("t", event);
    return server.streams() == 0;
  }));
  ::close(fd);
  server.stop();
}

}  // namespace
}  // namespace wstrace::http
