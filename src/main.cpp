// wstrace: parse the configuration, run the server until SIGTERM/SIGINT,
// shut down gracefully, exit 0. SIGHUP reloads the configuration.
#include <signal.h>

#include <cstdio>
#include <string>

#include "server/config.h"
#include "server/server.h"
#include "util/log.h"

int main(int argc, char** argv) {
  wstrace::server::Config cfg;
  int rc = wstrace::server::load_config(argc, argv, cfg);
  if (rc >= 0) return rc;

  // Signals go to this thread only (blocked before any other thread starts);
  // a write to a closed socket is an error code, not a signal.
  sigset_t set;
  sigemptyset(&set);
  sigaddset(&set, SIGTERM);
  sigaddset(&set, SIGINT);
  sigaddset(&set, SIGHUP);
  pthread_sigmask(SIG_BLOCK, &set, nullptr);
  signal(SIGPIPE, SIG_IGN);

  wstrace::server::Server server(std::move(cfg));
  if (!server.start()) return 1;

  int sig = 0;
  for (;;) {
    sigwait(&set, &sig);
    if (sig != SIGHUP) break;
    // Never fatal: a bad new configuration is refused and the running one kept.
    wstrace::server::Config fresh = server.config();
    std::string error;
    if (wstrace::server::reload_config(server.config().args, fresh, error)) {
      server.reload(fresh);
    } else {
      WS_LOG(Error, "reload refused, the running configuration stays (SIGHUP)", {"error", error});
    }
  }
  WS_LOG(Info, "signal received", {"signal", sig == SIGTERM ? "SIGTERM" : "SIGINT"});
  server.shutdown();
  return 0;
}
