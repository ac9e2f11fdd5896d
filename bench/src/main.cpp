// wstrace-bench: a WebSocket load generator for the wstrace protocol.
//
// The parent process parses the options, forks --procs workers (each an epoll
// loop over its share of the connections, see worker.cpp), steps them through
// the phases of the scenario over pipes, samples the servers' /proc while
// they run, prints a progress line every second and the merged result at the
// end. Exit code: 0 = every check passed, 1 = a check failed (lost,
// duplicated, reordered deliveries, failed or dropped connections, ...),
// 2 = bad options, 3 = the workers did not finish in time.
#include <arpa/inet.h>
#include <fcntl.h>
#include <netdb.h>
#include <poll.h>
#include <signal.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <unistd.h>

#include <CLI/CLI.hpp>
#include <cinttypes>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <sstream>
#include <string>
#include <vector>

#include "histogram.h"
#include "options.h"
#include "result.h"
#include "syscalls.h"
#include "util/clock.h"
#include "util/units.h"
#include "wire.h"
#include "worker.h"

namespace wsbench {
namespace {

using wstrace::mono_ns;
constexpr uint64_t kSec = 1'000'000'000ull;

// total_commands_processed from a Redis server's INFO stats (a blocking
// exchange bounded by 2 s); false when it cannot be had.
bool redis_commands(const sockaddr_in& addr, uint64_t& out) {
  const int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0) return false;
  timeval tv{2, 0};
  setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
  setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv);
  bool ok = false;
  static constexpr char kInfo[] = "*2\r\n$4\r\nINFO\r\n$5\r\nstats\r\n";
  if (::connect(fd, reinterpret_cast<const sockaddr*>(&addr), sizeof addr) == 0 &&
      ::write(fd, kInfo, sizeof kInfo - 1) == static_cast<ssize_t>(sizeof kInfo - 1)) {
    std::string reply;
    char buf[8192];
    static constexpr std::string_view kKey = "total_commands_processed:";
    for (int i = 0; i < 64; ++i) {
      const ssize_t n = ::read(fd, buf, sizeof buf);
      if (n <= 0) break;
      reply.append(buf, static_cast<size_t>(n));
      const size_t at = reply.find(kKey);
      if (at != std::string::npos && reply.find("\r\n", at) != std::string::npos) {
        out = std::strtoull(reply.c_str() + at + kKey.size(), nullptr, 10);
        ok = true;
        break;
      }
    }
  }
  ::close(fd);
  return ok;
}

struct ProcSample {
  bool ok = false;
  uint64_t rss = 0;     // bytes
  uint64_t cpu_ns = 0;  // utime + stime, all threads
  uint64_t syscw = 0;   // write-type syscalls so far (/proc/PID/io)
};

ProcSample sample_proc(int pid) {
  ProcSample s;
  std::ifstream status("/proc/" + std::to_string(pid) + "/status");
  std::string line;
  while (std::getline(status, line)) {
    if (line.rfind("VmRSS:", 0) == 0) {
      s.rss = std::strtoull(line.c_str() + 6, nullptr, 10) * 1024;
      s.ok = true;
    }
  }
  std::ifstream io("/proc/" + std::to_string(pid) + "/io");
  while (std::getline(io, line)) {
    if (line.rfind("syscw:", 0) == 0) s.syscw = std::strtoull(line.c_str() + 6, nullptr, 10);
  }
  std::ifstream stat("/proc/" + std::to_string(pid) + "/stat");
  std::string all((std::istreambuf_iterator<char>(stat)), std::istreambuf_iterator<char>());
  const size_t paren = all.rfind(')');
  if (paren == std::string::npos) return ProcSample{};
  std::istringstream in(all.substr(paren + 2));
  std::string field;
  uint64_t utime = 0, stime = 0;
  // Fields from 3 (state) on; utime and stime are 14 and 15.
  for (int i = 3; i <= 15 && in >> field; ++i) {
    if (i == 14) utime = std::strtoull(field.c_str(), nullptr, 10);
    if (i == 15) stime = std::strtoull(field.c_str(), nullptr, 10);
  }
  const long tick = sysconf(_SC_CLK_TCK);
  s.cpu_ns = (utime + stime) * (kSec / static_cast<uint64_t>(tick));
  return s;
}

// Busy and total jiffies of all CPUs, from /proc/stat: other work on the
// machine (builds, tests) shows up as busy time that is neither the server's
// nor the bench's.
struct MachineSample {
  uint64_t busy = 0;
  uint64_t total = 0;
};

MachineSample sample_machine() {
  std::ifstream in("/proc/stat");
  std::string cpu;
  MachineSample m;
  in >> cpu;
  uint64_t v[10] = {};
  for (int i = 0; i < 10 && in >> v[i]; ++i) {
  }
  // user nice system idle iowait irq softirq steal (guest counted in user)
  for (int i = 0; i < 8; ++i) m.total += v[i];
  m.busy = m.total - v[3] - v[4];
  return m;
}

struct ServerStats {
  int pid = 0;
  ProcSample idle, loaded, window_start, window_end, end;
};

struct Child {
  pid_t pid = -1;
  int cmd = -1;  // write end
  int rep = -1;  // read end
  MessageBuffer buf;
  bool eof = false;
  bool ready = false;
  bool sent = false;
  bool final = false;
  std::vector<uint64_t> sent_per_channel;
  Result result;
  uint64_t open = 0, deliveries = 0, published = 0, connected = 0, failed = 0, cycles = 0,
           bad = 0;
};

class Parent {
 public:
  explicit Parent(const Options& opt) : opt_(opt) {}
  int run();

 private:
  bool spawn();
  // Reads the pipes until `deadline` or until `done()` holds.
  template <typename Pred>
  bool pump(uint64_t deadline, Pred done);
  void on_message(Child& ch, Kind kind, const std::string& body);
  void progress(uint64_t now);
  void broadcast(Kind kind, const std::vector<uint64_t>& values);
  void sample(ProcSample ServerStats::*field);
  double machine_busy_pct() const {
    const uint64_t t = machine_end_.total - machine_start_.total;
    return t ? 100.0 * double(machine_end_.busy - machine_start_.busy) / double(t) : 0.0;
  }
  void kill_children();
  int finish(int code);
  void print_table(const Result& r) const;
  void print_json(const Result& r) const;
  bool all(bool Child::*flag) const {
    for (const Child& c : children_) {
      if (!(c.*flag) && !c.eof) return false;
    }
    return true;
  }

