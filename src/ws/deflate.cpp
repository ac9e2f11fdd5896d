#include "ws/deflate.h"

#include <cctype>
#include <vector>

namespace wstrace::ws {
namespace {

constexpr uint8_t kTail[4] = {0x00, 0x00, 0xff, 0xff};

bool is_token_char(char c) {
  auto u = static_cast<unsigned char>(c);
  if (u <= 32 || u >= 127) return false;
  switch (c) {
    case '(': case ')': case '<': case '>': case '@': case ',': case ';': case ':':
    case '\\': case '"': case '/': case '[': case ']': case '?': case '=': case '{':
    case '}':
      return false;
    default:
      return true;
  }
}

struct Param {
  std::string name;
  std::optional<std::string> value;
};
struct Offer {
  std::string name;
  std::vector<Param> params;
};

// A tiny cursor over the header value, RFC 6455 §9.1 grammar.
class Cursor {
 public:
  explicit Cursor(std::string_view s) : s_(s) {}
  void skip_ws() {
    while (i_ < s_.size() && (s_[i_] == ' ' || s_[i_] == '\t')) ++i_;
  }
  bool done() {
    skip_ws();
    return i_ >= s_.size();
  }
  bool eat(char c) {
    skip_ws();
    if (i_ < s_.size() && s_[i_] == c) {
      ++i_;
      return true;
    }
    return false;
  }
  bool token(std::string& out) {
    skip_ws();
    size_t start = i_;
    while (i_ < s_.size() && is_token_char(s_[i_])) ++i_;
    out.assign(s_.substr(start, i_ - start));
    return !out.empty();
  }
  bool quoted(std::string& out) {
    skip_ws();
    if (i_ >= s_.size() || s_[i_] != '"') return false;
    ++i_;
    out.clear();
    while (i_ < s_.size() && s_[i_] != '"') {
      if (s_[i_] == '\\' && i_ + 1 < s_.size()) ++i_;
      out.push_back(s_[i_++]);
    }
    if (i_ >= s_.size()) return false;
    ++i_;
    // §9.1: a quoted value must itself be a token.
    for (char c : out) {
      if (!is_token_char(c)) return false;
    }
    return !out.empty();
  }

