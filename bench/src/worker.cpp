#include "worker.h"

#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <openssl/ssl.h>
#include <sys/epoll.h>
#include <sys/mman.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <deque>
#include <memory>
#include <new>
#include <string>
#include <string_view>
#include <vector>

#include "result.h"
#include "sequence.h"
#include "util/buffer.h"
#include "net/tls.h"
#include "util/clock.h"
#include "wire.h"
#include "ws/deflate.h"
#include "ws/frame.h"
#include "ws/handshake.h"

namespace wsbench {

SharedCounters SharedCounters::create(uint32_t procs, uint32_t publishers, uint32_t channels) {
  SharedCounters s;
  s.procs = procs;
  s.publishers = publishers;
  s.channels = channels;
  const size_t n = size_t(procs) * publishers + size_t(procs) * channels;
  const size_t bytes = std::max<size_t>(n * sizeof(std::atomic<uint64_t>), 64);
  void* mem = mmap(nullptr, bytes, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
  if (mem == MAP_FAILED) return s;
  auto* a = static_cast<std::atomic<uint64_t>*>(mem);
  for (size_t i = 0; i < n; ++i) new (&a[i]) std::atomic<uint64_t>(0);
  s.delivered = a;
  s.subs = a + size_t(procs) * publishers;
  return s;
}

namespace {

using wstrace::mono_ns;
using wstrace::ws::Opcode;

constexpr uint64_t kSec = 1'000'000'000ull;
constexpr uint64_t kCmdTag = ~uint64_t{0};
constexpr uint32_t kIn = EPOLLIN;
constexpr uint32_t kOut = EPOLLOUT;
constexpr size_t kReadChunk = 256 * 1024;
constexpr size_t kMaxMessage = 16 * 1024 * 1024;
constexpr size_t kContentHeader = 32;  // 8 hex publisher, 8 hex sequence, 16 hex timestamp

enum class State : uint8_t { Free, Connecting, TlsHandshake, Handshake, Open, Closed };
enum class Role : uint8_t { Idle, Subscriber, Publisher, Churn };
enum class Step : uint8_t { None, Subscribing, Ready, AwaitOwn, PingWait, Closing };

struct Conn {
  int fd = -1;
  SSL* ssl = nullptr;          // --tls
  uint32_t gen = 0;
  State state = State::Free;
  Role role = Role::Idle;
  Step step = Step::None;
  bool out_armed = false;
  bool deflate = false;        // permessage-deflate negotiated
  bool inflate_reset = true;   // server_no_context_takeover
  bool close_sent = false;
  bool laggard = false;
  bool paused = false;         // laggard not reading
  bool counted = false;        // in the shared live-subscriber count
  bool have_offset = false;    // subscriber: `offset` is its channel position
  bool recovering = false;     // recover: back with `since`, not all missed messages yet
  bool api = false;            // a publisher speaking the server API (HTTP), not WebSocket
  uint8_t frag_op = 0;
  bool frag_rsv1 = false;
  uint8_t client_bits = 15;
  uint32_t channel = 0;
  uint32_t id = 0;             // global subscriber / publisher / churn-slot / connection id
  uint32_t target = 0;
  uint32_t source = 0;
  uint64_t t_start = 0;        // connect() of the current connection
  uint64_t t_step = 0;         // start of the current step (timeouts)
  uint64_t seq = 0;            // publisher: next sequence; churn: cycle
  size_t out_off = 0;
  std::string key;             // Sec-WebSocket-Key while handshaking
  std::string in;              // unparsed bytes
  std::string out;             // bytes not yet written
  std::string frag;            // fragmented message being assembled
  std::vector<SequenceTrack> tracks;  // subscriber: one per publisher of its channel
  std::string epoch;           // subscriber: its channel's epoch (Subscribed)
  uint64_t offset = 0;         // ... and the last position it saw
  uint64_t recover_to = 0;     // recover: the position of the last missed message
  uint64_t recover_from = 0;   // recover: the `since` offset
  std::deque<uint64_t> api_sent;  // --api: send times of the requests not answered yet
  std::unique_ptr<wstrace::ws::Inflater> inflater;  // when the server keeps its window
};

uint8_t hex_value[256];
struct HexInit {
  HexInit() {
    std::memset(hex_value, 0xFF, sizeof hex_value);
    for (int i = 0; i < 10; ++i) hex_value['0' + i] = static_cast<uint8_t>(i);
    for (int i = 0; i < 6; ++i) {
      hex_value['a' + i] = static_cast<uint8_t>(10 + i);
      hex_value['A' + i] = static_cast<uint8_t>(10 + i);
    }
  }
} hex_init;

bool parse_hex(const char* p, int n, uint64_t& out) {
  uint64_t v = 0;
  uint8_t bad = 0;
  for (int i = 0; i < n; ++i) {
    const uint8_t d = hex_value[static_cast<uint8_t>(p[i])];
    bad |= d;
    v = (v << 4) | (d & 0xF);
  }
  out = v;
  return (bad & 0xF0) == 0;
}

void put_hex(char* p, int n, uint64_t v) {
  static const char digits[] = "0123456789abcdef";
  for (int i = n - 1; i >= 0; --i) {
    p[i] = digits[v & 0xF];
    v >>= 4;
  }
}

std::string base64(const uint8_t* p, size_t n) {
  static const char t[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
  std::string out;
  for (size_t i = 0; i < n; i += 3) {
    uint32_t v = uint32_t(p[i]) << 16;
    if (i + 1 < n) v |= uint32_t(p[i + 1]) << 8;
    if (i + 2 < n) v |= p[i + 2];
    out.push_back(t[(v >> 18) & 63]);
    out.push_back(t[(v >> 12) & 63]);
    out.push_back(i + 1 < n ? t[(v >> 6) & 63] : '=');
    out.push_back(i + 2 < n ? t[v & 63] : '=');
  }
  return out;
}

// Case-insensitive search for an HTTP header's value in a response head.
std::string_view header_value(std::string_view head, std::string_view name) {
  size_t pos = head.find("\r\n");
  while (pos != std::string_view::npos && pos + 2 < head.size()) {
    const size_t start = pos + 2;
    const size_t end = head.find("\r\n", start);
    std::string_view line = head.substr(start, end == std::string_view::npos ? head.size() - start
                                                                              : end - start);
    const size_t colon = line.find(':');
    if (colon == name.size()) {
      bool same = true;
      for (size_t i = 0; i < colon && same; ++i) {
        same = std::tolower(static_cast<unsigned char>(line[i])) ==
               std::tolower(static_cast<unsigned char>(name[i]));
      }
      if (same) {
        std::string_view v = line.substr(colon + 1);
        while (!v.empty() && (v.front() == ' ' || v.front() == '\t')) v.remove_prefix(1);
        while (!v.empty() && (v.back() == ' ' || v.back() == '\t')) v.remove_suffix(1);
        return v;
      }
    }
    pos = end;
  }
  return {};
}

// The string value of a top-level key in a flat JSON object (no escapes in
// the values this tool reads; an escaped value is returned raw).
std::string_view json_string(std::string_view doc, std::string_view key) {
  size_t pos = 0;
  for (;;) {
    pos = doc.find(key, pos);
    if (pos == std::string_view::npos) return {};
    if (pos == 0 || doc[pos - 1] != '"' || pos + key.size() >= doc.size() ||
        doc[pos + key.size()] != '"') {
      pos += key.size();
      continue;
    }
    size_t i = pos + key.size() + 1;
    while (i < doc.size() && (doc[i] == ' ' || doc[i] == '\t' || doc[i] == '\n')) ++i;
    if (i >= doc.size() || doc[i] != ':') {
      pos = i;
      continue;
    }
    ++i;
    while (i < doc.size() && (doc[i] == ' ' || doc[i] == '\t' || doc[i] == '\n')) ++i;
    if (i >= doc.size() || doc[i] != '"') return {};
    const size_t start = ++i;
    while (i < doc.size() && doc[i] != '"') {
      if (doc[i] == '\\') ++i;
      ++i;
    }
    if (i > doc.size()) return {};
    return doc.substr(start, i - start);
  }
}

// The unsigned integer value of a top-level key ("offset":42); false when
// it is missing or not a number.
bool json_uint(std::string_view doc, std::string_view key, uint64_t& out) {
  size_t pos = 0;
  for (;;) {
    pos = doc.find(key, pos);
    if (pos == std::string_view::npos) return false;
    size_t i = pos + key.size();
    if (pos == 0 || doc[pos - 1] != '"' || i + 1 >= doc.size() || doc[i] != '"' ||
        doc[i + 1] != ':') {
      pos = i;
      continue;
    }
    i += 2;
    if (i >= doc.size() || doc[i] < '0' || doc[i] > '9') return false;
    uint64_t v = 0;
    for (; i < doc.size() && doc[i] >= '0' && doc[i] <= '9'; ++i) v = v * 10 + uint64_t(doc[i] - '0');
    out = v;
    return true;
  }
}

class Worker {
 public:
  explicit Worker(const WorkerContext& ctx) : ctx_(ctx), opt_(*ctx.opt) {}
  int run();

 private:
  // Setup and phases.
  void plan();
  void report_ready(uint64_t phase);
  void report_progress(uint64_t now);
  void report_final();
  void poll(uint64_t deadline_ns);
  bool all_settled() const;
  void connect_all();
  void wait_go();
  void close_all(uint64_t grace_ns);

  // Connections.
  bool start_connect(Conn& c, uint64_t now);
  void on_event(Conn& c, uint32_t events, uint64_t now);
  void on_connected(Conn& c, uint64_t now);
  void tls_step(Conn& c, uint64_t now);
  void send_upgrade(Conn& c, uint64_t now);
  // read()/write() on the socket or through TLS; -1 with errno EAGAIN when
  // it would block (TLS wanting the other direction included).
  ssize_t io_read(Conn& c, uint8_t* p, size_t n);
  ssize_t io_write(Conn& c, const char* p, size_t n);
  void on_readable(Conn& c, uint64_t now);
  bool on_handshake(Conn& c, uint64_t now);
  size_t on_frames(Conn& c, const uint8_t* p, size_t n, uint64_t now);
  void on_message(Conn& c, const uint8_t* p, size_t n, uint64_t now);
  // `offset` < 0: the Message had none.
  void on_delivery(Conn& c, std::string_view content, std::string_view channel, int64_t offset,
                   uint64_t now);
  void on_position(Conn& c, uint64_t offset, uint64_t now);
  void on_subscribed(Conn& c, std::string_view doc, uint64_t now);
  void on_open(Conn& c, uint64_t now);
  // `by_us`: we sent the Close first (an expected end).
  void on_closed(Conn& c, uint16_t code, uint64_t now) { on_closed(c, code, now, c.close_sent); }
  void on_closed(Conn& c, uint16_t code, uint64_t now, bool by_us);
  void drop(Conn& c);
  void fail(Conn& c, const char* reason, bool handshake_phase);
  void send_frame(Conn& c, Opcode op, const uint8_t* p, size_t n, bool may_compress);
  void send_text(Conn& c, std::string_view s) {
    send_frame(c, Opcode::Text, reinterpret_cast<const uint8_t*>(s.data()), s.size(), true);
  }
  void send_close(Conn& c, uint16_t code);
  void flush(Conn& c);
  void set_events(Conn& c, uint32_t events);
  void pause_reading(Conn& c);
  void resume_reading(Conn& c);
  const std::string* inflate(Conn& c, const uint8_t* p, size_t n);

  // Scenario actions.
  void subscribe(Conn& c, uint64_t now);
  void build_message(uint32_t pub, uint64_t seq, uint64_t ts, uint32_t channel);
  void publish_tick(uint64_t now);
  void publish_missed();
  // --api: the answers to the pipelined publishes; returns the bytes used.
  size_t on_api_answers(Conn& c, const uint8_t* p, size_t n, uint64_t now);
  void send_api_publish(Conn& c);
  void churn_tick(uint64_t now);
  void connect_tick(uint64_t now);
  void sweep(uint64_t now);
  void update_shared();
  uint64_t next_wakeup(uint64_t now) const;
  // Offset of publisher j's schedule: j/P of one period.
  uint64_t phase_ns(uint32_t pub, double rate_p) const {
    return static_cast<uint64_t>(double(pub) / double(opt_.publishers) * 1e9 / rate_p);
  }

  // Commands from the parent.
  void on_command();

  const WorkerContext& ctx_;
  const Options& opt_;
  int ep_ = -1;
  std::vector<Conn> conns_;
  std::vector<uint32_t> pubs_;  // indices of publisher connections
  std::vector<std::string> channel_names_;
  std::vector<uint8_t> rbuf_;
  std::string msg_;             // message being built
  std::string padding_;
  std::string scratch_;
  wstrace::Buffer zbuf_;
  std::unique_ptr<wstrace::ws::Deflater> deflaters_[16];
  std::unique_ptr<wstrace::ws::Inflater> shared_inflater_;
  struct CacheEntry {
    std::string in;
    std::string out;
  };
  std::vector<CacheEntry> inflate_cache_;
  uint64_t rng_ = 0x9E3779B97F4A7C15ull;

  Result r_;
  Histogram progress_hist_;
  uint64_t next_progress_ = 0;
  uint64_t next_sweep_ = 0;
  uint64_t open_ = 0;

  // Phase state.
  uint64_t go_ns_ = 0;           // 0 until the parent says Go
  uint64_t window_start_ = 0;
  uint64_t window_end_ = 0;      // publishing stops here
  bool finish_ = false;
  bool expect_received_ = false;
  std::vector<uint64_t> expect_;
  uint64_t connect_share_ = 0;   // connect: connections this worker opens
  uint64_t connects_started_ = 0;
  uint64_t connects_done_ = 0;
  uint64_t churn_started_ = 0;
  bool publishing_ = false;
  bool pacing_ = false;          // a publisher or connect pacing needs fine wake-ups
  std::vector<uint64_t> local_delivered_;  // per publisher
  uint64_t subscribers_here_ = 0;  // recover: subscribers are conns_[0 .. this)
  uint64_t recover_left_ = 0;      // recover: subscribers still recovering
  uint64_t published_acks_ = 0;    // recover: Published replies to the last message of a channel
  MessageBuffer cmd_buf_;
  bool cmd_eof_ = false;

  SSL_CTX* tls_ctx_ = nullptr;  // --tls

  uint32_t rand32() {
    rng_ ^= rng_ << 13;
    rng_ ^= rng_ >> 7;
    rng_ ^= rng_ << 17;
    return static_cast<uint32_t>(rng_);
  }
};

// ---------------------------------------------------------------------------
// Connections

bool Worker::start_connect(Conn& c, uint64_t now) {
  ++r_.attempted;
  c.gen++;
  c.state = State::Connecting;
  c.step = Step::None;
  c.t_start = now;
  c.t_step = now;
  c.close_sent = false;
  c.deflate = false;
  c.inflate_reset = true;
  c.paused = false;
  c.frag_op = 0;
  c.in.clear();
  c.out.clear();
  c.out_off = 0;
  c.frag.clear();
  c.out_armed = false;
  int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  if (fd < 0) {
    r_.errors[std::string("socket: ") + std::strerror(errno)]++;
    ++r_.connect_failed;
    c.state = State::Closed;
    return false;
  }
  int one = 1;
  setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
  if (opt_.source_addrs > 0) {
    setsockopt(fd, IPPROTO_IP, IP_BIND_ADDRESS_NO_PORT, &one, sizeof one);
    sockaddr_in src{};
    src.sin_family = AF_INET;
    src.sin_addr.s_addr = htonl(0x7F000002u + c.source);
    if (::bind(fd, reinterpret_cast<sockaddr*>(&src), sizeof src) != 0) {
      r_.errors[std::string("bind: ") + std::strerror(errno)]++;
      ++r_.connect_failed;
      ::close(fd);
      c.state = State::Closed;
      return false;
    }
  }
  const sockaddr_in& dst = c.api ? opt_.api_target.addr : opt_.targets[c.target].addr;
  if (::connect(fd, reinterpret_cast<const sockaddr*>(&dst), sizeof dst) != 0 &&
      errno != EINPROGRESS) {
    r_.errors[std::string("connect: ") + std::strerror(errno)]++;
    ++r_.connect_failed;
    ::close(fd);
    c.state = State::Closed;
    return false;
  }
  c.fd = fd;
  epoll_event ev{};
  ev.events = EPOLLIN | EPOLLOUT;
  ev.data.u64 = (uint64_t{c.gen} << 32) | static_cast<uint64_t>(&c - conns_.data());
  epoll_ctl(ep_, EPOLL_CTL_ADD, fd, &ev);
  c.out_armed = true;
  return true;
}

void Worker::set_events(Conn& c, uint32_t events) {
  epoll_event ev{};
  ev.events = events;
  ev.data.u64 = (uint64_t{c.gen} << 32) | static_cast<uint64_t>(&c - conns_.data());
  epoll_ctl(ep_, EPOLL_CTL_MOD, c.fd, &ev);
}

void Worker::pause_reading(Conn& c) {
  if (c.paused || c.fd < 0) return;
  c.paused = true;
  set_events(c, c.out_armed ? kOut : 0u);
}

void Worker::resume_reading(Conn& c) {
  if (!c.paused || c.fd < 0) return;
  c.paused = false;
  set_events(c, EPOLLIN | (c.out_armed ? kOut : 0u));
}

void Worker::on_connected(Conn& c, uint64_t now) {
  int err = 0;
  socklen_t len = sizeof err;
  getsockopt(c.fd, SOL_SOCKET, SO_ERROR, &err, &len);
  if (err != 0) {
    r_.errors[std::string("connect: ") + std::strerror(err)]++;
    fail(c, nullptr, true);
    return;
  }
  if (tls_ctx_ != nullptr && !c.api) {
    c.ssl = SSL_new(tls_ctx_);
    if (c.ssl == nullptr || SSL_set_fd(c.ssl, c.fd) != 1) {
      fail(c, "tls: cannot create a session", true);
      return;
    }
    SSL_set_tlsext_host_name(c.ssl, "localhost");
    SSL_set_connect_state(c.ssl);
    c.state = State::TlsHandshake;
    tls_step(c, now);
    return;
  }
  if (c.api) {
    // HTTP/1.1 keep-alive: nothing to upgrade.
    c.state = State::Open;
    ++open_;
    ++r_.connected;
    ++connects_done_;
    set_events(c, kIn);
    c.out_armed = false;
    on_open(c, now);
    return;
  }
  send_upgrade(c, now);
}

void Worker::tls_step(Conn& c, uint64_t now) {
  switch (wstrace::net::tls_handshake(c.ssl)) {
    case wstrace::net::TlsStep::Done:
      ++r_.tls_handshakes;
      if (SSL_session_reused(c.ssl)) ++r_.tls_resumed;
      send_upgrade(c, now);
      return;
    case wstrace::net::TlsStep::Again:
      // Level-triggered: ask for EPOLLOUT only when OpenSSL has to write.
      c.out_armed = SSL_want_write(c.ssl);
      set_events(c, c.out_armed ? kIn | EPOLLOUT : kIn);
      return;
    case wstrace::net::TlsStep::Failed:
      r_.errors["tls: " + wstrace::net::tls_error().message]++;
      fail(c, nullptr, true);
      return;
  }
}

ssize_t Worker::io_read(Conn& c, uint8_t* p, size_t n) {
  return c.ssl == nullptr ? ::read(c.fd, p, n) : wstrace::net::tls_read(c.ssl, p, n);
}

ssize_t Worker::io_write(Conn& c, const char* p, size_t n) {
  if (c.ssl == nullptr) return ::write(c.fd, p, n);
  return wstrace::net::tls_write(c.ssl, reinterpret_cast<const uint8_t*>(p), n);
}

void Worker::send_upgrade(Conn& c, uint64_t now) {
  uint8_t raw[16];
  for (int i = 0; i < 16; i += 4) {
    uint32_t v = rand32();
    std::memcpy(raw + i, &v, 4);
  }
  c.key = base64(raw, 16);
  const Target& t = opt_.targets[c.target];
  std::string req;
  req.reserve(256);
  req += "GET ";
  req += opt_.path;
  req += " HTTP/1.1\r\nHost: ";
  req += t.text;
  req += "\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: ";
  req += c.key;
  req += "\r\nSec-WebSocket-Version: 13\r\n";
  if (opt_.compression) {
    req += "Sec-WebSocket-Extensions: permessage-deflate; server_no_context_takeover; "
           "client_no_context_takeover; client_max_window_bits\r\n";
  }
  req += "\r\n";
  c.state = State::Handshake;
  c.t_step = now;
  c.out = std::move(req);
  c.out_off = 0;
  flush(c);
}

void Worker::flush(Conn& c) {
  while (c.out_off < c.out.size()) {
    ssize_t n = io_write(c, c.out.data() + c.out_off, c.out.size() - c.out_off);
    if (n < 0) {
      if (errno == EINTR) continue;
      if (errno == EAGAIN) {
        if (!c.out_armed) {
          c.out_armed = true;
          set_events(c, (c.paused ? 0u : kIn) | EPOLLOUT);
        }
        return;
      }
      r_.errors[std::string("write: ") + std::strerror(errno)]++;
      on_closed(c, 1006, mono_ns());
      return;
    }
    c.out_off += static_cast<size_t>(n);
  }
  c.out.clear();
  c.out_off = 0;
  if (c.out_armed && c.state != State::Connecting) {
    c.out_armed = false;
    set_events(c, c.paused ? 0u : kIn);
  }
}

void Worker::send_frame(Conn& c, Opcode op, const uint8_t* p, size_t n, bool may_compress) {
  if (c.fd < 0) return;
  bool rsv1 = false;
  if (may_compress && c.deflate) {
    auto& d = deflaters_[c.client_bits];
    if (!d) d = std::make_unique<wstrace::ws::Deflater>(c.client_bits);
    zbuf_.clear();
    if (d->compress(p, n, zbuf_)) {
      p = zbuf_.data();
      n = zbuf_.size();
      rsv1 = true;
    }
  }
  uint8_t mask[4];
  const uint32_t m = rand32();
  std::memcpy(mask, &m, 4);
  uint8_t head[wstrace::ws::kMaxHeaderSize];
  const size_t hn = wstrace::ws::write_header(head, op, n, true, rsv1, mask);
  const size_t at = c.out.size();
  c.out.append(reinterpret_cast<const char*>(head), hn);
  c.out.append(reinterpret_cast<const char*>(p), n);
  wstrace::ws::apply_mask(reinterpret_cast<uint8_t*>(c.out.data() + at + hn), n, mask);
}

void Worker::send_close(Conn& c, uint16_t code) {
  if (c.close_sent || c.fd < 0) return;
  c.close_sent = true;
  const uint8_t payload[2] = {static_cast<uint8_t>(code >> 8), static_cast<uint8_t>(code)};
  send_frame(c, Opcode::Close, payload, 2, false);
}

void Worker::drop(Conn& c) {
  if (c.ssl != nullptr) {
    SSL_free(c.ssl);
    c.ssl = nullptr;
  }
  if (c.fd >= 0) {
    epoll_ctl(ep_, EPOLL_CTL_DEL, c.fd, nullptr);
    ::close(c.fd);
    c.fd = -1;
  }
  if (c.state == State::Open) --open_;
  if (c.counted) {
    c.counted = false;
    ctx_.shared.subs_at(ctx_.index, c.channel).fetch_sub(1, std::memory_order_relaxed);
  }
  if (c.recovering) {
    c.recovering = false;
    --recover_left_;
    ++r_.not_recovered;
    r_.errors["recover: the connection ended before it had recovered"]++;
  }
  c.state = State::Closed;
  c.in.clear();
  c.in.shrink_to_fit();
  c.out.clear();
  c.out.shrink_to_fit();
  c.out_off = 0;
  c.inflater.reset();
}

// A connection that never became a WebSocket.
void Worker::fail(Conn& c, const char* reason, bool handshake_phase) {
  if (reason != nullptr) r_.errors[reason]++;
  if (handshake_phase) {
    ++r_.connect_failed;
    ++connects_done_;
  }
  if (c.role == Role::Churn) ++r_.cycle_failures;
  drop(c);
}

void Worker::on_closed(Conn& c, uint16_t code, uint64_t now, bool by_us) {
  (void)now;
  if (c.state == State::Connecting || c.state == State::TlsHandshake ||
      c.state == State::Handshake) {
    r_.errors["closed during handshake"]++;
    fail(c, nullptr, true);
    return;
  }
  if (c.state != State::Open) {
    drop(c);
    return;
  }
  r_.close_codes[code]++;
  if (!by_us) {
    if (c.laggard) {
      ++r_.laggard_closed;
    } else if (c.role == Role::Churn) {
      ++r_.cycle_failures;
      r_.errors["churn: closed by server"]++;
    } else {
      ++r_.disconnected;
    }
  } else if (c.role == Role::Churn && c.step == Step::Closing) {
    ++r_.cycles;
  }
  drop(c);
}

void Worker::on_event(Conn& c, uint32_t events, uint64_t now) {
  if (c.state == State::Connecting) {
    if (events & (EPOLLOUT | EPOLLERR | EPOLLHUP)) on_connected(c, now);
    return;
  }
  if (c.state == State::TlsHandshake) {
    tls_step(c, now);
    return;
  }
  if ((events & EPOLLOUT) && c.fd >= 0) flush(c);
  if (c.fd < 0) return;
  if (events & EPOLLIN) {
    on_readable(c, now);
  } else if (events & (EPOLLERR | EPOLLHUP)) {
    if (c.paused) resume_reading(c);
    on_readable(c, now);
  }
}

void Worker::on_readable(Conn& c, uint64_t now) {
  size_t have = c.in.size();
  if (rbuf_.size() < have + kReadChunk) rbuf_.resize(have + kReadChunk);
  if (have > 0) std::memcpy(rbuf_.data(), c.in.data(), have);
  ssize_t n = io_read(c, rbuf_.data() + have, kReadChunk);
  if (n == 0 || (n < 0 && errno != EAGAIN && errno != EINTR)) {
    on_closed(c, 1006, now);
    return;
  }
  if (n < 0) return;
  now = mono_ns();
  size_t total = have + static_cast<size_t>(n);
  size_t used = 0;
  if (c.state == State::Handshake) {
    c.in.assign(reinterpret_cast<const char*>(rbuf_.data()), total);
    if (!on_handshake(c, now)) return;
    // on_handshake left the bytes after the response in c.in.
    have = c.in.size();
    std::memcpy(rbuf_.data(), c.in.data(), have);
    total = have;
  }
  if (c.state != State::Open) return;
  used = c.api ? on_api_answers(c, rbuf_.data(), total, now) : on_frames(c, rbuf_.data(), total, now);
  if (c.fd < 0) return;
  c.in.assign(reinterpret_cast<const char*>(rbuf_.data() + used), total - used);
  if (c.in.empty() && c.in.capacity() > 4096) c.in.shrink_to_fit();
  if (c.out_off < c.out.size()) flush(c);
  // Bytes TLS has decrypted but not handed over yet: epoll cannot see them.
  if (c.fd >= 0 && c.ssl != nullptr && !c.paused && SSL_pending(c.ssl) > 0) on_readable(c, now);
}

bool Worker::on_handshake(Conn& c, uint64_t now) {
  const size_t end = c.in.find("\r\n\r\n");
  if (end == std::string::npos) {
    if (c.in.size() > 16384) fail(c, "handshake: response too large", true);
    return false;
  }
  std::string_view head(c.in.data(), end + 2);
  if (head.compare(0, 12, "HTTP/1.1 101") != 0) {
    std::string line(head.substr(0, head.find("\r\n")));
    ++r_.handshake_failed;
    ++connects_done_;
    r_.errors["handshake: " + line]++;
    if (c.role == Role::Churn) ++r_.cycle_failures;
    drop(c);
    return false;
  }
  if (header_value(head, "Sec-WebSocket-Accept") != wstrace::ws::accept_key(c.key)) {
    ++r_.handshake_failed;
    ++connects_done_;
    r_.errors["handshake: bad Sec-WebSocket-Accept"]++;
    if (c.role == Role::Churn) ++r_.cycle_failures;
    drop(c);
    return false;
  }
  std::string_view ext = header_value(head, "Sec-WebSocket-Extensions");
  if (ext.find("permessage-deflate") != std::string_view::npos) {
    c.deflate = true;
    ++r_.deflate_conns;
    c.inflate_reset = ext.find("server_no_context_takeover") != std::string_view::npos;
    c.client_bits = 15;
    const size_t b = ext.find("client_max_window_bits=");
    if (b != std::string_view::npos) {
      int bits = std::atoi(std::string(ext.substr(b + 23, 2)).c_str());
      if (bits >= 9 && bits <= 15) c.client_bits = static_cast<uint8_t>(bits);
    }
    // zlib cannot deflate with an 8-bit window; a 9-bit one is what it uses.
    if (!c.inflate_reset) {
      c.inflater = std::make_unique<wstrace::ws::Inflater>(15);
    }
  }
  c.in.erase(0, end + 4);
  c.key.clear();
  c.key.shrink_to_fit();
  c.state = State::Open;
  ++open_;
  ++r_.connected;
  ++connects_done_;
  r_.handshake.record(now - c.t_start);
  if (c.role != Role::Churn) r_.connect_ns = std::max(r_.connect_ns, now - go_ns_);
  on_open(c, now);
  return c.state == State::Open;
}

const std::string* Worker::inflate(Conn& c, const uint8_t* p, size_t n) {
  if (c.inflate_reset) {
    // Without context takeover a compressed message always inflates to the
    // same text, and a broadcast sends the same bytes to every subscriber:
    // remember recent ones so the load generator is not the bottleneck.
    uint64_t h = 1469598103934665603ull;
    for (size_t i = 0; i < n; ++i) h = (h ^ p[i]) * 1099511628211ull;
    CacheEntry& e = inflate_cache_[h & (inflate_cache_.size() - 1)];
    if (e.in.size() == n && std::memcmp(e.in.data(), p, n) == 0) return &e.out;
    if (!shared_inflater_) shared_inflater_ = std::make_unique<wstrace::ws::Inflater>(15);
    zbuf_.clear();
    if (shared_inflater_->inflate_message(p, n, zbuf_, kMaxMessage, true) !=
        wstrace::ws::Inflater::Result::Ok) {
      return nullptr;
    }
    e.in.assign(reinterpret_cast<const char*>(p), n);
    e.out.assign(reinterpret_cast<const char*>(zbuf_.data()), zbuf_.size());
    return &e.out;
  }
  zbuf_.clear();
  if (c.inflater->inflate_message(p, n, zbuf_, kMaxMessage, false) !=
      wstrace::ws::Inflater::Result::Ok) {
    return nullptr;
  }
  scratch_.assign(reinterpret_cast<const char*>(zbuf_.data()), zbuf_.size());
  return &scratch_;
}

size_t Worker::on_frames(Conn& c, const uint8_t* p, size_t n, uint64_t now) {
  size_t pos = 0;
  while (c.fd >= 0) {
    wstrace::ws::FrameHeader h;
    auto st = wstrace::ws::parse_header(p + pos, n - pos, h);
    if (st == wstrace::ws::HeaderStatus::NeedMore) break;
    if (st == wstrace::ws::HeaderStatus::BadLength || h.masked || h.rsv2 || h.rsv3 ||
        h.payload_size > kMaxMessage || (h.rsv1 && !c.deflate)) {
      r_.errors["protocol: bad frame from server"]++;
      on_closed(c, 1002, now);
      break;
    }
    if (n - pos < h.header_size + h.payload_size) break;
    const uint8_t* payload = p + pos + h.header_size;
    const size_t len = static_cast<size_t>(h.payload_size);
    pos += h.header_size + len;
    switch (h.opcode) {
      case 0x1:
      case 0x2:
        if (c.frag_op != 0) {
          r_.errors["protocol: new message inside a fragmented one"]++;
          on_closed(c, 1002, now);
          return pos;
        }
        if (h.fin) {
          if (h.rsv1) {
            const std::string* s = inflate(c, payload, len);
            if (s == nullptr) {
              r_.errors["protocol: inflate failed"]++;
              on_closed(c, 1002, now);
              return pos;
            }
            on_message(c, reinterpret_cast<const uint8_t*>(s->data()), s->size(), now);
          } else {
            on_message(c, payload, len, now);
          }
        } else {
          c.frag_op = h.opcode;
          c.frag_rsv1 = h.rsv1;
          c.frag.assign(reinterpret_cast<const char*>(payload), len);
        }
        break;
      case 0x0:
        if (c.frag_op == 0) {
          r_.errors["protocol: continuation without a message"]++;
          on_closed(c, 1002, now);
          return pos;
        }
        c.frag.append(reinterpret_cast<const char*>(payload), len);
        if (h.fin) {
          c.frag_op = 0;
          std::string whole = std::move(c.frag);
          c.frag.clear();
          if (c.frag_rsv1) {
            const std::string* s =
                inflate(c, reinterpret_cast<const uint8_t*>(whole.data()), whole.size());
            if (s == nullptr) {
              r_.errors["protocol: inflate failed"]++;
              on_closed(c, 1002, now);
              return pos;
            }
            whole = *s;
          }
          on_message(c, reinterpret_cast<const uint8_t*>(whole.data()), whole.size(), now);
        }
        break;
      case 0x9:  // Ping: answer with the same payload
        send_frame(c, Opcode::Pong, payload, len, false);
        ++r_.pings_answered;
        break;
      case 0xA:
        break;
      case 0x8: {
        uint16_t code = 1005;
        if (len >= 2) code = static_cast<uint16_t>((payload[0] << 8) | payload[1]);
        const bool ours = c.close_sent;
        if (!ours) {
          send_close(c, code == 1005 ? 1000 : code);
          flush(c);
        }
        if (c.fd >= 0) on_closed(c, code, now, ours);
        return pos;
      }
      default:
        r_.errors["protocol: unknown opcode"]++;
        on_closed(c, 1002, now);
        return pos;
    }
  }
  return pos;
}

void Worker::on_message(Conn& c, const uint8_t* p, size_t n, uint64_t now) {
  std::string_view doc(reinterpret_cast<const char*>(p), n);
  static constexpr std::string_view kMsgPrefix = "{\"type\":\"Message\",\"channel\":\"";
  std::string_view type;
  std::string_view channel;
  std::string_view content;
  if (doc.size() > kMsgPrefix.size() && doc.compare(0, kMsgPrefix.size(), kMsgPrefix) == 0) {
    // The server's own layout: take the fast path.
    const size_t ch_end = doc.find('"', kMsgPrefix.size());
    static constexpr std::string_view kContent = ",\"content\":\"";
    if (ch_end != std::string_view::npos &&
        doc.compare(ch_end + 1, kContent.size(), kContent) == 0) {
      type = "Message";
      channel = doc.substr(kMsgPrefix.size(), ch_end - kMsgPrefix.size());
      const size_t start = ch_end + 1 + kContent.size();
      const size_t end = doc.find('"', start);
      if (end != std::string_view::npos) content = doc.substr(start, end - start);
    }
  }
  if (type.empty()) {
    type = json_string(doc, "type");
    if (type == "Message") {
      channel = json_string(doc, "channel");
      content = json_string(doc, "content");
    }
  }
  if (type == "Message") {
    // The offset follows the content (the server's layout); anywhere else
    // it is looked up.
    static constexpr std::string_view kOffset = ",\"offset\":";
    int64_t offset = -1;
    uint64_t v = 0;
    const size_t after = content.data() != nullptr
                             ? static_cast<size_t>(content.data() - doc.data()) + content.size() + 1
                             : doc.size();
    if (after < doc.size() && doc.compare(after, kOffset.size(), kOffset) == 0) {
      size_t i = after + kOffset.size();
      bool digits = false;
      for (; i < doc.size() && doc[i] >= '0' && doc[i] <= '9'; ++i, digits = true) {
        v = v * 10 + uint64_t(doc[i] - '0');
      }
      if (digits) offset = static_cast<int64_t>(v);
    } else if (json_uint(doc, "offset", v)) {
      offset = static_cast<int64_t>(v);
    }
    on_delivery(c, content, channel, offset, now);
  } else if (type == "Gap") {
    // A cluster's notice of positions this subscriber will not get: the
    // next message follows `to`.
    ++r_.gap_notices;
    uint64_t to = 0;
    if (json_uint(doc, "to", to) && c.have_offset) on_position(c, to, now);
    std::string_view epoch = json_string(doc, "epoch");
    if (!epoch.empty()) c.epoch.assign(epoch);
  } else if (type == "Published") {
    ++published_acks_;
  } else if (type == "Subscribed") {
    if (c.step == Step::Subscribing) {
      on_subscribed(c, doc, now);
      ++r_.subscribed;
      c.step = Step::Ready;
      c.t_step = now;
      if (c.role == Role::Subscriber && !c.laggard) {
        c.counted = true;
        ctx_.shared.subs_at(ctx_.index, c.channel).fetch_add(1, std::memory_order_relaxed);
      }
      if (c.role == Role::Churn) {
        build_message(c.id, c.seq, now, c.channel);
        send_text(c, msg_);
        c.step = Step::AwaitOwn;
        c.t_step = now;
        ++r_.published;
      }
    }
  } else if (type == "Pong") {
    if (c.step == Step::PingWait) {
      ++r_.alive_at_end;
      c.step = Step::Ready;
    }
  } else if (type == "Error") {
    ++r_.server_errors;
    std::string code(json_string(doc, "code"));
    r_.errors["server Error: " + code]++;
    if (c.step == Step::Subscribing && c.role == Role::Churn) {
      ++r_.cycle_failures;
      send_close(c, 1000);
      c.step = Step::Closing;
    }
  } else if (type == "Unsubscribed") {
    // not used by the scenarios
  } else {
    r_.errors["unexpected message: " + std::string(doc.substr(0, 60))]++;
  }
}

// The subscriber's channel position: the next message must carry the offset
// after it.
void Worker::on_position(Conn& c, uint64_t offset, uint64_t now) {
  c.offset = offset;
  c.have_offset = true;
  if (c.recovering && c.offset >= c.recover_to) {
    c.recovering = false;
    --recover_left_;
    ++r_.recovered;
    r_.recovered_messages += c.recover_to - c.recover_from;
    r_.latency.record(now - c.t_start);
  }
}

void Worker::on_subscribed(Conn& c, std::string_view doc, uint64_t now) {
  uint64_t offset = 0;
  if (!json_uint(doc, "offset", offset)) {
    r_.errors["Subscribed without an offset"]++;
    return;
  }
  std::string_view epoch = json_string(doc, "epoch");
  if (c.recovering) {
    const bool recovered = doc.find("\"recovered\":true") != std::string_view::npos;
    if (!recovered || epoch != c.epoch) {
      c.recovering = false;
      --recover_left_;
      ++r_.not_recovered;
      r_.errors[recovered ? "recover: another epoch" : "recover: recovered:false"]++;
    } else {
      // Every message after `since` up to `offset` follows, then live ones.
      c.recover_to = offset;
      on_position(c, c.offset, now);
      return;
    }
  }
  c.epoch.assign(epoch);
  on_position(c, offset, now);
}

void Worker::on_delivery(Conn& c, std::string_view content, std::string_view channel,
                         int64_t offset, uint64_t now) {
  ++r_.deliveries;
  if (c.role == Role::Subscriber && !c.laggard && c.have_offset) {
    ++r_.offsets_checked;
    if (offset < 0 || static_cast<uint64_t>(offset) != c.offset + 1) {
      if (r_.offset_errors++ < 3) {
        r_.errors["offset " + std::to_string(offset) + " after " + std::to_string(c.offset)]++;
      }
    }
    if (offset >= 0) on_position(c, static_cast<uint64_t>(offset), now);
  }
  if (opt_.scenario == Scenario::Recover) return;  // one publisher for every channel
  const bool in_window = go_ns_ != 0 && now >= window_start_ && now < window_end_;
  uint64_t pub, seq, ts;
  if (content.size() < kContentHeader || !parse_hex(content.data(), 8, pub) ||
      !parse_hex(content.data() + 8, 8, seq) || !parse_hex(content.data() + 16, 16, ts)) {
    ++r_.corrupt;
    return;
  }
  const uint64_t lat = now > ts ? now - ts : 0;
  progress_hist_.record(lat);
  if (c.role == Role::Churn) {
    if (pub == c.id && seq == c.seq && c.step == Step::AwaitOwn) {
      send_close(c, 1000);
      c.step = Step::Closing;
      c.t_step = now;
    }
    return;
  }
  if (c.role != Role::Subscriber) return;
  if (c.laggard) {
    ++r_.laggard_received;
    return;
  }
  // Deliveries received after the window closes (the drain) still count
  // toward the check but not toward the rate.
  if (in_window) {
    ++r_.deliveries_window;
    r_.latency.record(lat);
  }
  if (channel != channel_names_[c.channel] || pub >= opt_.publishers ||
      pub % opt_.channels != c.channel || pub / opt_.channels >= c.tracks.size()) {
    ++r_.misrouted;
    return;
  }
  ++local_delivered_[pub];
  switch (c.tracks[pub / opt_.channels].on(seq)) {
    case SequenceTrack::Verdict::InOrder:
    case SequenceTrack::Verdict::Ahead:
      break;
    case SequenceTrack::Verdict::Late:
      ++r_.reordered;
      break;
    case SequenceTrack::Verdict::Duplicate:
      ++r_.duplicated;
      break;
  }
}

void Worker::subscribe(Conn& c, uint64_t now) {
  scratch_ = "{\"type\":\"Subscribe\",\"channel\":\"";
  scratch_ += channel_names_[c.channel];
  if (c.recovering) {
    scratch_ += "\",\"since\":{\"epoch\":\"";
    scratch_ += c.epoch;
    scratch_ += "\",\"offset\":";
    scratch_ += std::to_string(c.offset);
    scratch_ += "}}";
  } else {
    scratch_ += "\"}";
  }
  send_text(c, scratch_);
  c.step = Step::Subscribing;
  c.t_step = now;
}

void Worker::on_open(Conn& c, uint64_t now) {
  switch (c.role) {
    case Role::Subscriber:
      subscribe(c, now);
      break;
    case Role::Churn:
      c.channel = static_cast<uint32_t>((c.id + c.seq) % opt_.channels);
      subscribe(c, now);
      break;
    case Role::Idle:
      if (opt_.subscribe) {
        subscribe(c, now);
      } else {
        c.step = Step::Ready;
      }
      break;
    case Role::Publisher:
      c.step = Step::Ready;
      break;
  }
}

void Worker::build_message(uint32_t pub, uint64_t seq, uint64_t ts, uint32_t channel) {
  msg_ = "{\"type\":\"Message\",\"channel\":\"";
  msg_ += channel_names_[channel];
  msg_ += "\",\"content\":\"";
  const size_t at = msg_.size();
  msg_.resize(at + kContentHeader);
  put_hex(msg_.data() + at, 8, pub);
  put_hex(msg_.data() + at + 8, 8, seq);
  put_hex(msg_.data() + at + 16, 16, ts);
  msg_ += padding_;
  msg_ += "\"}";
}

// ---------------------------------------------------------------------------
// The server API publisher (--api)

void Worker::send_api_publish(Conn& c) {
  // msg_ is {"type":"Message","channel":..,"content":..}: the API ignores "type".
  scratch_ = "POST /api/v1/publish HTTP/1.1\r\nHost: wstrace\r\nContent-Type: application/json\r\n";
  if (!opt_.api_key.empty()) scratch_ += "Authorization: Bearer " + opt_.api_key + "\r\n";
  scratch_ += "Content-Length: " + std::to_string(msg_.size()) + "\r\n\r\n";
  c.out += scratch_;
  c.out += msg_;
  c.api_sent.push_back(mono_ns());
}

size_t Worker::on_api_answers(Conn& c, const uint8_t* p, size_t n, uint64_t now) {
  const std::string_view all(reinterpret_cast<const char*>(p), n);
  size_t at = 0;
  while (at < n) {
    const size_t end = all.find("\r\n\r\n", at);
    if (end == std::string_view::npos) break;
    const std::string_view head = all.substr(at, end + 2 - at);
    const std::string_view cl = header_value(head, "Content-Length");
    const size_t len = static_cast<size_t>(std::strtoull(std::string(cl).c_str(), nullptr, 10));
    if (n < end + 4 + len) break;
    const std::string_view body = all.substr(end + 4, len);
    const bool ok = head.compare(0, 12, "HTTP/1.1 200") == 0 &&
                    body.find("\"offset\":") != std::string_view::npos;
    if (ok) {
      ++r_.api_answers;
      if (go_ns_ != 0 && now >= window_start_ && now < window_end_) ++r_.api_answers_window;
    } else {
      ++r_.api_failures;
      r_.errors["api: " + std::string(head.substr(0, head.find("\r\n"))) + " " +
                std::string(body.substr(0, 120))]++;
    }
    if (!c.api_sent.empty()) {
      const uint64_t sent = c.api_sent.front();
      c.api_sent.pop_front();
      if (go_ns_ != 0 && now >= window_start_ && now < window_end_) {
        r_.api_latency.record(now > sent ? now - sent : 0);
      }
    }
    at = end + 4 + len;
  }
  return at;
}

// ---------------------------------------------------------------------------
// Scenario ticks

// recover: --missed messages to every channel, round-robin; the last one of
// each channel asks for its Published reply, so once all have come back
// every missed message has its position (and its place in the history).
void Worker::publish_missed() {
  for (uint32_t idx : pubs_) {
    Conn& c = conns_[idx];
    if (c.state != State::Open) continue;
    for (uint32_t m = 0; m < opt_.missed; ++m) {
      for (uint32_t ch = 0; ch < opt_.channels; ++ch) {
        build_message(0, c.seq++, mono_ns(), ch);
        if (m + 1 == opt_.missed) msg_.insert(msg_.size() - 1, ",\"id\":1");
        send_text(c, msg_);
        ++r_.published;
      }
      flush(c);
      // Keep what is queued bounded: let the socket drain.
      while (c.fd >= 0 && c.out.size() - c.out_off > (4u << 20)) poll(mono_ns() + 10'000'000);
    }
  }
}

void Worker::publish_tick(uint64_t now) {
  if (!publishing_) return;
  if (now >= window_end_) {
    publishing_ = false;
    return;
  }
  for (uint32_t idx : pubs_) {
    Conn& c = conns_[idx];
    if (c.state != State::Open) continue;
    if (c.out.size() - c.out_off > (4u << 20)) {
      ++r_.publisher_stalls;
      continue;
    }
    uint64_t budget = 0;
    const double rate_p = opt_.rate / opt_.publishers;
    if (opt_.rate > 0) {
      // Publishers are phase-shifted by j/P of their period, as independent
      // publishers would be, instead of all firing at the same instant.
      const uint64_t start = go_ns_ + phase_ns(c.id, rate_p);
      const uint64_t due =
          now < start ? 0 : static_cast<uint64_t>(double(now - start) * rate_p / 1e9) + 1;
      budget = due > c.seq ? due - c.seq : 0;
      if (budget > 10000) budget = 10000;
    } else {
      // Delivery progress of this publisher's subscribers: the average within
      // each worker, the slowest worker counts (a worker the scheduler left
      // behind holds the publisher back instead of letting queues grow).
      uint64_t acked = c.seq;
      for (uint32_t w = 0; w < ctx_.shared.procs; ++w) {
        const uint64_t subs = ctx_.shared.subs_at(w, c.channel).load(std::memory_order_relaxed);
        if (subs == 0) continue;
        const uint64_t got = ctx_.shared.delivered_at(w, c.id).load(std::memory_order_relaxed);
        acked = std::min(acked, got / subs);
      }
      const uint64_t in_flight = c.seq > acked ? c.seq - acked : 0;
      budget = in_flight < opt_.window ? opt_.window - in_flight : 0;
      // The server API's answers count too: at most --window unanswered.
      if (c.api) budget = std::min<uint64_t>(budget, opt_.window - std::min<uint64_t>(opt_.window, c.api_sent.size()));
    }
    for (uint64_t k = 0; k < budget; ++k) {
      if (opt_.rate > 0) {
        const uint64_t intended = go_ns_ + phase_ns(c.id, rate_p) +
                                  static_cast<uint64_t>(double(c.seq) * 1e9 / rate_p);
        r_.publish_lag.record(now > intended ? now - intended : 0);
      }
      build_message(c.id, c.seq, now, c.channel);
      if (c.api) {
        send_api_publish(c);
      } else {
        send_text(c, msg_);
      }
      ++c.seq;
      ++r_.published;
      if (now >= window_start_) ++r_.published_window;
    }
    if (budget > 0) flush(c);
  }
}

void Worker::update_shared() {
  if (opt_.scenario != Scenario::Fanout) return;
  for (uint32_t j = 0; j < opt_.publishers; ++j) {
    if (local_delivered_[j] != 0) {
      ctx_.shared.delivered_at(ctx_.index, j).store(local_delivered_[j],
                                                     std::memory_order_relaxed);
    }
  }
}

void Worker::connect_tick(uint64_t now) {
  if (go_ns_ == 0 || now < go_ns_) return;
  uint64_t allowed = connect_share_;
  if (opt_.rate > 0 && opt_.scenario == Scenario::Connect) {
    const double rate_w = opt_.rate / opt_.procs;
    allowed = std::min<uint64_t>(connect_share_,
                                 static_cast<uint64_t>(double(now - go_ns_) * rate_w / 1e9) + 1);
  }
  while (connects_started_ < allowed && connects_started_ - connects_done_ < opt_.max_pending) {
    Conn& c = conns_[connects_started_++];
    if (!start_connect(c, now)) ++connects_done_;
  }
}

void Worker::churn_tick(uint64_t now) {
  if (go_ns_ == 0 || now < go_ns_) return;
  const bool running = now < window_end_;
  for (Conn& c : conns_) {
    if (c.state == State::Free || c.state == State::Closed) {
      if (!running) continue;
      if (opt_.rate > 0) {
        const double rate_w = opt_.rate / opt_.procs;
        if (double(churn_started_) >= double(now - go_ns_) * rate_w / 1e9 + 1) break;
      }
      if (c.state == State::Closed) ++c.seq;  // next cycle
      ++churn_started_;
      start_connect(c, now);
    }
  }
}

// Timeouts of handshakes, subscriptions, pings and churn steps.
void Worker::sweep(uint64_t now) {
  const uint64_t hs = static_cast<uint64_t>(opt_.handshake_timeout_s * kSec);
  for (Conn& c : conns_) {
    if (c.fd < 0) continue;
    if ((c.state == State::Connecting || c.state == State::TlsHandshake ||
         c.state == State::Handshake) &&
        now - c.t_start > hs) {
      fail(c, "handshake timeout", true);
    } else if (c.state == State::Open && c.step == Step::Subscribing && now - c.t_step > hs) {
      r_.errors["subscribe timeout"]++;
      if (c.role == Role::Churn) {
        ++r_.cycle_failures;
        drop(c);
      } else {
        c.step = Step::None;
      }
    } else if (c.role == Role::Churn && c.state == State::Open &&
               (c.step == Step::AwaitOwn || c.step == Step::Closing) && now - c.t_step > hs) {
      r_.errors[c.step == Step::AwaitOwn ? "churn: own message never delivered"
                                         : "churn: no Close reply"]++;
      if (c.step == Step::AwaitOwn) ++r_.lost;
      ++r_.cycle_failures;
      drop(c);
    }
  }
}

// ---------------------------------------------------------------------------
// Loop and reporting

uint64_t Worker::next_wakeup(uint64_t now) const {
  uint64_t next = std::min(next_progress_, next_sweep_);
  if (publishing_) {
    if (opt_.rate > 0) {
      const double rate_p = opt_.rate / opt_.publishers;
      for (uint32_t idx : pubs_) {
        const Conn& c = conns_[idx];
        const uint64_t due = go_ns_ + phase_ns(c.id, rate_p) +
                             static_cast<uint64_t>(double(c.seq) * 1e9 / rate_p);
        next = std::min(next, due);
      }
    } else {
      next = std::min(next, now + 100'000);
    }
    next = std::min(next, window_end_);
  }
  if (pacing_) next = std::min(next, now + 1'000'000);
  return next;
}

void Worker::poll(uint64_t deadline_ns) {
  epoll_event events[512];
  uint64_t now = mono_ns();
  uint64_t wake = std::min(deadline_ns, next_wakeup(now));
  timespec ts{};
  if (wake > now) {
    const uint64_t d = wake - now;
    ts.tv_sec = static_cast<time_t>(d / kSec);
    ts.tv_nsec = static_cast<long>(d % kSec);
  }
  int n = epoll_pwait2(ep_, events, 512, &ts, nullptr);
  now = mono_ns();
  for (int i = 0; i < n; ++i) {
    const uint64_t tag = events[i].data.u64;
    if (tag == kCmdTag) {
      on_command();
      continue;
    }
    Conn& c = conns_[tag & 0xFFFFFFFFu];
    if (c.gen != (tag >> 32) || c.fd < 0) continue;
    on_event(c, events[i].events, now);
  }
  now = mono_ns();
  update_shared();
  if (opt_.scenario == Scenario::Fanout) publish_tick(now);
  if (opt_.scenario == Scenario::Churn) churn_tick(now);
  if (opt_.scenario == Scenario::Connect) connect_tick(now);
  if (now >= next_sweep_) {
    sweep(now);
    next_sweep_ = now + 100'000'000;
  }
  if (now >= next_progress_) {
    report_progress(now);
    next_progress_ = now + kSec;
  }
}

void Worker::on_command() {
  char buf[65536];
  for (;;) {
    ssize_t n = ::read(ctx_.cmd_fd, buf, sizeof buf);
    if (n > 0) {
      cmd_buf_.append(buf, static_cast<size_t>(n));
      continue;
    }
    if (n == 0) cmd_eof_ = true;
    break;
  }
  Kind kind;
  std::string body;
  while (cmd_buf_.next(kind, body)) {
    Reader r(body.data(), body.size());
    if (kind == Kind::Go) {
      go_ns_ = r.u64();
    } else if (kind == Kind::Expect) {
      expect_.resize(opt_.channels);
      for (uint32_t ch = 0; ch < opt_.channels; ++ch) expect_[ch] = r.u64();
      expect_received_ = true;
    } else if (kind == Kind::Finish) {
      finish_ = true;
    }
  }
  if (cmd_eof_) {
    // The parent is gone: stop everything.
    finish_ = true;
    expect_received_ = true;
    if (go_ns_ == 0) go_ns_ = mono_ns();
  }
}

void Worker::report_ready(uint64_t phase) {
  Writer w(Kind::Ready);
  w.u64(phase);
  w.send(ctx_.report_fd);
}

void Worker::report_progress(uint64_t now) {
  (void)now;
  Writer w(Kind::Progress);
  w.u64(open_);
  w.u64(r_.deliveries);
  w.u64(r_.published);
  w.u64(r_.connected);
  w.u64(r_.connect_failed + r_.handshake_failed);
  w.u64(r_.cycles);
  w.u64(r_.lost + r_.duplicated + r_.reordered + r_.misrouted + r_.corrupt);
  progress_hist_.write(w);
  w.send(ctx_.report_fd);
  progress_hist_.reset();
}

void Worker::report_final() {
  rusage ru{};
  getrusage(RUSAGE_SELF, &ru);
  r_.bench_cpu_ns = uint64_t(ru.ru_utime.tv_sec + ru.ru_stime.tv_sec) * kSec +
                    uint64_t(ru.ru_utime.tv_usec + ru.ru_stime.tv_usec) * 1000;
  Writer w(Kind::Final);
  r_.write(w);
  w.send(ctx_.report_fd);
}

void Worker::close_all(uint64_t grace_ns) {
  const uint64_t now = mono_ns();
  for (Conn& c : conns_) {
    if (c.fd < 0) continue;
    if (c.state == State::Open) {
      if (c.paused) resume_reading(c);
      send_close(c, 1000);
      flush(c);
    } else {
      drop(c);
    }
  }
  const uint64_t deadline = now + grace_ns;
  while (open_ > 0 && mono_ns() < deadline) poll(deadline);
  for (Conn& c : conns_) {
    if (c.fd >= 0) drop(c);
  }
}

// Assigns this worker's connections their roles, channels, targets.
void Worker::plan() {
  const uint32_t W = opt_.procs, w = ctx_.index;
  const uint32_t T = static_cast<uint32_t>(opt_.targets.size());
  const uint32_t K = std::max<uint32_t>(opt_.source_addrs, 1);
  channel_names_.resize(opt_.channels);
  for (uint32_t ch = 0; ch < opt_.channels; ++ch) {
    channel_names_[ch] = opt_.channel_prefix + std::to_string(ch);
  }
  switch (opt_.scenario) {
    case Scenario::Connect: {
      for (uint64_t i = w; i < opt_.connections; i += W) {
        Conn& c = conns_.emplace_back();
        c.role = Role::Idle;
        c.id = static_cast<uint32_t>(i);
        c.channel = static_cast<uint32_t>(i % opt_.channels);
        c.target = static_cast<uint32_t>(i % T);
        c.source = static_cast<uint32_t>(i % K);
      }
      connect_share_ = conns_.size();
      break;
    }
    case Scenario::Fanout: {
      const uint32_t C = opt_.channels, P = opt_.publishers;
      // --spread: the k-th member of channel c (i = c + k*C) goes to target
      // (c + k) mod T, so every channel has members on every target and the
      // targets get equal shares (i mod T alone would keep a channel on the
      // targets congruent to it when C and T share a factor).
      const auto spread_target = [&](uint32_t i) { return (i % C + i / C) % T; };
      for (uint32_t i = w; i < opt_.subscribers; i += W) {
        Conn& c = conns_.emplace_back();
        c.role = Role::Subscriber;
        c.id = i;
        c.channel = i % C;
        c.target = opt_.spread ? spread_target(i) : c.channel % T;
        c.source = i % K;
        c.laggard = i < opt_.laggards;
        const uint32_t pubs_here = c.channel < P ? (P - c.channel + C - 1) / C : 0;
        c.tracks.resize(pubs_here);
      }
      for (uint32_t j = w; j < P; j += W) {
        Conn& c = conns_.emplace_back();
        c.role = Role::Publisher;
        c.api = opt_.api;
        c.id = j;
        c.channel = j % C;
        c.target = opt_.spread ? spread_target(j) : c.channel % T;
        c.source = (opt_.subscribers + j) % K;
      }
      for (uint32_t k = 0; k < conns_.size(); ++k) {
        if (conns_[k].role == Role::Publisher) pubs_.push_back(k);
      }
      connect_share_ = conns_.size();
      local_delivered_.assign(P, 0);
      break;
    }
    case Scenario::Recover: {
      // Subscribers first (phase 3 reconnects conns_[0 .. subscribers_here_)),
      // then worker 0's publisher, which publishes to every channel.
      for (uint32_t i = w; i < opt_.subscribers; i += W) {
        Conn& c = conns_.emplace_back();
        c.role = Role::Subscriber;
        c.id = i;
        c.channel = i % opt_.channels;
        c.target = opt_.spread ? (i % opt_.channels + i / opt_.channels) % T : c.channel % T;
        c.source = i % K;
      }
      subscribers_here_ = conns_.size();
      if (w == 0) {
        Conn& c = conns_.emplace_back();
        c.role = Role::Publisher;
        c.target = 0;
        c.source = opt_.subscribers % K;
        pubs_.push_back(static_cast<uint32_t>(conns_.size() - 1));
      }
      connect_share_ = conns_.size();
      break;
    }
    case Scenario::Churn: {
      for (uint64_t s = w; s < opt_.connections; s += W) {
        Conn& c = conns_.emplace_back();
        c.role = Role::Churn;
        c.id = static_cast<uint32_t>(s);
        c.target = static_cast<uint32_t>(s % T);
        c.source = static_cast<uint32_t>(s % K);
      }
      break;
    }
  }
  padding_.resize(opt_.message_size - kContentHeader);
  uint64_t x = 88172645463325252ull;
  for (char& ch : padding_) {
    x ^= x << 13;
    x ^= x >> 7;
    x ^= x << 17;
    ch = static_cast<char>('a' + x % 26);
  }
}

// Opens every connection of this worker (and subscribes the subscribers),
// bounded by N/2000 + 30 s.
void Worker::connect_all() {
  const uint64_t limit = go_ns_ + static_cast<uint64_t>((double(conns_.size()) / 2000 + 30) * 1e9);
  while (!all_settled() && mono_ns() < limit && !cmd_eof_) {
    connect_tick(mono_ns());
    poll(limit);
  }
}

// Waits for the parent's next Go.
void Worker::wait_go() {
  go_ns_ = 0;
  while (go_ns_ == 0 && !cmd_eof_) poll(mono_ns() + kSec);
}

bool Worker::all_settled() const {
  return connects_done_ >= connect_share_ &&
         std::all_of(conns_.begin(), conns_.end(), [](const Conn& c) {
           return c.state != State::Open || c.step != Step::Subscribing;
         });
}

int Worker::run() {
  rbuf_.resize(2 * kReadChunk);
  inflate_cache_.resize(4096);
  rng_ ^= (uint64_t{ctx_.index} << 32) ^ mono_ns();
  ep_ = epoll_create1(EPOLL_CLOEXEC);
  if (opt_.tls) {
    // A benchmark client: the server's certificate is not verified (its
    // cost on the server side is what is measured).
    tls_ctx_ = SSL_CTX_new(TLS_client_method());
    SSL_CTX_set_verify(tls_ctx_, SSL_VERIFY_NONE, nullptr);
    SSL_CTX_set_mode(tls_ctx_, SSL_MODE_ENABLE_PARTIAL_WRITE | SSL_MODE_ACCEPT_MOVING_WRITE_BUFFER |
                                   SSL_MODE_RELEASE_BUFFERS);
    SSL_CTX_set_session_cache_mode(tls_ctx_, SSL_SESS_CACHE_OFF);
  }
  {
    fcntl(ctx_.cmd_fd, F_SETFL, fcntl(ctx_.cmd_fd, F_GETFL) | O_NONBLOCK);
    epoll_event ev{};
    ev.events = EPOLLIN;
    ev.data.u64 = kCmdTag;
    epoll_ctl(ep_, EPOLL_CTL_ADD, ctx_.cmd_fd, &ev);
  }
  plan();
  conns_.shrink_to_fit();  // indices are stable from here on
  next_progress_ = mono_ns() + kSec;
  next_sweep_ = mono_ns();
  const uint64_t hard_stop_extra = 60 * kSec;

  // Wait for Go.
  while (go_ns_ == 0) poll(mono_ns() + kSec);

  switch (opt_.scenario) {
    case Scenario::Connect: {
      pacing_ = opt_.rate > 0;
      const double expected_s =
          opt_.rate > 0 ? double(opt_.connections) / opt_.rate : double(opt_.connections) / 2000;
      const uint64_t limit = go_ns_ + static_cast<uint64_t>((expected_s + 30) * 1e9) +
                             static_cast<uint64_t>(opt_.handshake_timeout_s * 2e9);
      while (!all_settled() && mono_ns() < limit && !cmd_eof_) poll(limit);
      pacing_ = false;
      report_ready(1);
      while (!finish_) poll(mono_ns() + kSec);
      // Liveness: every connection must answer an application Ping.
      const uint64_t now = mono_ns();
      for (Conn& c : conns_) {
        if (c.state == State::Open && !c.close_sent) {
          send_text(c, "{\"type\":\"Ping\"}");
          c.step = Step::PingWait;
          c.t_step = now;
          flush(c);
        }
      }
      const uint64_t until = now + static_cast<uint64_t>(opt_.handshake_timeout_s * 1e9);
      auto waiting = [&] {
        return std::any_of(conns_.begin(), conns_.end(), [](const Conn& c) {
          return c.state == State::Open && c.step == Step::PingWait;
        });
      };
      while (mono_ns() < until && waiting()) poll(until);
      break;
    }
    case Scenario::Fanout: {
      // Connect and subscribe everyone, then report ready and wait for Go #2.
      connect_all();
      report_ready(1);
      wait_go();
      window_start_ = go_ns_ + static_cast<uint64_t>(opt_.warmup_s * 1e9);
      window_end_ = window_start_ + static_cast<uint64_t>(opt_.duration_s * 1e9);
      r_.window_ns = window_end_ - window_start_;
      while (mono_ns() < go_ns_) poll(go_ns_);
      publishing_ = !pubs_.empty();
      bool paused = false;
      while (mono_ns() < window_end_ && !cmd_eof_) {
        if (!paused && mono_ns() >= window_start_) {
          paused = true;
          for (Conn& c : conns_) {
            if (c.laggard) pause_reading(c);
          }
        }
        poll(window_end_);
      }
      publishing_ = false;
      // Tell the parent what was published per channel; it answers with the
      // totals every subscriber must receive.
      {
        std::vector<uint64_t> sent(opt_.channels, 0);
        for (uint32_t idx : pubs_) sent[conns_[idx].channel] += conns_[idx].seq;
        Writer w(Kind::Sent);
        for (uint64_t v : sent) w.u64(v);
        w.send(ctx_.report_fd);
      }
      const uint64_t hard = mono_ns() + hard_stop_extra;
      while (!expect_received_ && mono_ns() < hard) poll(hard);
      // Drain: until every checked subscriber has everything, or no progress
      // for --drain-timeout.
      auto missing = [&] {
        uint64_t m = 0;
        for (const Conn& c : conns_) {
          if (c.role != Role::Subscriber || c.laggard || c.state != State::Open) continue;
          uint64_t u = 0;
          for (const SequenceTrack& t : c.tracks) u += t.unique();
          const uint64_t e = c.channel < expect_.size() ? expect_[c.channel] : 0;
          m += e > u ? e - u : 0;
        }
        return m;
      };
      uint64_t last_missing = missing();
      uint64_t last_change = mono_ns();
      const uint64_t drain = static_cast<uint64_t>(opt_.drain_timeout_s * 1e9);
      while (last_missing > 0 && mono_ns() - last_change < drain && mono_ns() < hard) {
        poll(mono_ns() + 50'000'000);
        const uint64_t m = missing();
        if (m != last_missing) {
          last_missing = m;
          last_change = mono_ns();
        }
      }
      for (const Conn& c : conns_) {
        if (c.role != Role::Subscriber || c.laggard || c.state != State::Open) continue;
        const uint64_t e = c.channel < expect_.size() ? expect_[c.channel] : 0;
        uint64_t u = 0;
        for (const SequenceTrack& t : c.tracks) {
          u += t.unique();
          r_.gaps_forgotten += t.forgotten_total();
        }
        r_.expected += e;
        r_.unique += u;
        r_.lost += e > u ? e - u : 0;
      }
      // Let the laggards read what reached them, and see whether they were cut off.
      bool any_laggard = false;
      for (Conn& c : conns_) {
        if (c.laggard && c.fd >= 0) {
          resume_reading(c);
          any_laggard = true;
        }
      }
      if (any_laggard) {
        const uint64_t until = mono_ns() + 2 * kSec;
        while (mono_ns() < until) poll(until);
      }
      break;
    }
    case Scenario::Recover: {
      connect_all();
      report_ready(1);
      wait_go();
      // The subscribers leave (a Close each, answered by the server).
      for (uint64_t i = 0; i < subscribers_here_; ++i) {
        Conn& c = conns_[i];
        if (c.state == State::Open) {
          send_close(c, 1000);
          flush(c);
        }
      }
      auto leaving = [&] {
        for (uint64_t i = 0; i < subscribers_here_; ++i) {
          if (conns_[i].fd >= 0) return true;
        }
        return false;
      };
      const uint64_t left_by = mono_ns() + static_cast<uint64_t>(opt_.handshake_timeout_s * 1e9);
      while (leaving() && mono_ns() < left_by) poll(left_by);
      for (uint64_t i = 0; i < subscribers_here_; ++i) {
        if (conns_[i].fd >= 0) drop(conns_[i]);
      }
      // Meanwhile the channels go on.
      publish_missed();
      const uint64_t acked_by = mono_ns() + 60 * kSec;
      while (!pubs_.empty() && published_acks_ < opt_.channels && mono_ns() < acked_by &&
             conns_[pubs_[0]].fd >= 0) {
        poll(acked_by);
      }
      if (!pubs_.empty() && published_acks_ < opt_.channels) {
        r_.errors["recover: Published replies missing"]++;
        ++r_.server_errors;
      }
      report_ready(2);
      wait_go();
      // The storm: every subscriber back at once, with `since`.
      window_start_ = go_ns_;
      for (uint64_t i = 0; i < subscribers_here_; ++i) {
        Conn& c = conns_[i];
        if (!c.have_offset) continue;  // never subscribed: counted already
        c.recovering = true;
        c.recover_from = c.offset;
        c.recover_to = ~uint64_t{0};
        ++recover_left_;
      }
      connects_started_ = connects_done_ = 0;
      connect_share_ = subscribers_here_;
      const uint64_t until =
          go_ns_ + static_cast<uint64_t>((double(subscribers_here_) / 500 + 30) * 1e9);
      while (recover_left_ > 0 && mono_ns() < until && !cmd_eof_) {
        connect_tick(mono_ns());
        poll(until);
      }
      for (uint64_t i = 0; i < subscribers_here_; ++i) {
        Conn& c = conns_[i];
        if (c.recovering) {
          c.recovering = false;
          ++r_.not_recovered;
          r_.errors["recover: not done in time"]++;
        }
      }
      recover_left_ = 0;
      r_.window_ns = mono_ns() - window_start_;
      break;
    }
    case Scenario::Churn: {
      window_start_ = go_ns_;
      window_end_ = go_ns_ + static_cast<uint64_t>(opt_.duration_s * 1e9);
      r_.window_ns = window_end_ - window_start_;
      pacing_ = opt_.rate > 0;
      while (mono_ns() < window_end_ && !cmd_eof_) poll(window_end_);
      // Let the cycles in flight finish.
      const uint64_t until = mono_ns() + static_cast<uint64_t>(opt_.handshake_timeout_s * 1e9);
      auto busy = [&] {
        return std::any_of(conns_.begin(), conns_.end(), [](const Conn& c) { return c.fd >= 0; });
      };
      while (mono_ns() < until && busy()) poll(until);
      for (Conn& c : conns_) {
        if (c.fd >= 0 && c.state != State::Open) fail(c, "churn: unfinished at the end", false);
      }
      break;
    }
  }
  report_final();
  close_all(3 * kSec);
  return 0;
}

}  // namespace

int run_worker(const WorkerContext& ctx) {
  Worker w(ctx);
  return w.run();
}

}  // namespace wsbench
