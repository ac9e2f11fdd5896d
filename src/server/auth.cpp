#include "server/auth.h"

namespace wstrace::server {

bool load_auth_keys(const Config& cfg, std::shared_ptr<const auth::KeySet>& out,
                    std::string& error) {
  std::vector<auth::KeySource> sources;
  if (!cfg.auth_secret.empty()) sources.push_back({auth::KeySource::Kind::secret, cfg.auth_secret, {}});
  if (!cfg.auth_public_key.empty()) {
    sources.push_back({auth::KeySource::Kind::pem_file, cfg.auth_public_key, {}});
  }
  if (!cfg.auth_jwks.empty()) sources.push_back({auth::KeySource::Kind::jwks_file, cfg.auth_jwks, {}});
  if (sources.empty()) {
    out = nullptr;
    return true;
  }
  auth::KeySetResult r = auth::build_key_set(sources);
  if (!r.ok()) {
    error = r.error;
    return false;
  }
  out = std::make_shared<const auth::KeySet>(std::move(*r.keys));
  return true;
}

AuthResult verify_token(std::string_view token, const auth::KeySet& keys, const Config& cfg,
                        int64_t now_unix_s) {
  auth::VerifyOptions opts;
  opts.audience = cfg.auth_audience;
  opts.issuer = cfg.auth_issuer;
  opts.leeway_s = static_cast<int64_t>(cfg.auth_leeway_ns / 1'000'000'000ull);
  auth::VerifyResult v = auth::verify(token, keys, opts, now_unix_s);
  AuthResult r;
  r.ok = v.ok();
  r.code = std::string(auth::error_code_name(v.code));
  if (!r.ok) {
    r.error = v.message.empty() ? r.code : v.message;
    return r;
  }
  r.user_id = std::move(v.claims.user);
  r.channels = std::move(v.claims.channels);
  r.publish = std::move(v.claims.publish);
  r.exp = v.claims.exp;
  return r;
}

}  // namespace wstrace::server
