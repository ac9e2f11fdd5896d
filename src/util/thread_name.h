// Names the calling thread as `top -H`, `ps -L`, perf and gdb show it
// (Linux keeps 15 bytes; longer names are cut).
#pragma once

#include <pthread.h>

#include <cstring>
#include <string_view>

namespace wstrace {

inline void name_this_thread(std::string_view name) {
  char buf[16];
  const size_t n = name.size() < sizeof buf - 1 ? name.size() : sizeof buf - 1;
  std::memcpy(buf, name.data(), n);
  buf[n] = '\0';
  pthread_setname_np(pthread_self(), buf);
}

}  // namespace wstrace