  const Options& opt_;
  std::vector<Child> children_;
  std::vector<ServerStats> servers_;
  std::vector<ServerStats> aux_;  // --aux-pid: sampled like the servers, reported apart
  SyscallCounter syscalls_;       // the servers' write-type syscalls during the window
  bool perf_writes_ = false;      // syscalls_ counted the window (else /proc/PID/io syscw)
  uint64_t perf_writes_n_ = 0;
  uint64_t start_ns_ = 0;
  uint64_t last_progress_ = 0;
  uint64_t last_deliveries_ = 0;
  uint64_t last_cycles_ = 0;
  uint64_t last_connected_ = 0;
  Histogram live_;
  uint64_t window_ns_ = 0;
  uint64_t connect_elapsed_ns_ = 0;
  bool timed_out_ = false;
  MachineSample machine_start_, machine_end_;
  uint64_t bench_start_ns_ = 0, bench_end_ns_ = 0;  // workers' CPU at the window's ends
  // --redis-info: total_commands_processed at the window's ends (the INFO
  // exchanges themselves count one each).
  bool have_redis_ = false;
  uint64_t redis_start_ = 0, redis_end_ = 0;
  uint64_t redis_window() const {
    return have_redis_ && redis_end_ > redis_start_ ? redis_end_ - redis_start_ - 1 : 0;
  }
  // CPU of the --aux-pid processes during the window.
  uint64_t aux_cpu_ns() const {
    uint64_t cpu = 0;
    for (const ServerStats& s : aux_) {
      if (s.window_end.ok && s.window_start.ok) cpu += s.window_end.cpu_ns - s.window_start.cpu_ns;
    }
    return cpu;
  }
  // CPU time of everything else on the machine during the window, in cores.
  double other_cores(uint64_t server_cpu_ns) const {
    if (!window_ns_ || machine_end_.total == 0) return 0.0;
    const double tick_ns = 1e9 / double(sysconf(_SC_CLK_TCK));
    const double busy_ns = double(machine_end_.busy - machine_start_.busy) * tick_ns;
    const double other = busy_ns - double(server_cpu_ns) - double(bench_end_ns_ - bench_start_ns_) -
                         double(aux_cpu_ns());
    return other > 0 ? other / double(window_ns_) : 0.0;
  }
  // Write-type syscalls of the servers during the window: perf tracepoint
  // counters when they could be opened, else /proc/PID/io syscw (which misses
  // send() and sendmsg()).
  uint64_t server_writes() const {
    if (perf_writes_) return perf_writes_n_;
    uint64_t writes = 0;
    for (const ServerStats& s : servers_) {
      if (s.window_end.ok) writes += s.window_end.syscw - s.window_start.syscw;
    }
    return writes;
  }
};

bool Parent::spawn() {
  SharedCounters shared =
      SharedCounters::create(opt_.procs, std::max<uint32_t>(opt_.publishers, 1), opt_.channels);
  if (shared.delivered == nullptr) {
    std::fprintf(stderr, "wstrace-bench: mmap failed: %s\n", std::strerror(errno));
    return false;
  }
  children_.resize(opt_.procs);
  for (uint32_t w = 0; w < opt_.procs; ++w) {
    int cmd[2], rep[2];
    if (pipe2(cmd, O_CLOEXEC) != 0 || pipe2(rep, O_CLOEXEC) != 0) {
      std::fprintf(stderr, "wstrace-bench: pipe: %s\n", std::strerror(errno));
      return false;
    }
    pid_t pid = fork();
    if (pid < 0) {
      std::fprintf(stderr, "wstrace-bench: fork: %s\n", std::strerror(errno));
      return false;
    }
    if (pid == 0) {
      ::close(cmd[1]);
      ::close(rep[0]);
      for (uint32_t k = 0; k < w; ++k) {
        ::close(children_[k].cmd);
        ::close(children_[k].rep);
      }
      WorkerContext ctx;
      ctx.opt = &opt_;
      ctx.index = w;
      ctx.cmd_fd = cmd[0];
      ctx.report_fd = rep[1];
      ctx.shared = shared;
      std::fflush(nullptr);
      _exit(run_worker(ctx));
    }
    ::close(cmd[0]);
    ::close(rep[1]);
    children_[w].pid = pid;
    children_[w].cmd = cmd[1];
    children_[w].rep = rep[0];
  }
  return true;
}

void Parent::on_message(Child& ch, Kind kind, const std::string& body) {
  Reader r(body.data(), body.size());
  switch (kind) {
    case Kind::Ready:
      ch.ready = true;
      break;
    case Kind::Progress: {
      ch.open = r.u64();
      ch.deliveries = r.u64();
      ch.published = r.u64();
      ch.connected = r.u64();
      ch.failed = r.u64();
      ch.cycles = r.u64();
      ch.bad = r.u64();
      Histogram h;
      if (h.read(r)) live_.merge(h);
      break;
    }
    case Kind::Sent:
      ch.sent_per_channel.resize(opt_.channels);
      for (auto& v : ch.sent_per_channel) v = r.u64();
      ch.sent = true;
      break;
    case Kind::Final:
      if (!ch.result.read(r)) std::fprintf(stderr, "wstrace-bench: bad result from a worker\n");
      ch.final = true;
      break;
    default:
      break;
  }
}

