#include "telemetry/process_metrics.h"

#include <dirent.h>
#include <sys/resource.h>
#include <unistd.h>

#include <cstdio>
#include <cstring>

#include "util/clock.h"

namespace wstrace::telemetry {

namespace {

bool read_statm(uint64_t& vsize, uint64_t& rss) {
  FILE* f = std::fopen("/proc/self/statm", "re");
  if (!f) {
    return false;
  }
  unsigned long long size = 0, resident = 0;
  int n = std::fscanf(f, "%llu %llu", &size, &resident);
  std::fclose(f);
  if (n != 2) {
    return false;
  }
  auto page = static_cast<uint64_t>(sysconf(_SC_PAGESIZE));
  vsize = size * page;
  rss = resident * page;
  return true;
}

int64_t count_fds() {
  DIR* d = opendir("/proc/self/fd");
  if (!d) {
    return -1;
  }
  int64_t n = 0;
  while (dirent* e = readdir(d)) {
    if (e->d_name[0] != '.') {
      ++n;
    }
  }
  closedir(d);
  return n - 1;  // the directory stream's own descriptor
}

int64_t count_threads() {
  FILE* f = std::fopen("/proc/self/status", "re");
  if (!f) {
    return -1;
  }
  char line[256];
  int64_t threads = -1;
  while (std::fgets(line, sizeof line, f)) {
    if (std::strncmp(line, "Threads:", 8) == 0) {
      threads = std::strtoll(line + 8, nullptr, 10);
      break;
    }
  }
  std::fclose(f);
  return threads;
}

}  // namespace

void register_process_metrics(MetricRegistry& r) {
  r.add_observable_updown_counter("process.memory.usage", "Resident set size of the process",
                                  "By", [](std::vector<Point>& out) {
                                    uint64_t vsize, rss;
                                    if (read_statm(vsize, rss)) {
                                      out.push_back(Point::of_int(static_cast<int64_t>(rss)));
                                    }
                                  });
  r.add_observable_updown_counter("process.memory.virtual", "Virtual memory size of the process",
                                  "By", [](std::vector<Point>& out) {
                                    uint64_t vsize, rss;
                                    if (read_statm(vsize, rss)) {
                                      out.push_back(Point::of_int(static_cast<int64_t>(vsize)));
                                    }
                                  });
  r.add_observable_counter(
      "process.cpu.time", "CPU time used by the process", "s", [](std::vector<Point>& out) {
        rusage ru{};
        if (getrusage(RUSAGE_SELF, &ru) == 0) {
          auto secs = [](const timeval& tv) {
            return static_cast<double>(tv.tv_sec) + static_cast<double>(tv.tv_usec) / 1e6;
          };
          out.push_back(Point::of_double(secs(ru.ru_utime), {{"cpu.mode", "user"}}));
          out.push_back(Point::of_double(secs(ru.ru_stime), {{"cpu.mode", "system"}}));
        }
      });
  r.add_observable_updown_counter("process.open_file_descriptor.count",
                                  "Open file descriptors of the process", "{file_descriptor}",
                                  [](std::vector<Point>& out) {
                                    int64_t n = count_fds();
                                    if (n >= 0) {
                                      out.push_back(Point::of_int(n));
                                    }
                                  });
  r.add_observable_updown_counter("process.thread.count", "Threads of the process", "{thread}",
                                  [](std::vector<Point>& out) {
                                    int64_t n = count_threads();
                                    if (n >= 0) {
                                      out.push_back(Point::of_int(n));
                                    }
                                  });
  uint64_t started = mono_ns();
  r.add_observable_gauge("process.uptime", "Time since the telemetry layer started", "s",
                         [started](std::vector<Point>& out) {
                           out.push_back(Point::of_double(
                               static_cast<double>(mono_ns() - started) / 1e9));
                         });
}

}  // namespace wstrace::telemetry
