#include "auth/keys.h"

#include <openssl/core_names.h>
#include <openssl/decoder.h>
#include <openssl/objects.h>
#include <openssl/pem.h>
#include <simdjson.h>

#include <algorithm>
#include <cerrno>
#include <cstdio>
#include <cstring>

#include "auth/base64url.h"
#include "auth/ossl.h"
#include "auth/text.h"

namespace wstrace::auth {

namespace {

constexpr std::string_view kAlgNames[] = {"HS256", "HS384", "HS512", "RS256", "RS384",
                                          "RS512", "PS256", "ES256", "ES384", "EdDSA"};
constexpr size_t kMaxFileBytes = 1 << 20;
constexpr int kMinRsaBits = 2048;  // RFC 7518 §3.3
constexpr int kMaxRsaBits = 8192;  // bounds the cost of one verification

}  // namespace

std::string_view alg_name(Alg alg) { return kAlgNames[static_cast<size_t>(alg)]; }

std::optional<Alg> parse_alg(std::string_view name) {
  for (size_t i = 0; i < std::size(kAlgNames); ++i) {
    if (kAlgNames[i] == name) return static_cast<Alg>(i);
  }
  return std::nullopt;
}

std::string_view key_type_name(KeyType type) {
  switch (type) {
    case KeyType::hmac:
      return "HMAC secret";
    case KeyType::rsa:
      return "RSA";
    case KeyType::ec_p256:
      return "EC P-256";
    case KeyType::ec_p384:
      return "EC P-384";
    case KeyType::ed25519:
      return "Ed25519";
  }
  return "?";
}

bool key_type_allows(KeyType type, Alg alg) {
  switch (type) {
    case KeyType::hmac:
      return alg == Alg::HS256 || alg == Alg::HS384 || alg == Alg::HS512;
    case KeyType::rsa:
      return alg == Alg::RS256 || alg == Alg::RS384 || alg == Alg::RS512 || alg == Alg::PS256;
    case KeyType::ec_p256:
      return alg == Alg::ES256;
    case KeyType::ec_p384:
      return alg == Alg::ES384;
    case KeyType::ed25519:
      return alg == Alg::EdDSA;
  }
  return false;
}

const Key* KeySet::find(std::string_view kid) const {
  if (kid.empty()) return nullptr;
  for (const Key& k : keys_) {
    if (k.kid == kid) return &k;
  }
  return nullptr;
}

std::string KeySet::merge(KeySet other) {
  for (const Key& k : other.keys_) {
    if (const Key* mine = find(k.kid)) {
      return k.origin + ": kid '" + k.kid + "' is also the kid of " + mine->origin;
    }
  }
  for (Key& k : other.keys_) keys_.push_back(std::move(k));
  for (std::string& s : other.skipped_) skipped_.push_back(std::move(s));
  return {};
}

struct KeySetBuilder {
  static void add(KeySet& set, Key key) { set.keys_.push_back(std::move(key)); }
  static void skip(KeySet& set, std::string why) { set.skipped_.push_back(std::move(why)); }
};

namespace {

using detail::has_duplicate_member;
using detail::printable;

KeySetResult fail(std::string error) { return KeySetResult{std::nullopt, std::move(error)}; }

std::shared_ptr<evp_pkey_st> share(ossl::PKey key) {
  return std::shared_ptr<evp_pkey_st>(key.release(), EVP_PKEY_free);
}

// What kind of key an OpenSSL public key is, or an error: only the types and
// sizes we verify with, and keys OpenSSL's own public-key check accepts (for
// EC: the point is on the curve).
bool classify(EVP_PKEY* pkey, KeyType& type, std::string& error) {
  switch (EVP_PKEY_get_base_id(pkey)) {
    case EVP_PKEY_RSA: {
      const int bits = EVP_PKEY_get_bits(pkey);
      if (bits < kMinRsaBits || bits > kMaxRsaBits) {
        error = "RSA key of " + std::to_string(bits) + " bits (" + std::to_string(kMinRsaBits) +
                " to " + std::to_string(kMaxRsaBits) + " are accepted)";
        return false;
      }
      type = KeyType::rsa;
      break;
    }
    case EVP_PKEY_EC: {
      char name[64];
      size_t len = 0;
      if (EVP_PKEY_get_group_name(pkey, name, sizeof name, &len) != 1) {
        ossl::take_error();
        error = "EC key without a named curve (P-256 or P-384 are accepted)";
        return false;
      }
      int nid = OBJ_sn2nid(name);
      if (nid == NID_undef) nid = EC_curve_nist2nid(name);
      if (nid == NID_X9_62_prime256v1) {
        type = KeyType::ec_p256;
      } else if (nid == NID_secp384r1) {
        type = KeyType::ec_p384;
      } else {
        error = std::string("EC key on curve ") + name + " (P-256 or P-384 are accepted)";
        return false;
      }
      break;
    }
    case EVP_PKEY_ED25519:
      type = KeyType::ed25519;
      break;
    case EVP_PKEY_RSA_PSS:
      error = "RSA-PSS-restricted key (give it as a plain rsaEncryption public key)";
      return false;
    case EVP_PKEY_ED448:
      error = "Ed448 key (only Ed25519 is accepted for EdDSA)";
      return false;
    default:
      error = "unsupported key type (RSA, EC P-256/P-384 or Ed25519 are accepted)";
      return false;
  }
  ossl::PKeyCtx ctx(EVP_PKEY_CTX_new_from_pkey(nullptr, pkey, nullptr));
  if (!ctx || EVP_PKEY_public_check(ctx.get()) != 1) {
    std::string why = ossl::take_error();
    error = std::string(key_type_name(type)) + " public key refused by OpenSSL's check" +
            (why.empty() ? "" : " (" + why + ")");
    return false;
  }
  return true;
}

bool read_file(const std::string& path, std::string& out, std::string& error) {
  std::FILE* f = std::fopen(path.c_str(), "rb");
  if (f == nullptr) {
    error = "cannot open " + path + ": " + std::strerror(errno);
    return false;
  }
  out.clear();
  char buf[16384];
  size_t n;
  while ((n = std::fread(buf, 1, sizeof buf, f)) > 0) {
    out.append(buf, n);
    if (out.size() > kMaxFileBytes) {
      std::fclose(f);
      error = path + ": larger than 1 MiB";
      return false;
    }
  }
  const bool failed = std::ferror(f) != 0;
  std::fclose(f);
  if (failed) {
    error = "cannot read " + path;
    return false;
  }
  return true;
}

// One JWK (RFC 7517 §4, RFC 7518 §6, RFC 8037 §2). Returns false with `error`
// when the key is broken; true with `skip` set when it is well formed but not
// one we verify with; true with `key` filled otherwise.
class JwkReader {
 public:
  JwkReader(simdjson::dom::object obj, std::string origin)
      : obj_(obj), origin_(std::move(origin)) {}

