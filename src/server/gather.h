// Server::gather's definition, shared by server.cpp and admin.cpp.
#pragma once

#include <chrono>
#include <condition_variable>
#include <memory>
#include <mutex>

#include "server/server.h"

namespace wstrace::server {

template <typename R>
Server::Gathered<R> Server::gather(std::function<R(Worker&)> fn) {
  // Shared with the posted tasks, so a worker that answers late (or never:
  // it may be stuck, or stopped during shutdown) touches nothing of this frame.
  struct State {
    std::mutex mu;
    std::condition_variable cv;
    std::vector<R> results;
    std::vector<bool> answered;
    size_t done = 0;
  };
  auto state = std::make_shared<State>();
  state->answered.assign(workers_.size(), false);
  for (auto& w : workers_) {
    Worker* worker = w.get();
    worker->loop().post([state, fn, worker] {
      R r = fn(*worker);
      std::lock_guard lock(state->mu);
      state->results.push_back(std::move(r));
      state->answered[worker->index()] = true;
      ++state->done;
      state->cv.notify_one();
    });
  }
  std::unique_lock lock(state->mu);
  state->cv.wait_for(lock, std::chrono::seconds(2), [&] { return state->done == workers_.size(); });
  Gathered<R> out;
  out.results = std::move(state->results);
  for (unsigned i = 0; i < state->answered.size(); ++i) {
    if (!state->answered[i]) out.missing.push_back(i);
  }
  return out;
}

}  // namespace wstrace::server