template <typename Pred>
bool Parent::pump(uint64_t deadline, Pred done) {
  std::vector<pollfd> fds(children_.size());
  for (;;) {
    if (done()) return true;
    const uint64_t now = mono_ns();
    if (now >= deadline) return false;
    if (now >= last_progress_ + kSec) progress(now);
    uint64_t wake = std::min(deadline, last_progress_ + kSec);
    int timeout_ms = wake > now ? static_cast<int>((wake - now + 999'999) / 1'000'000) : 0;
    for (size_t i = 0; i < children_.size(); ++i) {
      fds[i].fd = children_[i].eof ? -1 : children_[i].rep;
      fds[i].events = POLLIN;
      fds[i].revents = 0;
    }
    int n = ::poll(fds.data(), fds.size(), timeout_ms);
    if (n <= 0) continue;
    for (size_t i = 0; i < children_.size(); ++i) {
      if (!(fds[i].revents & (POLLIN | POLLHUP | POLLERR))) continue;
      Child& ch = children_[i];
      char buf[65536];
      ssize_t got = ::read(ch.rep, buf, sizeof buf);
      if (got <= 0) {
        if (got == 0 || errno != EINTR) ch.eof = true;
        continue;
      }
      ch.buf.append(buf, static_cast<size_t>(got));
      Kind kind;
      std::string body;
      while (ch.buf.next(kind, body)) on_message(ch, kind, body);
    }
  }
}

std::string si(double v) {
  char buf[32];
  if (v >= 1e9) {
    std::snprintf(buf, sizeof buf, "%.2fG", v / 1e9);
  } else if (v >= 1e6) {
    std::snprintf(buf, sizeof buf, "%.2fM", v / 1e6);
  } else if (v >= 1e4) {
    std::snprintf(buf, sizeof buf, "%.1fK", v / 1e3);
  } else {
    std::snprintf(buf, sizeof buf, "%.0f", v);
  }
  return buf;
}

std::string dur(uint64_t ns) {
  char buf[32];
  if (ns >= 1'000'000'000) {
    std::snprintf(buf, sizeof buf, "%.2fs", double(ns) / 1e9);
  } else if (ns >= 1'000'000) {
    std::snprintf(buf, sizeof buf, "%.2fms", double(ns) / 1e6);
  } else {
    std::snprintf(buf, sizeof buf, "%.1fus", double(ns) / 1e3);
  }
  return buf;
}

void Parent::progress(uint64_t now) {
  const double dt = last_progress_ ? double(now - last_progress_) / 1e9 : 1.0;
  last_progress_ = now;
  uint64_t open = 0, deliveries = 0, cycles = 0, connected = 0, failed = 0, bad = 0;
  for (const Child& c : children_) {
    open += c.open;
    deliveries += c.deliveries;
    cycles += c.cycles;
    connected += c.connected;
    failed += c.failed;
    bad += c.bad;
  }
  if (!opt_.quiet) {
    const double elapsed = double(now - start_ns_) / 1e9;
    if (opt_.scenario == Scenario::Churn) {
      std::fprintf(stderr, "[%6.1fs] open %" PRIu64 "  cycles/s %s  connects/s %s  failed %" PRIu64
                   "  p99 %s\n",
                   elapsed, open, si(double(cycles - last_cycles_) / dt).c_str(),
                   si(double(connected - last_connected_) / dt).c_str(), failed,
                   dur(live_.percentile(0.99)).c_str());
    } else {
      std::fprintf(stderr,
                   "[%6.1fs] conns %" PRIu64 " (failed %" PRIu64 ")  deliveries/s %s  p99 %s"
                   "  errors %" PRIu64 "\n",
                   elapsed, open, failed, si(double(deliveries - last_deliveries_) / dt).c_str(),
                   live_.count() ? dur(live_.percentile(0.99)).c_str() : "-", bad);
    }
  }
  last_deliveries_ = deliveries;
  last_cycles_ = cycles;
  last_connected_ = connected;
}

void Parent::broadcast(Kind kind, const std::vector<uint64_t>& values) {
  for (Child& c : children_) {
    if (c.eof) continue;
    Writer w(kind);
    for (uint64_t v : values) w.u64(v);
    w.send(c.cmd);
  }
}

void Parent::sample(ProcSample ServerStats::*field) {
  if (field == &ServerStats::window_end && perf_writes_) {
    perf_writes_n_ = syscalls_.read();
    syscalls_.close();
  }
  for (ServerStats& s : servers_) s.*field = sample_proc(s.pid);
  for (ServerStats& s : aux_) s.*field = sample_proc(s.pid);
  if (field == &ServerStats::window_start && !opt_.server_pids.empty() && !opt_.no_perf) {
    perf_writes_ = syscalls_.open(opt_.server_pids);
  }
  if (opt_.has_redis_info && field == &ServerStats::window_start) {
    have_redis_ = redis_commands(opt_.redis_info.addr, redis_start_);
  }
  if (opt_.has_redis_info && field == &ServerStats::window_end && have_redis_) {
    have_redis_ = redis_commands(opt_.redis_info.addr, redis_end_);
  }
  if (field == &ServerStats::window_start || field == &ServerStats::window_end) {
    uint64_t bench = 0;
    for (const Child& c : children_) {
      if (c.pid > 0) bench += sample_proc(c.pid).cpu_ns;
    }
    if (field == &ServerStats::window_start) {
      machine_start_ = sample_machine();
      bench_start_ns_ = bench;
    } else {
      machine_end_ = sample_machine();
      bench_end_ns_ = bench;
    }
  }
}

void Parent::kill_children() {
  for (Child& c : children_) {
    if (c.pid > 0) ::kill(c.pid, SIGKILL);
  }
}

int Parent::run() {
  for (int pid : opt_.server_pids) servers_.push_back(ServerStats{pid, {}, {}, {}, {}, {}});
  for (int pid : opt_.aux_pids) aux_.push_back(ServerStats{pid, {}, {}, {}, {}, {}});
  signal(SIGPIPE, SIG_IGN);
  start_ns_ = mono_ns();
  last_progress_ = start_ns_;
  sample(&ServerStats::idle);
  if (!spawn()) {
    kill_children();
    return finish(3);
  }
  const uint64_t slack = 120 * kSec;
  const auto secs = [](double s) { return static_cast<uint64_t>(s * 1e9); };
  const uint64_t conns = opt_.scenario == Scenario::Fanout
                             ? uint64_t{opt_.subscribers} + opt_.publishers
                         : opt_.scenario == Scenario::Recover ? uint64_t{opt_.subscribers} + 1
                                                              : opt_.connections;
  const double connect_s = opt_.scenario == Scenario::Connect && opt_.rate > 0
                               ? double(conns) / opt_.rate
                               : double(conns) / 2000;
  bool ok = true;
  switch (opt_.scenario) {
    case Scenario::Connect: {
      const uint64_t go = mono_ns();
      broadcast(Kind::Go, {go});
      ok = pump(go + secs(connect_s) + slack, [&] { return all(&Child::ready); });
      connect_elapsed_ns_ = mono_ns() - go;
      // Let the server settle (handshake buffers freed) before reading its RSS.
      pump(mono_ns() + kSec, [] { return false; });
      sample(&ServerStats::loaded);
      const uint64_t hold_until = mono_ns() + secs(opt_.duration_s);
      pump(hold_until, [] { return false; });
      sample(&ServerStats::end);
      broadcast(Kind::Finish, {});
      ok = ok && pump(mono_ns() + secs(opt_.handshake_timeout_s) + slack,
                      [&] { return all(&Child::final); });
      break;
    }
    case Scenario::Fanout: {
      const uint64_t go = mono_ns();
      broadcast(Kind::Go, {go});
      ok = pump(go + secs(connect_s) + slack, [&] { return all(&Child::ready); });
      connect_elapsed_ns_ = mono_ns() - go;
      sample(&ServerStats::loaded);
      const uint64_t t0 = mono_ns() + 20'000'000;
      broadcast(Kind::Go, {t0});
      const uint64_t ws = t0 + secs(opt_.warmup_s);
      const uint64_t we = ws + secs(opt_.duration_s);
      pump(ws, [] { return false; });
      sample(&ServerStats::window_start);
      pump(we, [] { return false; });
      sample(&ServerStats::window_end);
      window_ns_ = we - ws;
      ok = ok && pump(we + slack, [&] { return all(&Child::sent); });
      std::vector<uint64_t> totals(opt_.channels, 0);
      for (const Child& c : children_) {
        for (size_t i = 0; i < c.sent_per_channel.size(); ++i) totals[i] += c.sent_per_channel[i];
      }
      broadcast(Kind::Expect, totals);
      ok = ok && pump(mono_ns() + secs(opt_.drain_timeout_s) + slack,
                      [&] { return all(&Child::final); });
      sample(&ServerStats::end);
      break;
    }
    case Scenario::Recover: {
      // 1: everyone connects and subscribes; 2: the subscribers leave and
      // --missed messages per channel are published; 3 (the window): they
      // all come back at once with `since`, until each has recovered.
      const uint64_t go = mono_ns();
      broadcast(Kind::Go, {go});
      ok = pump(go + secs(connect_s) + slack, [&] { return all(&Child::ready); });
      connect_elapsed_ns_ = mono_ns() - go;
      sample(&ServerStats::loaded);
      for (Child& c : children_) c.ready = false;
      broadcast(Kind::Go, {mono_ns()});
      ok = ok && pump(mono_ns() + slack, [&] { return all(&Child::ready); });
      sample(&ServerStats::window_start);
      const uint64_t t0 = mono_ns();
      broadcast(Kind::Go, {t0});
      ok = ok && pump(t0 + secs(connect_s + opt_.handshake_timeout_s) + slack,
                      [&] { return all(&Child::final); });
      sample(&ServerStats::window_end);
      window_ns_ = mono_ns() - t0;
      sample(&ServerStats::end);
      break;
    }
    case Scenario::Churn: {
      const uint64_t t0 = mono_ns() + 20'000'000;
      broadcast(Kind::Go, {t0});
      pump(t0, [] { return false; });
      sample(&ServerStats::window_start);
      const uint64_t we = t0 + secs(opt_.duration_s);
      pump(we, [] { return false; });
      sample(&ServerStats::window_end);
      window_ns_ = we - t0;
      ok = pump(we + secs(opt_.handshake_timeout_s) + slack, [&] { return all(&Child::final); });
      sample(&ServerStats::end);
      break;
    }
  }
  if (!ok) {
    timed_out_ = true;
    std::fprintf(stderr, "wstrace-bench: workers did not finish in time; killing them\n");
    kill_children();
  }
  return finish(ok ? 0 : 3);
}

int Parent::finish(int code) {
  Result total;
  for (Child& c : children_) {
    if (c.final) total.merge(c.result);
  }
  for (Child& c : children_) {
    if (c.cmd >= 0) ::close(c.cmd);
  }
  // Workers close their connections after reporting; wait for them.
  for (Child& c : children_) {
    if (c.pid > 0) {
      int st = 0;
      waitpid(c.pid, &st, 0);
      if (!WIFEXITED(st) || WEXITSTATUS(st) != 0) code = code ? code : 3;
    }
  }
  if (opt_.json) {
    print_json(total);
  } else {
    print_table(total);
  }
  if (code != 0) return code;
  bool correct = total.correct();
  if (opt_.scenario == Scenario::Connect &&
      total.alive_at_end + total.disconnected < total.connected) {
    correct = false;
  }
  if (opt_.scenario == Scenario::Fanout && total.published == 0) correct = false;
  if (opt_.scenario == Scenario::Churn && total.cycles == 0) correct = false;
  if (opt_.scenario == Scenario::Recover && total.recovered < opt_.subscribers) correct = false;
  return correct ? 0 : 1;
}

double per_sec(uint64_t n, uint64_t ns) { return ns ? double(n) * 1e9 / double(ns) : 0.0; }

void Parent::print_table(const Result& r) const {
  std::printf("wstrace-bench %s: procs=%u targets=", opt_.scenario_name.c_str(), opt_.procs);
  for (size_t i = 0; i < opt_.targets.size(); ++i) {
    std::printf("%s%s", i ? "," : "", opt_.targets[i].text.c_str());
  }
  std::printf(" message-size=%u compression=%s tls=%s\n", opt_.message_size,
              opt_.compression ? "on" : "off", opt_.tls ? "on" : "off");
  std::printf("  %-14s %" PRIu64 " attempted, %" PRIu64 " connected, %" PRIu64
              " failed, %" PRIu64 " bad handshakes, %" PRIu64 " closed by server\n",
              "connections", r.attempted, r.connected, r.connect_failed, r.handshake_failed,
              r.disconnected);
  if (opt_.compression) {
    std::printf("  %-14s %" PRIu64 " connections negotiated permessage-deflate\n", "compression",
                r.deflate_conns);
  }
  if (opt_.tls) {
    std::printf("  %-14s %" PRIu64 " handshakes completed (%" PRIu64 " resumed)\n", "tls",
                r.tls_handshakes, r.tls_resumed);
  }
  if (r.handshake.count()) {
    std::printf("  %-14s p50 %s  p99 %s  max %s\n", "handshake", dur(r.handshake.percentile(0.5)).c_str(),
                dur(r.handshake.percentile(0.99)).c_str(), dur(r.handshake.max()).c_str());
  }
  if (opt_.scenario == Scenario::Connect) {
    std::printf("  %-14s %.0f/s (all %" PRIu64 " in %s)\n", "connect rate",
                per_sec(r.connected, connect_elapsed_ns_), r.connected,
                dur(connect_elapsed_ns_).c_str());
    std::printf("  %-14s %" PRIu64 " of %" PRIu64 " answered a Ping at the end\n", "alive",
                r.alive_at_end, r.connected);
    if (opt_.subscribe) std::printf("  %-14s %" PRIu64 "\n", "subscribed", r.subscribed);
  }
  if (opt_.scenario == Scenario::Fanout) {
    std::printf("  %-14s %" PRIu64 " subscribed; %" PRIu64 " published (%s/s in the window)\n",
                "fan-out", r.subscribed, r.published,
                si(per_sec(r.published_window, window_ns_)).c_str());
    std::printf("  %-14s %" PRIu64 " in the %s window = %s/s (%" PRIu64 " in all)\n",
                "deliveries", r.deliveries_window, dur(window_ns_).c_str(),
                si(per_sec(r.deliveries_window, window_ns_)).c_str(), r.deliveries);
    std::printf("  %-14s p50 %s  p90 %s  p99 %s  p99.9 %s  max %s\n", "latency",
                dur(r.latency.percentile(0.5)).c_str(), dur(r.latency.percentile(0.9)).c_str(),
                dur(r.latency.percentile(0.99)).c_str(), dur(r.latency.percentile(0.999)).c_str(),
                dur(r.latency.max()).c_str());
    if (opt_.api) {
      std::printf("  %-14s %" PRIu64 " publishes answered (%s/s in the window), %" PRIu64
                  " refused; answer p50 %s  p99 %s  max %s\n",
                  "server API", r.api_answers, si(per_sec(r.api_answers_window, window_ns_)).c_str(),
                  r.api_failures, dur(r.api_latency.percentile(0.5)).c_str(),
                  dur(r.api_latency.percentile(0.99)).c_str(), dur(r.api_latency.max()).c_str());
    }
    if (r.publish_lag.count()) {
      std::printf("  %-14s p99 %s  max %s (publisher behind its schedule)\n", "publish lag",
                  dur(r.publish_lag.percentile(0.99)).c_str(), dur(r.publish_lag.max()).c_str());
    }
    std::printf("  %-14s expected %" PRIu64 ", lost %" PRIu64 ", duplicated %" PRIu64
                ", reordered %" PRIu64 ", misrouted %" PRIu64 ", corrupt %" PRIu64 "\n",
                "check", r.expected, r.lost, r.duplicated, r.reordered, r.misrouted, r.corrupt);
    if (opt_.laggards) {
      std::printf("  %-14s %u stopped reading: %" PRIu64 " delivered to them, %" PRIu64
                  " closed by the server\n",
                  "laggards", opt_.laggards, r.laggard_received, r.laggard_closed);
    }
  }
  if (opt_.scenario == Scenario::Fanout || opt_.scenario == Scenario::Recover) {
    std::printf("  %-14s %" PRIu64 " offsets checked, %" PRIu64 " not the next one, %" PRIu64
                " Gap notices\n",
                "positions", r.offsets_checked, r.offset_errors, r.gap_notices);
  }
  if (opt_.scenario == Scenario::Recover) {
    std::printf("  %-14s %" PRIu64 " of %u subscribers recovered %" PRIu64
                " messages (%u per channel missed), %" PRIu64 " did not; all in %s\n",
                "recovery", r.recovered, opt_.subscribers, r.recovered_messages, opt_.missed,
                r.not_recovered, dur(window_ns_).c_str());
    std::printf("  %-14s p50 %s  p90 %s  p99 %s  max %s (reconnect to last missed message)\n",
                "recovery time", dur(r.latency.percentile(0.5)).c_str(),
                dur(r.latency.percentile(0.9)).c_str(), dur(r.latency.percentile(0.99)).c_str(),
                dur(r.latency.max()).c_str());
  }
  if (opt_.scenario == Scenario::Churn) {
    std::printf("  %-14s %" PRIu64 " in %s = %.0f/s, %" PRIu64 " failed\n", "cycles", r.cycles,
                dur(window_ns_).c_str(), per_sec(r.cycles, window_ns_), r.cycle_failures);
  }
  for (const ServerStats& s : servers_) {
    std::printf("  server %-7d RSS idle %s", s.pid, wstrace::format_size(s.idle.rss).c_str());
    if (opt_.scenario == Scenario::Connect && s.loaded.ok && r.connected) {
      std::printf(", loaded %s", wstrace::format_size(s.loaded.rss).c_str());
    }
    if (s.end.ok) std::printf(", end %s", wstrace::format_size(s.end.rss).c_str());
    if (s.window_end.ok) {
      std::printf(", CPU %s in the window",
                  dur(s.window_end.cpu_ns - s.window_start.cpu_ns).c_str());
    }
    std::printf("\n");
  }
  for (const ServerStats& s : aux_) {
    std::printf("  other  %-7d RSS idle %s", s.pid, wstrace::format_size(s.idle.rss).c_str());
    if (s.loaded.ok) std::printf(", loaded %s", wstrace::format_size(s.loaded.rss).c_str());
    if (s.end.ok) std::printf(", end %s", wstrace::format_size(s.end.rss).c_str());
    if (s.window_end.ok) {
      std::printf(", CPU %s in the window",
                  dur(s.window_end.cpu_ns - s.window_start.cpu_ns).c_str());
    }
    std::printf("\n");
  }
  uint64_t rss_delta = 0, cpu = 0;
  bool have_rss = false;
  for (const ServerStats& s : servers_) {
    if (s.loaded.ok && s.idle.ok && s.loaded.rss > s.idle.rss) {
      rss_delta += s.loaded.rss - s.idle.rss;
      have_rss = true;
    }
    if (s.window_end.ok) cpu += s.window_end.cpu_ns - s.window_start.cpu_ns;
  }
  if (have_rss && r.connected && opt_.scenario == Scenario::Connect) {
    std::printf("  %-14s %.0f bytes of server RSS per connection\n", "memory",
                double(rss_delta) / double(r.connected));
  }
  const uint64_t writes = server_writes();
  if (cpu && opt_.scenario == Scenario::Fanout && r.deliveries_window) {
    std::printf("  %-14s %.1f ns of server CPU per delivery\n", "server CPU",
                double(cpu) / double(r.deliveries_window));
  }
  if (writes && opt_.scenario == Scenario::Fanout && r.deliveries_window) {
    std::printf("  %-14s %.2f deliveries per write-type syscall of the server (%" PRIu64
                " writes, counted by %s)\n",
                "batching", double(r.deliveries_window) / double(writes), writes,
                perf_writes_ ? "perf tracepoints" : "/proc/PID/io syscw: misses send()");
  }
  if (cpu && opt_.scenario == Scenario::Recover && r.recovered) {
    std::printf("  %-14s %.1f us of server CPU per recovered subscriber (%s in all)\n",
                "server CPU", double(cpu) / 1e3 / double(r.recovered), dur(cpu).c_str());
  }
  if (cpu && opt_.scenario == Scenario::Churn && r.cycles) {
    std::printf("  %-14s %.1f us of server CPU per cycle\n", "server CPU",
                double(cpu) / 1e3 / double(r.cycles));
  }
  if (have_redis_) {
    std::printf("  %-14s %" PRIu64 " commands processed in the window\n", "redis",
                redis_window());
  }
  std::printf("  %-14s %s CPU in the workers\n", "bench", dur(r.bench_cpu_ns).c_str());
  if (machine_end_.total) {
    const auto cores = [&](uint64_t ns) { return window_ns_ ? double(ns) / double(window_ns_) : 0.0; };
    char aux[64] = "";
    if (!aux_.empty()) std::snprintf(aux, sizeof aux, "--aux-pid %.2f cores, ", cores(aux_cpu_ns()));
    std::printf("  %-14s %.0f%% of all CPUs busy during the window; server %.2f cores, bench "
                "%.2f cores, %sother processes %.2f cores\n",
                "machine", machine_busy_pct(), cores(cpu), cores(bench_end_ns_ - bench_start_ns_),
                aux, other_cores(cpu));
  }
  for (auto& [code, n] : r.close_codes) {
    std::printf("  %-14s %" PRIu64 " x %" PRIu64 "\n", "close code", n, code);
  }
  for (auto& [what, n] : r.errors) std::printf("  %-14s %" PRIu64 " x %s\n", "error", n, what.c_str());
  std::printf("  %-14s %s\n", "result",
              timed_out_ ? "TIMEOUT" : r.correct() ? "OK" : "FAILED (see above)");
}

std::string json_escape(const std::string& s) {
  std::string out;
  for (char c : s) {
    if (c == '"' || c == '\\') {
      out += '\\';
      out += c;
    } else if (static_cast<unsigned char>(c) < 0x20) {
      char buf[8];
      std::snprintf(buf, sizeof buf, "\\u%04x", c);
      out += buf;
    } else {
      out += c;
    }
  }
  return out;
}

void Parent::print_json(const Result& r) const {
  std::string j = "{";
  auto num = [&](const char* k, double v) {
    char buf[64];
    if (std::isfinite(v) && v == std::floor(v) && std::fabs(v) < 1e18) {
      std::snprintf(buf, sizeof buf, "\"%s\":%.0f,", k, v);
    } else {
      std::snprintf(buf, sizeof buf, "\"%s\":%.3f,", k, std::isfinite(v) ? v : 0.0);
    }
    j += buf;
  };
  auto str = [&](const char* k, const std::string& v) {
    j += "\"";
    j += k;
    j += "\":\"" + json_escape(v) + "\",";
  };
  str("scenario", opt_.scenario_name);
  std::string targets;
  for (size_t i = 0; i < opt_.targets.size(); ++i) targets += (i ? "," : "") + opt_.targets[i].text;
  str("targets", targets);
  num("procs", opt_.procs);
  num("message_size", opt_.message_size);
  str("compression", opt_.compression ? "on" : "off");
  str("tls", opt_.tls ? "on" : "off");
  num("subscribers", opt_.subscribers);
  num("publishers", opt_.publishers);
  num("channels", opt_.channels);
  num("rate", opt_.rate);
  num("connections_requested", double(opt_.connections));
#define F(f) num(#f, double(r.f));
  WSBENCH_RESULT_FIELDS(F)
#undef F
  num("window_s", double(window_ns_) / 1e9);
  num("connect_elapsed_s", double(connect_elapsed_ns_) / 1e9);
  num("connect_rate", per_sec(r.connected, connect_elapsed_ns_));
  num("deliveries_per_s", per_sec(r.deliveries_window, window_ns_));
  num("published_per_s", per_sec(r.published_window, window_ns_));
  num("cycles_per_s", per_sec(r.cycles, window_ns_));
  const std::pair<const char*, double> qs[] = {
      {"p50", 0.5}, {"p90", 0.9}, {"p99", 0.99}, {"p999", 0.999}};
  for (auto& [name, q] : qs) {
    num((std::string("latency_") + name + "_us").c_str(), double(r.latency.percentile(q)) / 1e3);
  }
  num("latency_max_us", double(r.latency.max()) / 1e3);
  if (have_redis_) num("redis_commands_window", double(redis_window()));
  if (opt_.api) {
    num("api_answers_per_s", per_sec(r.api_answers_window, window_ns_));
    num("api_latency_p50_us", double(r.api_latency.percentile(0.5)) / 1e3);
    num("api_latency_p99_us", double(r.api_latency.percentile(0.99)) / 1e3);
    num("api_latency_max_us", double(r.api_latency.max()) / 1e3);
  }
  if (opt_.scenario == Scenario::Recover) {
    num("missed", opt_.missed);
    num("recovery_p50_ms", double(r.latency.percentile(0.5)) / 1e6);
    num("recovery_p99_ms", double(r.latency.percentile(0.99)) / 1e6);
    num("recovery_max_ms", double(r.latency.max()) / 1e6);
  }
  num("latency_mean_us", r.latency.mean() / 1e3);
  num("latency_count", double(r.latency.count()));
  num("handshake_p50_us", double(r.handshake.percentile(0.5)) / 1e3);
  num("handshake_p99_us", double(r.handshake.percentile(0.99)) / 1e3);
  num("publish_lag_p99_us", double(r.publish_lag.percentile(0.99)) / 1e3);
  num("publish_lag_max_us", double(r.publish_lag.max()) / 1e3);
  uint64_t rss_delta = 0, rss_idle = 0, rss_loaded = 0, rss_end = 0, cpu = 0, writes = 0;
  for (const ServerStats& s : servers_) {
    rss_idle += s.idle.rss;
    rss_loaded += s.loaded.rss;
    rss_end += s.end.rss;
    if (s.loaded.ok && s.loaded.rss > s.idle.rss) rss_delta += s.loaded.rss - s.idle.rss;
    if (s.window_end.ok) cpu += s.window_end.cpu_ns - s.window_start.cpu_ns;
  }
  writes = server_writes();
  num("machine_busy_pct", machine_busy_pct());
  num("bench_cpu_window_ns", double(bench_end_ns_ - bench_start_ns_));
  num("other_cores", other_cores(cpu));
  num("server_write_syscalls", double(writes));
  str("server_write_syscalls_source", perf_writes_ ? "perf" : "syscw");
  num("aux_cpu_ns", double(aux_cpu_ns()));
  num("deliveries_per_write",
      writes ? double(r.deliveries_window) / double(writes) : 0.0);
  num("server_rss_idle", double(rss_idle));
  num("server_rss_loaded", double(rss_loaded));
  num("server_rss_end", double(rss_end));
  num("server_rss_per_conn", r.connected ? double(rss_delta) / double(r.connected) : 0.0);
  num("server_cpu_ns", double(cpu));
  num("server_cpu_ns_per_delivery",
      r.deliveries_window ? double(cpu) / double(r.deliveries_window) : 0.0);
  num("server_cpu_us_per_cycle", r.cycles ? double(cpu) / 1e3 / double(r.cycles) : 0.0);
  auto processes = [&j](const char* key, const std::vector<ServerStats>& list) {
    j += key;
    for (size_t i = 0; i < list.size(); ++i) {
      const ServerStats& s = list[i];
      char buf[256];
      std::snprintf(buf, sizeof buf,
                    "%s{\"pid\":%d,\"rss_idle\":%" PRIu64 ",\"rss_loaded\":%" PRIu64
                    ",\"rss_end\":%" PRIu64 ",\"cpu_ns_window\":%" PRIu64 "}",
                    i ? "," : "", s.pid, s.idle.rss, s.loaded.rss, s.end.rss,
                    s.window_end.ok ? s.window_end.cpu_ns - s.window_start.cpu_ns : 0);
      j += buf;
    }
  };
  processes("\"servers\":[", servers_);
  processes("],\"aux\":[", aux_);
  j += "],\"close_codes\":{";
  bool first = true;
  for (auto& [code, n] : r.close_codes) {
    j += (first ? "\"" : ",\"") + std::to_string(code) + "\":" + std::to_string(n);
    first = false;
  }
  j += "},\"errors\":{";
  first = true;
  for (auto& [what, n] : r.errors) {
    j += (first ? "\"" : ",\"") + json_escape(what) + "\":" + std::to_string(n);
    first = false;
  }
  j += "},";
  j += std::string("\"correct\":") + (r.correct() && !timed_out_ ? "true" : "false") + "}";
  std::printf("%s\n", j.c_str());
}

bool parse_target(const std::string& text, Target& t) {
  const size_t colon = text.rfind(':');
  if (colon == std::string::npos) return false;
  std::string host = text.substr(0, colon);
  if (host == "localhost") host = "127.0.0.1";
  const int port = std::atoi(text.c_str() + colon + 1);
  if (port <= 0 || port > 65535) return false;
  t.text = text;
  t.addr.sin_family = AF_INET;
  t.addr.sin_port = htons(static_cast<uint16_t>(port));
  if (inet_pton(AF_INET, host.c_str(), &t.addr.sin_addr) != 1) return false;
  // Loopback only: this tool is not for loading other people's machines.
  return (ntohl(t.addr.sin_addr.s_addr) >> 24) == 127;
}

}  // namespace
}  // namespace wsbench