  bool read(Key& key, std::string& skip, std::string& error) {
    if (has_duplicate_member(obj_)) return bad("a member appears twice", error);
    std::string_view kty, kid, use, alg_text;
    if (!opt_string("kid", kid, error) || !opt_string("kty", kty, error) ||
        !opt_string("use", use, error) || !opt_string("alg", alg_text, error)) {
      return false;
    }
    if (!kid.empty()) origin_ += " (kid '" + printable(kid) + "')";
    key.kid = std::string(kid);
    key.origin = origin_;
    if (obj_["kid"].error() == simdjson::SUCCESS && kid.empty())
      return bad("'kid' is empty", error);
    if (kty.empty()) return bad("no 'kty'", error);
    if (!use.empty() && use != "sig") {
      if (use == "enc") {
        skip = origin_ + ": use 'enc' is not for signatures";
        return true;
      }
      return bad("unknown 'use' '" + printable(use) + "' (sig or enc)", error);
    }
    simdjson::dom::element ops;
    if (obj_["key_ops"].get(ops) == simdjson::SUCCESS) {
      simdjson::dom::array arr;
      if (ops.get(arr) != simdjson::SUCCESS)
        return bad("'key_ops' must be an array of strings", error);
      bool verify = false;
      for (auto op : arr) {
        std::string_view s;
        if (op.get(s) != simdjson::SUCCESS)
          return bad("'key_ops' must be an array of strings", error);
        verify = verify || s == "verify";
      }
      if (!verify) {
        skip = origin_ + ": 'key_ops' does not include verify";
        return true;
      }
    }
    if (!alg_text.empty()) {
      key.alg = parse_alg(alg_text);
      if (!key.alg) {
        skip = origin_ + ": alg '" + printable(alg_text) + "' is not supported";
        return true;
      }
    } else if (obj_["alg"].error() == simdjson::SUCCESS) {
      return bad("'alg' is empty", error);
    }

    if (kty == "oct") {
      if (!bytes("k", key.secret, error)) return false;
      key.type = KeyType::hmac;
    } else if (kty == "RSA") {
      if (!rsa(key, error)) return false;
    } else if (kty == "EC") {
      std::string_view crv;
      if (!opt_string("crv", crv, error)) return false;
      if (crv.empty()) return bad("EC key has no 'crv'", error);
      size_t size;
      const char* group;
      if (crv == "P-256") {
        size = 32, group = "P-256";
      } else if (crv == "P-384") {
        size = 48, group = "P-384";
      } else {
        skip = origin_ + ": curve '" + printable(crv) + "' is not supported (P-256, P-384)";
        return true;
      }
      if (!ec(key, group, size, error)) return false;
    } else if (kty == "OKP") {
      std::string_view crv;
      if (!opt_string("crv", crv, error)) return false;
      if (crv.empty()) return bad("OKP key has no 'crv'", error);
      if (crv != "Ed25519") {
        skip = origin_ + ": curve '" + printable(crv) + "' is not supported (Ed25519)";
        return true;
      }
      std::string x;
      if (!bytes("x", x, error)) return false;
      if (x.size() != 32) return bad("Ed25519 'x' must be 32 bytes", error);
      ossl::PKey pkey(EVP_PKEY_new_raw_public_key(
          EVP_PKEY_ED25519, nullptr, reinterpret_cast<const unsigned char*>(x.data()), x.size()));
      if (!pkey) return bad("Ed25519 key refused by OpenSSL (" + ossl::take_error() + ")", error);
      if (!check(key, std::move(pkey), error)) return false;
    } else {
      skip = origin_ + ": kty '" + printable(kty) + "' is not supported (RSA, EC, OKP, oct)";
      return true;
    }
    if (key.alg && !key_type_allows(key.type, *key.alg)) {
      return bad("alg " + std::string(alg_name(*key.alg)) + " does not fit the key type (" +
                     std::string(key_type_name(key.type)) + ")",
                 error);
    }
    return true;
  }

