// The keys JWTs are verified with: algorithms, key types, and the KeySet the
// server builds from its configuration (a shared secret, PEM files, JWK Set
// files). The contract of building a KeySet is in auth/jwt.h.
#pragma once

#include <cstdint>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

struct evp_pkey_st;  // OpenSSL's EVP_PKEY

namespace wstrace::auth {

// The JWS algorithms we verify (RFC 7518 §3, RFC 8037 §3.1). "none" is not one.
enum class Alg : uint8_t { HS256, HS384, HS512, RS256, RS384, RS512, PS256, ES256, ES384, EdDSA };

// "HS256", ..., "EdDSA".
std::string_view alg_name(Alg alg);
// The exact, case-sensitive JWS name; nullopt for "none" and anything else.
std::optional<Alg> parse_alg(std::string_view name);

enum class KeyType : uint8_t {
  hmac,     // a shared secret: HS256, HS384, HS512
  rsa,      // RS256, RS384, RS512, PS256
  ec_p256,  // ES256
  ec_p384,  // ES384
  ed25519,  // EdDSA
};

// "HMAC secret", "RSA", "EC P-256", "EC P-384", "Ed25519".
std::string_view key_type_name(KeyType type);
// Whether a key of `type` can verify `alg` at all (the table above).
bool key_type_allows(KeyType type, Alg alg);

struct Key {
  std::string kid;  // empty: none
  KeyType type = KeyType::hmac;
  std::optional<Alg> alg;             // a JWK's "alg": the only algorithm this key verifies
  std::string origin;                 // where it came from, for messages: "jwks.json keys[2]"
  std::string secret;                 // hmac only: the raw secret bytes
  std::shared_ptr<evp_pkey_st> pkey;  // every other type: the public key

  bool usable_for(Alg a) const { return key_type_allows(type, a) && (!alg || *alg == a); }
};

// An immutable-once-built set of verification keys. Copies share the OpenSSL
// keys; a const KeySet may be used by any number of threads at once.
class KeySet {
 public:
  const std::vector<Key>& keys() const { return keys_; }
  size_t size() const { return keys_.size(); }
  bool empty() const { return keys_.empty(); }
  // The key with this (non-empty) kid, or null.
  const Key* find(std::string_view kid) const;
  // Keys of the sources that were understood but left out, one line each
  // ("jwks.json keys[3] (kid 'x'): use 'enc' is not for signatures"), for the
  // server to log.
  const std::vector<std::string>& skipped() const { return skipped_; }

  // Adds other's keys and skipped lines. Returns an error (and changes
  // nothing) when a kid is in both sets.
  std::string merge(KeySet other);

 private:
  friend struct KeySetBuilder;
  std::vector<Key> keys_;
  std::vector<std::string> skipped_;
};

// A KeySet, or why none could be built.
struct KeySetResult {
  std::optional<KeySet> keys;
  std::string error;  // empty when keys is set
  bool ok() const { return keys.has_value(); }
};

// I/O-free parsers. `source` names the input in error messages (a path).
KeySetResult key_set_from_secret(std::string_view secret, std::string_view kid = {});
KeySetResult parse_pem(std::string_view pem, std::string_view source, std::string_view kid = {});
KeySetResult parse_jwks(std::string_view json, std::string_view source);

// The same, reading a file (at most 1 MiB).
KeySetResult load_pem_file(const std::string& path, std::string_view kid = {});
KeySetResult load_jwks_file(const std::string& path);

// What the server's configuration names: one source of keys.
struct KeySource {
  enum class Kind : uint8_t { secret, pem_file, jwks_file };
  Kind kind = Kind::secret;
  std::string value;  // the secret itself, or the file's path
  std::string kid;    // secret and pem_file: the kid tokens use to name the key (may be empty)
};

// Every source into one set: the first failing source's error, or a set.
// Side-effect free (reads the files, nothing else), so a reload can build the
// new set and keep the old one when this fails.
KeySetResult build_key_set(std::span<const KeySource> sources);

}  // namespace wstrace::auth
