// libFuzzer target: Address::parse ("host:port", "[v6]:port", ":port").
// Name resolution is stubbed (the target links with --wrap=getaddrinfo):
// only "localhost" resolves, from /etc/hosts, so no input makes a DNS query.
// An address that parses formats back to a string that parses to the same.
#include <netdb.h>

#include <cstddef>
#include <cstdint>
#include <cstring>
#include <string>
#include <string_view>

#include "fuzz_check.h"
#include "net/socket.h"

extern "C" int __real_getaddrinfo(const char* node, const char* service, const addrinfo* hints,
                                  addrinfo** res);
extern "C" int __wrap_getaddrinfo(const char* node, const char* service, const addrinfo* hints,
                                  addrinfo** res) {
  if (node != nullptr && std::strcmp(node, "localhost") == 0) {
    return __real_getaddrinfo(node, service, hints, res);
  }
  return EAI_NONAME;
}

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using wstrace::net::Address;
  const std::string_view in(reinterpret_cast<const char*>(data), size);
  std::string err;
  auto a = Address::parse(in, &err);
  if (!a) {
    FUZZ_CHECK(!err.empty());
    return 0;
  }
  FUZZ_CHECK(a->storage.ss_family == AF_INET || a->storage.ss_family == AF_INET6);
  const std::string text = a->to_string();
  std::string err2;
  auto b = Address::parse(text, &err2);
  FUZZ_CHECK(b.has_value());
  FUZZ_CHECK(b->to_string() == text);
  FUZZ_CHECK(b->port() == a->port());
  return 0;
}
