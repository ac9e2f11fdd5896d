#include "http/request.h"

#include <cstring>

namespace wstrace::http {
namespace {

char lower(char c) { return (c >= 'A' && c <= 'Z') ? static_cast<char>(c + 32) : c; }

bool is_tchar(char c) {
  if ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9')) return true;
  return std::strchr("!#$%&'*+-.^_`|~", c) != nullptr && c != 0;
}

std::string_view trim(std::string_view s) {
  while (!s.empty() && (s.front() == ' ' || s.front() == '\t')) s.remove_prefix(1);
  while (!s.empty() && (s.back() == ' ' || s.back() == '\t')) s.remove_suffix(1);
  return s;
}

int hexval(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  return -1;
}

}  // namespace

bool iequals(std::string_view a, std::string_view b) {
  if (a.size() != b.size()) return false;
  for (size_t i = 0; i < a.size(); ++i) {
    if (lower(a[i]) != lower(b[i])) return false;
  }
  return true;
}

std::optional<std::string_view> Request::header(std::string_view name) const {
  for (size_t i = 0; i < header_count; ++i) {
    if (iequals(headers[i].name, name)) return headers[i].value;
  }
  return std::nullopt;
}

bool Request::header_joined(std::string_view name, std::string& out) const {
  out.clear();
  bool found = false;
  for (size_t i = 0; i < header_count; ++i) {
    if (!iequals(headers[i].name, name)) continue;
    if (found) out += ", ";
    out += headers[i].value;
    found = true;
  }
  return found;
}

bool Request::header_has_token(std::string_view name, std::string_view token) const {
  for (size_t i = 0; i < header_count; ++i) {
    if (!iequals(headers[i].name, name)) continue;
    std::string_view v = headers[i].value;
    while (!v.empty()) {
      size_t comma = v.find(',');
      std::string_view item = trim(v.substr(0, comma));
      if (iequals(item, token)) return true;
      if (comma == std::string_view::npos) break;
      v.remove_prefix(comma + 1);
    }
  }
  return false;
}

ParseStatus parse_request(std::string_view buf, size_t max_head, Request& req, size_t* head_size) {
  size_t end = buf.find("\r\n\r\n");
  if (end == std::string_view::npos) {
    // Tolerate bare LF line endings? No: RFC 6455 clients all send CRLF, and
    // accepting both invites request smuggling ambiguities.
    return buf.size() >= max_head ? ParseStatus::HeadersTooLarge : ParseStatus::NeedMore;
  }
  if (end + 4 > max_head) return ParseStatus::HeadersTooLarge;
  *head_size = end + 4;
  std::string_view head = buf.substr(0, end + 2);  // keep the last line's CRLF

  // Request line: METHOD SP TARGET SP HTTP/x.y CRLF
  size_t eol = head.find("\r\n");
  std::string_view line = head.substr(0, eol);
  size_t sp1 = line.find(' ');
  if (sp1 == std::string_view::npos || sp1 == 0) return ParseStatus::BadRequest;
  size_t sp2 = line.find(' ', sp1 + 1);
  if (sp2 == std::string_view::npos || sp2 == sp1 + 1) return ParseStatus::BadRequest;
  req.method = line.substr(0, sp1);
  for (char c : req.method) {
    if (!is_tchar(c)) return ParseStatus::BadRequest;
  }
  req.target = line.substr(sp1 + 1, sp2 - sp1 - 1);
  for (char c : req.target) {
    if (static_cast<unsigned char>(c) <= 32 || c == 127) return ParseStatus::BadRequest;
  }
  std::string_view version = line.substr(sp2 + 1);
  if (version.size() != 8 || version.substr(0, 5) != "HTTP/" || version[6] != '.' ||
      version[5] < '0' || version[5] > '9' || version[7] < '0' || version[7] > '9') {
    return ParseStatus::BadRequest;
  }
  req.version_major = version[5] - '0';
  req.version_minor = version[7] - '0';
  size_t q = req.target.find('?');
  req.path = req.target.substr(0, q);
  req.query = q == std::string_view::npos ? std::string_view{} : req.target.substr(q + 1);

  req.header_count = 0;
  size_t pos = eol + 2;
  while (pos < head.size()) {
    size_t next = head.find("\r\n", pos);
    std::string_view hl = head.substr(pos, next - pos);
    pos = next + 2;
    if (hl.empty()) break;
    // Obsolete line folding (a line starting with SP/HT) is rejected (RFC 9112 §5.2).
    if (hl.front() == ' ' || hl.front() == '\t') return ParseStatus::BadRequest;
    size_t colon = hl.find(':');
    if (colon == std::string_view::npos || colon == 0) return ParseStatus::BadRequest;
    std::string_view name = hl.substr(0, colon);
    for (char c : name) {
      if (!is_tchar(c)) return ParseStatus::BadRequest;
    }
    std::string_view value = trim(hl.substr(colon + 1));
    for (char c : value) {
      auto u = static_cast<unsigned char>(c);
      if ((u < 32 && c != '\t') || u == 127) return ParseStatus::BadRequest;
    }
    if (req.header_count == Request::kMaxHeaders) return ParseStatus::HeadersTooLarge;
    req.headers[req.header_count++] = Header{name, value};
  }
  return ParseStatus::Complete;
}

std::optional<std::string> query_param(std::string_view query, std::string_view name) {
  while (!query.empty()) {
    size_t amp = query.find('&');
    std::string_view pair = query.substr(0, amp);
    size_t eq = pair.find('=');
    std::string_view key = pair.substr(0, eq);
    if (key == name) {
      std::string_view raw = eq == std::string_view::npos ? std::string_view{} : pair.substr(eq + 1);
      std::string out;
      out.reserve(raw.size());
      for (size_t i = 0; i < raw.size(); ++i) {
        if (raw[i] == '%') {
          if (i + 2 >= raw.size()) return std::nullopt;
          int hi = hexval(raw[i + 1]);
          int lo = hexval(raw[i + 2]);
          if (hi < 0 || lo < 0) return std::nullopt;
          out.push_back(static_cast<char>(hi * 16 + lo));
          i += 2;
        } else if (raw[i] == '+') {
          out.push_back(' ');
        } else {
          out.push_back(raw[i]);
        }
      }
      return out;
    }
    if (amp == std::string_view::npos) break;
    query.remove_prefix(amp + 1);
  }
  return std::nullopt;
}

}  // namespace wstrace::http