 private:
  bool bad(std::string why, std::string& error) {
    error = origin_ + ": " + why;
    return false;
  }

  // A member that must be a string when present ("" when absent).
  bool opt_string(const char* name, std::string_view& out, std::string& error) {
    out = {};
    simdjson::dom::element e;
    if (obj_[name].get(e) != simdjson::SUCCESS) return true;
    if (e.get(out) != simdjson::SUCCESS)
      return bad(std::string("'") + name + "' must be a string", error);
    return true;
  }

  // A required, non-empty base64url member.
  bool bytes(const char* name, std::string& out, std::string& error) {
    std::string_view text;
    if (!opt_string(name, text, error)) return false;
    if (text.empty()) return bad(std::string("no '") + name + "'", error);
    if (!base64url_decode(text, out)) {
      return bad(std::string("'") + name + "' is not base64url (no padding)", error);
    }
    return true;
  }

  bool rsa(Key& key, std::string& error) {
    std::string n, e;
    if (!bytes("n", n, error) || !bytes("e", e, error)) return false;
    ossl::Bn bn_n(BN_bin2bn(reinterpret_cast<const unsigned char*>(n.data()),
                            static_cast<int>(n.size()), nullptr));
    ossl::Bn bn_e(BN_bin2bn(reinterpret_cast<const unsigned char*>(e.data()),
                            static_cast<int>(e.size()), nullptr));
    ossl::ParamBld bld(OSSL_PARAM_BLD_new());
    if (!bn_n || !bn_e || !bld ||
        OSSL_PARAM_BLD_push_BN(bld.get(), OSSL_PKEY_PARAM_RSA_N, bn_n.get()) != 1 ||
        OSSL_PARAM_BLD_push_BN(bld.get(), OSSL_PKEY_PARAM_RSA_E, bn_e.get()) != 1) {
      return bad("RSA key refused by OpenSSL (" + ossl::take_error() + ")", error);
    }
    return from_params(key, "RSA", bld.get(), error);
  }

