// libFuzzer target: HS256 JWT verification on arbitrary tokens, and
// sign -> verify on arbitrary claims (a token we signed is never refused
// for its form or its signature).
#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

#include "fuzz_check.h"
#include "server/auth.h"

using namespace wstrace::server;

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string_view in(reinterpret_cast<const char*>(data), size);
  constexpr int64_t kNow = 1'700'000'000;
  AuthResult r = verify_jwt(in, "fuzz-secret", kNow);
  if (r.ok) {
    FUZZ_CHECK(r.error.empty());
    FUZZ_CHECK(r.user_id.size() <= 256);
  } else {
    FUZZ_CHECK(!r.error.empty());
  }
  std::string token = sign_jwt(in, "fuzz-secret");
  AuthResult s = verify_jwt(token, "fuzz-secret", kNow);
  FUZZ_CHECK(s.error != "malformed token");
  FUZZ_CHECK(s.error != "bad token signature");
  FUZZ_CHECK(s.error != "unsupported token algorithm (HS256 only)");
  FUZZ_CHECK(!verify_jwt(token, "other-secret", kNow).ok);
  return 0;
}