 private:
  std::string_view s_;
  size_t i_ = 0;
};

// Parses the whole list; false on a syntax error (then nothing is accepted).
bool parse_offers(std::string_view header, std::vector<Offer>& offers) {
  Cursor c(header);
  while (!c.done()) {
    if (c.eat(',')) continue;  // empty list elements are allowed (#rule)
    Offer offer;
    if (!c.token(offer.name)) return false;
    while (c.eat(';')) {
      Param p;
      if (!c.token(p.name)) return false;
      if (c.eat('=')) {
        std::string v;
        if (!c.token(v) && !c.quoted(v)) return false;
        p.value = v;
      }
      offer.params.push_back(std::move(p));
    }
    offers.push_back(std::move(offer));
    if (!c.done() && !c.eat(',')) return false;
  }
  return true;
}

bool parse_bits(const std::string& v, uint8_t& out) {
  if (v.size() == 1 && v[0] >= '8' && v[0] <= '9') {
    out = static_cast<uint8_t>(v[0] - '0');
    return true;
  }
  if (v.size() == 2 && v[0] == '1' && v[1] >= '0' && v[1] <= '5') {
    out = static_cast<uint8_t>(10 + v[1] - '0');
    return true;
  }
  return false;
}

// Accepts or declines one offer.
std::optional<DeflateParams> accept_offer(const Offer& offer, const DeflatePolicy& policy,
                                          std::string* response) {
  DeflateParams p;
  bool seen_snct = false, seen_cnct = false, seen_smwb = false, seen_cmwb = false;
  std::optional<uint8_t> server_bits;
  bool client_bits_offered = false;
  uint8_t client_bits_limit = 15;
  for (const auto& param : offer.params) {
    if (param.name == "server_no_context_takeover") {
      if (seen_snct || param.value) return std::nullopt;
      seen_snct = true;
    } else if (param.name == "client_no_context_takeover") {
      if (seen_cnct || param.value) return std::nullopt;
      seen_cnct = true;
      p.client_no_context_takeover = true;
    } else if (param.name == "server_max_window_bits") {
      uint8_t bits;
      if (seen_smwb || !param.value || !parse_bits(*param.value, bits)) return std::nullopt;
      seen_smwb = true;
      server_bits = bits;
    } else if (param.name == "client_max_window_bits") {
      if (seen_cmwb) return std::nullopt;
      seen_cmwb = true;
      client_bits_offered = true;
      if (param.value) {
        uint8_t bits;
        if (!parse_bits(*param.value, bits)) return std::nullopt;
        client_bits_limit = bits;
      }
    } else {
      return std::nullopt;  // unknown parameter: decline this offer (§7.1)
    }
  }
  if (server_bits) {
    // zlib cannot produce a raw deflate stream with a 256-byte window.
    if (*server_bits < 9) return std::nullopt;
    p.server_window_bits = *server_bits;
  }
  std::string out = "permessage-deflate; server_no_context_takeover";
  if (p.client_no_context_takeover) out += "; client_no_context_takeover";
  if (server_bits) out += "; server_max_window_bits=" + std::to_string(p.server_window_bits);
  if (client_bits_offered) {
    uint8_t cap = policy.client_window_cap < 9 ? 9 : policy.client_window_cap;
    if (cap > 15) cap = 15;
    p.client_window_bits = client_bits_limit < cap ? client_bits_limit : cap;
    // A client window of 8 is compatible with our 9+ inflater, since a larger
    // decoding window accepts any smaller encoding window.
    if (p.client_window_bits < 15) {
      out += "; client_max_window_bits=" + std::to_string(p.client_window_bits);
    }
  }
  if (p.client_window_bits < 9) p.client_window_bits = 9;
  *response = std::move(out);
  return p;
}

}  // namespace

std::optional<DeflateParams> negotiate_deflate(std::string_view extensions,
                                               const DeflatePolicy& policy,
                                               std::string* response) {
  std::vector<Offer> offers;
  if (!parse_offers(extensions, offers)) return std::nullopt;
  for (const auto& offer : offers) {
    if (offer.name != "permessage-deflate") continue;
    if (auto p = accept_offer(offer, policy, response)) return p;
  }
  return std::nullopt;
}

Deflater::Deflater(int window_bits) {
  // Level 1 and memLevel 4: the compressor is reset for every message, and a
  // reset clears a hash table of 2^(memLevel+7) entries; small messages gain
  // nothing from a larger one.
  ok_ = deflateInit2(&zs_, 1, Z_DEFLATED, -window_bits, 4, Z_DEFAULT_STRATEGY) == Z_OK;
}

Deflater::~Deflater() {
  if (ok_) deflateEnd(&zs_);
}

bool Deflater::compress(const uint8_t* in, size_t n, Buffer& out) {
  if (!ok_) return false;
  const size_t start = out.size();
  zs_.next_in = const_cast<Bytef*>(in);
  zs_.avail_in = static_cast<uInt>(n);
  for (;;) {
    size_t room = deflateBound(&zs_, n) + 16;
    uint8_t* dst = out.prepare(room);
    zs_.next_out = dst;
    zs_.avail_out = static_cast<uInt>(room);
    int rc = deflate(&zs_, Z_SYNC_FLUSH);
    out.grow(room - zs_.avail_out);
    if (rc != Z_OK && rc != Z_BUF_ERROR) {
      deflateReset(&zs_);
      out.resize(start);
      return false;
    }
    if (zs_.avail_in == 0 && zs_.avail_out > 0) break;
  }
  deflateReset(&zs_);
  // Z_SYNC_FLUSH ends with an empty stored block 00 00 ff ff: drop it (§7.2.1).
  if (out.size() - start >= 4 && std::memcmp(out.data() + out.size() - 4, kTail, 4) == 0) {
    out.resize(out.size() - 4);
  }
  // An empty message compresses to a single 0x00 byte (§7.2.3.6).
  if (out.size() == start) out.push_back(0x00);
  return true;
}

Inflater::Inflater(int window_bits) {
  ok_ = inflateInit2(&zs_, -window_bits) == Z_OK;
}

Inflater::~Inflater() {
  if (ok_) inflateEnd(&zs_);
}

Inflater::Result Inflater::run(const uint8_t* in, size_t n, Buffer& out, size_t start,
                               size_t max_size, bool* ended) {
  *ended = false;
  zs_.next_in = const_cast<Bytef*>(in);
  zs_.avail_in = static_cast<uInt>(n);
  for (;;) {
    size_t produced = out.size() - start;
    if (produced > max_size) return Result::TooBig;
    size_t room = n * 4 + 256;
    if (room > 65536) room = 65536;
    if (produced + room > max_size + 1) room = max_size + 1 - produced;
    uint8_t* dst = out.prepare(room);
    zs_.next_out = dst;
    zs_.avail_out = static_cast<uInt>(room);
    int rc = inflate(&zs_, Z_SYNC_FLUSH);
    out.grow(room - zs_.avail_out);
    if (out.size() - start > max_size) return Result::TooBig;
    if (rc == Z_STREAM_END) {
      // A block with BFINAL ends a deflate stream, but a message may go on
      // with more blocks (RFC 7692 §7.2.3.4 ends such a message with an
      // empty stored block): decode them as a new stream. The window is not
      // carried over — a sender that finishes its stream resets its own.
      inflateReset(&zs_);
      if (zs_.avail_in == 0) {
        *ended = true;
        return Result::Ok;
      }
      continue;  // more blocks follow the final one
    }
    if (rc == Z_BUF_ERROR) {
      if (zs_.avail_out == 0) continue;  // more output pending
      return Result::Ok;                 // all input used
    }
    if (rc == Z_MEM_ERROR || rc == Z_STREAM_ERROR) return Result::Internal;
    if (rc != Z_OK) return Result::Error;
    if (zs_.avail_in == 0 && zs_.avail_out > 0) return Result::Ok;
  }
}

Inflater::Result Inflater::inflate_part(const uint8_t* in, size_t n, Buffer& out, size_t start,
                                        size_t max_size) {
  if (!ok_) return Result::Internal;
  if (n == 0) return Result::Ok;  // an empty part leaves `ended_` as it was
  bool ended = false;
  Result r = run(in, n, out, start, max_size, &ended);
  ended_ = ended;
  if (r != Result::Ok) {
    inflateReset(&zs_);
    ended_ = false;
  }
  return r;
}

Inflater::Result Inflater::finish_message(Buffer& out, size_t start, size_t max_size,
                                          bool reset) {
  if (!ok_) return Result::Internal;
  Result r = Result::Ok;
  // §7.2.2: append 00 00 ff ff — unless the data ended with a final block,
  // after which those bytes would start a stored block that never ends.
  bool ended = false;
  if (!ended_) r = run(kTail, sizeof kTail, out, start, max_size, &ended);
  ended_ = false;
  if (reset || r != Result::Ok) inflateReset(&zs_);
  return r;
}

Inflater::Result Inflater::inflate_message(const uint8_t* in, size_t n, Buffer& out,
                                           size_t max_size, bool reset) {
  const size_t start = out.size();
  Result r = inflate_part(in, n, out, start, max_size);
  if (r != Result::Ok) return r;
  return finish_message(out, start, max_size, reset);
}

}  // namespace wstrace::ws