  bool ec(Key& key, const char* group, size_t size, std::string& error) {
    std::string x, y;
    if (!bytes("x", x, error) || !bytes("y", y, error)) return false;
    // RFC 7518 §6.2.1.2/3: the full length of the curve's coordinates.
    if (x.size() != size || y.size() != size) {
      return bad(
          std::string(group) + " 'x' and 'y' must be " + std::to_string(size) + " bytes each",
          error);
    }
    std::string point = "\x04" + x + y;  // uncompressed (SEC 1 §2.3.3)
    ossl::ParamBld bld(OSSL_PARAM_BLD_new());
    if (!bld ||
        OSSL_PARAM_BLD_push_utf8_string(bld.get(), OSSL_PKEY_PARAM_GROUP_NAME, group, 0) != 1 ||
        OSSL_PARAM_BLD_push_octet_string(bld.get(), OSSL_PKEY_PARAM_PUB_KEY, point.data(),
                                         point.size()) != 1) {
      return bad("EC key refused by OpenSSL (" + ossl::take_error() + ")", error);
    }
    return from_params(key, "EC", bld.get(), error);
  }

  bool from_params(Key& key, const char* type, OSSL_PARAM_BLD* bld, std::string& error) {
    ossl::Params params(OSSL_PARAM_BLD_to_param(bld));
    ossl::PKeyCtx ctx(EVP_PKEY_CTX_new_from_name(nullptr, type, nullptr));
    EVP_PKEY* raw = nullptr;
    if (!params || !ctx || EVP_PKEY_fromdata_init(ctx.get()) != 1 ||
        EVP_PKEY_fromdata(ctx.get(), &raw, EVP_PKEY_PUBLIC_KEY, params.get()) != 1) {
      return bad(std::string(type) + " key refused by OpenSSL (" + ossl::take_error() + ")", error);
    }
    return check(key, ossl::PKey(raw), error);
  }

  bool check(Key& key, ossl::PKey pkey, std::string& error) {
    std::string why;
    if (!classify(pkey.get(), key.type, why)) return bad(why, error);
    key.pkey = share(std::move(pkey));
    return true;
  }

