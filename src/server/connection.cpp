#include "server/connection.h"

#include <arpa/inet.h>
#include <sys/socket.h>

#include "server/worker.h"

namespace wstrace::server {

const char* initiator_name(Initiator i) {
  switch (i) {
    case Initiator::None: return "none";
    case Initiator::Client: return "client";
    case Initiator::Server: return "server";
    case Initiator::Timeout: return "timeout";
    case Initiator::Error: return "error";
    case Initiator::Shutdown: return "shutdown";
  }
  return "none";
}

std::string PeerAddress::to_string() const {
  char buf[INET6_ADDRSTRLEN] = {0};
  if (family == AF_INET) {
    inet_ntop(AF_INET, addr, buf, sizeof buf);
    return std::string(buf) + ":" + std::to_string(port);
  }
  if (family == AF_INET6) {
    inet_ntop(AF_INET6, addr, buf, sizeof buf);
    return "[" + std::string(buf) + "]:" + std::to_string(port);
  }
  return "unknown";
}

void Connection::on_io(uint32_t events) { Worker::current()->on_io(*this, events); }

}  // namespace wstrace::server