int main(int argc, char** argv) {
  using namespace wsbench;
  Options opt;
  CLI::App app{
      "wstrace-bench: WebSocket pub/sub load generator (loopback only).\n"
      "Scenarios: connect (open --connections at --rate/s, hold them --duration; server RSS\n"
      "per connection), fanout (--subscribers on --channels, --publishers at --rate msg/s\n"
      "or, with --rate 0, as fast as --window allows; deliveries/s, latency, and a check of\n"
      "every delivery and of every offset), churn (--connections loops of\n"
      "connect/subscribe/publish/close), recover (--subscribers on --channels leave, --missed\n"
      "messages per channel are published, all come back at once with `since`: time until\n"
      "each has recovered every missed message, in order; the channels need history).\n"
      "--message-size is the size of the Message 'content' field (at least 32 bytes:\n"
      "publisher id, sequence number, send timestamp in hex, then padding)."};
  std::string scenario = "fanout";
  std::vector<std::string> targets{"127.0.0.1:8080"};
  std::string duration = "10s", warmup = "2s", hs_timeout = "10s", drain = "5s";
  std::string compression = "off";
  app.add_option("scenario", scenario, "connect, fanout, churn or recover")
      ->check(CLI::IsMember({"connect", "fanout", "churn", "recover"}));
  app.add_option("--target", targets, "Server host:port (repeatable; connections round-robin)");
  app.add_option("--path", opt.path, "WebSocket path")->capture_default_str();
  app.add_option("--procs", opt.procs, "Worker processes (each below the open-files limit)")
      ->check(CLI::Range(1, 64))
      ->capture_default_str();
  app.add_option("--source-addrs", opt.source_addrs,
                 "Bind client sockets to 127.0.0.2 .. 127.0.0.(1+K); 0 = do not bind")
      ->check(CLI::Range(0, 250))
      ->capture_default_str();
  app.add_option("--connections", opt.connections,
                 "connect: connections to open; churn: concurrent loops")
      ->capture_default_str();
  app.add_option("--rate", opt.rate,
                 "connect: connections/s; fanout: messages/s over all publishers (0 = "
                 "--window); churn: cycles/s (0 = unlimited)")
      ->capture_default_str();
  app.add_option("--duration", duration, "Measured time (connect: hold time)")
      ->capture_default_str();
  app.add_option("--warmup", warmup, "fanout: time before the measured window")
      ->capture_default_str();
  app.add_option("--channels", opt.channels, "Channels (subscriber i is on channel i mod C)")
      ->check(CLI::Range(1u, 1000000u))
      ->capture_default_str();
  app.add_option("--subscribers", opt.subscribers, "fanout: subscribers")->capture_default_str();
  app.add_option("--publishers", opt.publishers,
                 "fanout: publishers (publisher j sends to channel j mod C)")
      ->capture_default_str();
  app.add_option("--window", opt.window,
                 "fanout --rate 0: messages a publisher keeps ahead of the average delivery "
                 "progress of its subscribers")
      ->check(CLI::Range(1u, 1000000u))
      ->capture_default_str();
  app.add_option("--message-size", opt.message_size, "Bytes of the Message content field (>= 32)")
      ->check(CLI::Range(32u, 1u << 20))
      ->capture_default_str();
  app.add_option("--compression", compression, "Offer permessage-deflate: on or off")
      ->check(CLI::IsMember({"on", "off"}))
      ->capture_default_str();
  app.add_flag("--tls", opt.tls,
               "Connect with TLS (wss://; the server's certificate is not verified, no session "
               "resumption: every connection is a full handshake)");
  app.add_flag("--subscribe", opt.subscribe, "connect: each connection subscribes to a channel");
  app.add_flag("--spread", opt.spread,
               "fanout: spread every channel's members over all targets (for a cluster: the "
               "k-th member of channel c goes to target (c+k) mod T; by default channel c lives "
               "on target c mod T)");
  app.add_option("--laggards", opt.laggards,
                 "fanout: this many subscribers stop reading after the warm-up")
      ->capture_default_str();
  app.add_option("--missed", opt.missed,
                 "recover: messages published to each channel while its subscribers are away")
      ->check(CLI::Range(0u, 1000000u))
      ->capture_default_str();
  app.add_option("--channel-prefix", opt.channel_prefix, "Channel names are PREFIX<n>")
      ->capture_default_str();
  app.add_option("--handshake-timeout", hs_timeout, "Per-connection handshake/subscribe timeout")
      ->capture_default_str();
  app.add_option("--drain-timeout", drain,
                 "fanout: after publishing stops, wait this long without progress for "
                 "missing deliveries")
      ->capture_default_str();
  app.add_option("--max-pending", opt.max_pending, "Handshakes in flight per worker")
      ->check(CLI::Range(1u, 100000u))
      ->capture_default_str();
  app.add_option("--server-pid", opt.server_pids,
                 "Server process to sample (RSS from /proc/PID/status, CPU from /proc/PID/stat, "
                 "write-type syscalls in the window from perf tracepoints); repeatable");
  app.add_option("--aux-pid", opt.aux_pids,
                 "Other process to sample (RSS, CPU) and report apart from the servers, e.g. "
                 "redis-server; its CPU is not counted as other load; repeatable");
  std::string api_target;
  app.add_option("--api", api_target,
                 "fanout: the publishers POST /api/v1/publish to the server API at this "
                 "host:port (HTTP/1.1 keep-alive, up to --window requests pipelined each) "
                 "instead of sending Messages over a WebSocket");
  app.add_option("--api-key", opt.api_key, "fanout --api: the key (Authorization: Bearer)");
  std::string redis_info;
  app.add_option("--redis-info", redis_info,
                 "Redis host:port: report the commands it processed in the window (INFO stats "
                 "total_commands_processed)");
  app.add_flag("--no-perf", opt.no_perf,
               "Count the servers' write syscalls from /proc/PID/io syscw (misses send/sendmsg) "
               "instead of perf tracepoint counters");
  app.add_flag("--json", opt.json, "Print the result as one JSON object on stdout");
  app.add_flag("--quiet", opt.quiet, "No progress line");
  CLI11_PARSE(app, argc, argv);

  opt.scenario_name = scenario;
  opt.scenario = scenario == "connect" ? Scenario::Connect
                 : scenario == "churn" ? Scenario::Churn
                 : scenario == "recover" ? Scenario::Recover
                                         : Scenario::Fanout;
  opt.compression = compression == "on";
  for (const std::string& t : targets) {
    Target tg;
    if (!parse_target(t, tg)) {
      std::fprintf(stderr, "wstrace-bench: --target %s: expected a loopback IPv4 host:port\n",
                   t.c_str());
      return 2;
    }
    opt.targets.push_back(tg);
  }
  if (!api_target.empty()) {
    if (!parse_target(api_target, opt.api_target) || opt.scenario != Scenario::Fanout) {
      std::fprintf(stderr, "wstrace-bench: --api %s: expected a loopback IPv4 host:port, with "
                           "the fanout scenario\n", api_target.c_str());
      return 2;
    }
    opt.api = true;
  }
  if (!redis_info.empty()) {
    if (!parse_target(redis_info, opt.redis_info)) {
      std::fprintf(stderr, "wstrace-bench: --redis-info %s: expected a loopback IPv4 host:port\n",
                   redis_info.c_str());
      return 2;
    }
    opt.has_redis_info = true;
  }
  auto parse_d = [](const std::string& s, const char* name, double& out) {
    auto ns = wstrace::parse_duration_ns(s);
    if (!ns) {
      std::fprintf(stderr, "wstrace-bench: %s %s: not a duration\n", name, s.c_str());
      return false;
    }
    out = double(*ns) / 1e9;
    return true;
  };
  if (!parse_d(duration, "--duration", opt.duration_s) ||
      !parse_d(warmup, "--warmup", opt.warmup_s) ||
      !parse_d(hs_timeout, "--handshake-timeout", opt.handshake_timeout_s) ||
      !parse_d(drain, "--drain-timeout", opt.drain_timeout_s)) {
    return 2;
  }
  if (opt.scenario == Scenario::Fanout && opt.publishers == 0) {
    std::fprintf(stderr, "wstrace-bench: --publishers must be at least 1\n");
    return 2;
  }
  if (opt.laggards > opt.subscribers) {
    std::fprintf(stderr, "wstrace-bench: --laggards exceeds --subscribers\n");
    return 2;
  }
  // Every worker may hold as many sockets as the hard limit allows.
  rlimit rl{};
  if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < rl.rlim_max) {
    rl.rlim_cur = rl.rlim_max;
    setrlimit(RLIMIT_NOFILE, &rl);
  }
  const uint64_t per_proc =
      (opt.scenario == Scenario::Fanout    ? uint64_t{opt.subscribers} + opt.publishers
       : opt.scenario == Scenario::Recover ? uint64_t{opt.subscribers} + 1
                                           : opt.connections) /
          opt.procs +
      1;
  if (per_proc + 64 > rl.rlim_cur) {
    std::fprintf(stderr,
                 "wstrace-bench: %" PRIu64 " connections per process exceed the open-files "
                 "limit (%llu): use more --procs\n",
                 per_proc, static_cast<unsigned long long>(rl.rlim_cur));
    return 2;
  }
  Parent parent(opt);
  return parent.run();
}