  simdjson::dom::object obj_;
  std::string origin_;
};

// "-----BEGIN <label>-----" blocks of a PEM text.
std::vector<std::string_view> pem_labels(std::string_view pem) {
  std::vector<std::string_view> labels;
  constexpr std::string_view kBegin = "-----BEGIN ";
  size_t at = 0;
  while ((at = pem.find(kBegin, at)) != std::string_view::npos) {
    at += kBegin.size();
    size_t end = pem.find("-----", at);
    const size_t eol = pem.find('\n', at);
    if (end == std::string_view::npos || (eol != std::string_view::npos && eol < end)) {
      labels.push_back({});  // unterminated: not a label we know
      continue;
    }
    labels.push_back(pem.substr(at, end - at));
    at = end;
  }
  return labels;
}

}  // namespace

KeySetResult key_set_from_secret(std::string_view secret, std::string_view kid) {
  // An empty HMAC key is one anybody can sign with.
  if (secret.empty()) return fail("the shared secret is empty");
  KeySet set;
  Key key;
  key.kid = std::string(kid);
  key.type = KeyType::hmac;
  key.origin = kid.empty() ? std::string("the shared secret")
                           : "the shared secret (kid '" + printable(kid) + "')";
  key.secret = std::string(secret);
  KeySetBuilder::add(set, std::move(key));
  return KeySetResult{std::move(set), {}};
}

KeySetResult parse_pem(std::string_view pem, std::string_view source, std::string_view kid) {
  const std::string where(source);
  const std::vector<std::string_view> labels = pem_labels(pem);
  if (labels.empty())
    return fail(where + ": no PEM block (-----BEGIN PUBLIC KEY----- or CERTIFICATE)");
  if (labels.size() > 1) {
    return fail(where + ": " + std::to_string(labels.size()) +
                " PEM blocks; give exactly one public key or certificate");
  }
  const std::string_view label = labels[0];
  if (label.find("PRIVATE KEY") != std::string_view::npos) {
    return fail(where + ": is a private key; give the public key (openssl pkey -pubout)");
  }
  if (pem.size() > static_cast<size_t>(INT32_MAX)) return fail(where + ": too large");
  ossl::Bio bio(BIO_new_mem_buf(pem.data(), static_cast<int>(pem.size())));
  if (!bio) return fail(where + ": " + ossl::take_error());
  ossl::PKey pkey;
  if (label == "PUBLIC KEY") {
    pkey.reset(PEM_read_bio_PUBKEY(bio.get(), nullptr, nullptr, nullptr));
  } else if (label == "RSA PUBLIC KEY") {
    EVP_PKEY* raw = nullptr;
    OSSL_DECODER_CTX* dctx = OSSL_DECODER_CTX_new_for_pkey(&raw, "PEM", "type-specific", "RSA",
                                                           EVP_PKEY_PUBLIC_KEY, nullptr, nullptr);
    if (dctx != nullptr) {
      if (OSSL_DECODER_from_bio(dctx, bio.get()) != 1 && raw != nullptr) {
        EVP_PKEY_free(raw);
        raw = nullptr;
      }
      OSSL_DECODER_CTX_free(dctx);
    }
    pkey.reset(raw);
  } else if (label == "CERTIFICATE") {
    ossl::X509Ptr cert(PEM_read_bio_X509(bio.get(), nullptr, nullptr, nullptr));
    if (cert) pkey.reset(X509_get_pubkey(cert.get()));
  } else {
    return fail(where + ": PEM block '" + printable(label) +
                "' is not a PUBLIC KEY, RSA PUBLIC KEY or CERTIFICATE");
  }
  if (!pkey) {
    std::string why = ossl::take_error();
    return fail(where + ": cannot read the " + std::string(label) +
                (why.empty() ? "" : " (" + why + ")"));
  }
  ossl::take_error();
  Key key;
  key.kid = std::string(kid);
  key.origin = kid.empty() ? where : where + " (kid '" + printable(kid) + "')";
  std::string why;
  if (!classify(pkey.get(), key.type, why)) return fail(key.origin + ": " + why);
  key.pkey = share(std::move(pkey));
  KeySet set;
  KeySetBuilder::add(set, std::move(key));
  return KeySetResult{std::move(set), {}};
}

KeySetResult parse_jwks(std::string_view json, std::string_view source) {
  const std::string where(source);
  simdjson::dom::parser parser;
  simdjson::dom::element doc;
  if (auto err = parser.parse(json.data(), json.size(), true).get(doc)) {
    return fail(where + ": not JSON (" + simdjson::error_message(err) + ")");
  }
  simdjson::dom::object top;
  simdjson::dom::array list;
  if (doc.get(top) != simdjson::SUCCESS || top["keys"].get(list) != simdjson::SUCCESS) {
    return fail(where + ": not a JWK Set (an object with a \"keys\" array)");
  }
  if (has_duplicate_member(top)) return fail(where + ": a member of the JWK Set appears twice");
  KeySet set;
  size_t index = 0;
  for (simdjson::dom::element item : list) {
    const std::string origin = where + " keys[" + std::to_string(index++) + "]";
    simdjson::dom::object obj;
    if (item.get(obj) != simdjson::SUCCESS) return fail(origin + ": not an object");
    Key key;
    std::string skip, error;
    if (!JwkReader(obj, origin).read(key, skip, error)) return fail(error);
    if (!skip.empty()) {
      KeySetBuilder::skip(set, std::move(skip));
      continue;
    }
    if (const Key* other = set.find(key.kid)) {
      return fail(key.origin + ": kid '" + printable(key.kid) + "' is also the kid of " +
                  other->origin);
    }
    KeySetBuilder::add(set, std::move(key));
  }
  if (set.empty()) {
    std::string why = where + ": no usable key";
    for (const std::string& s : set.skipped()) why += "; " + s;
    return fail(why);
  }
  return KeySetResult{std::move(set), {}};
}

KeySetResult load_pem_file(const std::string& path, std::string_view kid) {
  std::string text, error;
  if (!read_file(path, text, error)) return fail(error);
  return parse_pem(text, path, kid);
}

KeySetResult load_jwks_file(const std::string& path) {
  std::string text, error;
  if (!read_file(path, text, error)) return fail(error);
  return parse_jwks(text, path);
}

KeySetResult build_key_set(std::span<const KeySource> sources) {
  if (sources.empty()) return fail("no key configured");
  KeySet all;
  for (const KeySource& src : sources) {
    KeySetResult one;
    switch (src.kind) {
      case KeySource::Kind::secret:
        one = key_set_from_secret(src.value, src.kid);
        break;
      case KeySource::Kind::pem_file:
        one = load_pem_file(src.value, src.kid);
        break;
      case KeySource::Kind::jwks_file:
        if (!src.kid.empty()) return fail(src.value + ": a JWK Set's keys carry their own kid");
        one = load_jwks_file(src.value);
        break;
    }
    if (!one.ok()) return one;
    if (std::string error = all.merge(std::move(*one.keys)); !error.empty()) return fail(error);
  }
  return KeySetResult{std::move(all), {}};
}

}  // namespace wstrace::auth
