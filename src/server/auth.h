// The server's side of client tokens: the key set the configuration names
// (--auth-secret, --auth-public-key, --auth-jwks), loaded at start and on
// SIGHUP, and the check of a token with the configured audience, issuer and
// clock leeway. The verification itself is the auth layer's (auth/jwt.h).
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "auth/jwt.h"
#include "server/config.h"

namespace wstrace::server {

struct AuthResult {
  bool ok = false;
  std::string user_id;                // the "sub" claim, when present
  std::vector<std::string> channels;  // the "channels" claim (patterns)
  std::vector<std::string> publish;   // the "publish" claim (patterns)
  int64_t exp = 0;                    // the "exp" claim (unix s), 0: none
  std::string code;                   // why refused: auth::error_code_name
  std::string error;                  // why refused, for people
};

// The key set of the configuration: null when it configures no key (no
// authentication), else the keys; false with `error` when a source fails.
bool load_auth_keys(const Config& cfg, std::shared_ptr<const auth::KeySet>& out,
                    std::string& error);

AuthResult verify_token(std::string_view token, const auth::KeySet& keys, const Config& cfg,
                        int64_t now_unix_s);

}  // namespace wstrace::server
