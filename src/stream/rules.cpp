#include "stream/rules.h"

#include <charconv>

#include "util/units.h"

namespace wstrace::stream {
namespace {

constexpr size_t kMaxPattern = 256;
constexpr uint64_t kMaxHistorySize = 1'000'000;

bool pattern_char(char c) {
  return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
         c == '_' || c == '.' || c == ':' || c == '/' || c == '-' || c == '*' || c == '?' ||
         c == '{' || c == '}';
}

// Braces only as the placeholder "{sub}".
bool braces_ok(std::string_view p) {
  for (size_t i = 0; i < p.size(); ++i) {
    if (p[i] == '{') {
      if (p.compare(i, 5, "{sub}") != 0) return false;
      i += 4;
    } else if (p[i] == '}') {
      return false;
    }
  }
  return true;
}

bool parse_access(const RawValue& v, bool for_publish, Access& out) {
  if (v.kind != RawValue::Kind::String) return false;
  if (v.text == "anyone") out = Access::Anyone;
  else if (v.text == "authenticated") out = Access::Authenticated;
  else if (v.text == "claim") out = Access::Claim;
  else if (for_publish && v.text == "subscribers") out = Access::Subscribers;
  else if (for_publish && v.text == "api") out = Access::Api;
  else return false;
  return true;
}

std::string where(size_t index, std::string_view key, const RawValue* v) {
  std::string out = "channel rule " + std::to_string(index);
  if (v != nullptr && v->line > 0) out += " (line " + std::to_string(v->line) + ")";
  if (!key.empty()) out += ": '" + std::string(key) + "'";
  return out;
}

}  // namespace

const char* access_name(Access a) {
  switch (a) {
    case Access::Default: return "default";
    case Access::Anyone: return "anyone";
    case Access::Authenticated: return "authenticated";
    case Access::Subscribers: return "subscribers";
    case Access::Claim: return "claim";
    case Access::Api: return "api";
  }
  return "?";
}

bool glob_match(std::string_view pattern, std::string_view name, const std::string_view* user) {
  static constexpr std::string_view kSub = "{sub}";
  // Greedy with one backtrack point per '*': linear for the usual patterns,
  // O(pattern x name) at worst (both are bounded in length).
  size_t p = 0, n = 0;
  size_t star = std::string_view::npos, resume = 0;
  while (n < name.size()) {
    if (p < pattern.size() && pattern.compare(p, kSub.size(), kSub) == 0) {
      if (user == nullptr) {  // like '*'
        star = p;
        p += kSub.size();
        resume = n;
        continue;
      }
      if (name.compare(n, user->size(), *user) == 0 && !user->empty()) {
        p += kSub.size();
        n += user->size();
        continue;
      }
      if (star == std::string_view::npos) return false;
      p = star + (pattern[star] == '*' ? 1 : kSub.size());
      n = ++resume;
    } else if (p < pattern.size() && (pattern[p] == '?' || pattern[p] == name[n])) {
      ++p;
      ++n;
    } else if (p < pattern.size() && pattern[p] == '*') {
      star = p++;
      resume = n;
    } else if (star != std::string_view::npos) {
      p = star + (pattern[star] == '*' ? 1 : kSub.size());
      n = ++resume;
    } else {
      return false;
    }
  }
  while (p < pattern.size()) {
    if (pattern[p] == '*') {
      ++p;
    } else if (user == nullptr && pattern.compare(p, kSub.size(), kSub) == 0) {
      p += kSub.size();
    } else if (user != nullptr && user->empty() && pattern.compare(p, kSub.size(), kSub) == 0) {
      return false;
    } else {
      break;
    }
  }
  return p == pattern.size();
}

const ChannelRule* Rules::find(std::string_view channel, const std::string_view* user) const {
  for (const auto& r : rules_) {
    if (glob_match(r.match, channel, user)) return &r;
  }
  return nullptr;
}

bool Rules::any_history() const {
  for (const auto& r : rules_) {
    if (r.has_history()) return true;
  }
  return false;
}

bool Rules::any_presence() const {
  for (const auto& r : rules_) {
    if (r.tracks_members()) return true;
  }
  return false;
}

bool build_rules(const std::vector<RawRule>& raw, std::vector<ChannelRule>& out,
                 std::string& error) {
  std::vector<ChannelRule> rules;
  for (size_t i = 0; i < raw.size(); ++i) {
    const size_t index = i + 1;
    ChannelRule rule;
    rule.index = index;
    bool has_match = false, has_ttl = false;
    for (const auto& [key, v] : raw[i]) {
      if (key == "match") {
        if (v.kind != RawValue::Kind::String) {
          error = where(index, key, &v) + " must be a text (a glob such as \"room:*\")";
          return false;
        }
        if (v.text.empty() || v.text.size() > kMaxPattern) {
          error = where(index, key, &v) + " must be 1 to 256 characters";
          return false;
        }
        bool chars_ok = braces_ok(v.text);
        for (char c : v.text) chars_ok = chars_ok && pattern_char(c);
        if (!chars_ok) {
          error = where(index, key, &v) + ": '" + v.text +
                  "' may hold only channel name characters (A-Z a-z 0-9 _ . : / -), the "
                  "wildcards * and ?, and {sub} (the client's own user id)";
          return false;
        }
        rule.match = v.text;
        has_match = true;
      } else if (key == "history_size") {
        uint64_t n = 0;
        auto r = std::from_chars(v.text.data(), v.text.data() + v.text.size(), n);
        if (v.kind != RawValue::Kind::Integer || r.ec != std::errc() ||
            r.ptr != v.text.data() + v.text.size() || n > kMaxHistorySize) {
          error = where(index, key, &v) + ": '" + v.text +
                  "' is not a whole number from 0 to 1000000 (0 = no history)";
          return false;
        }
        rule.history_size = static_cast<uint32_t>(n);
      } else if (key == "history_ttl") {
        auto ns = v.kind == RawValue::Kind::String ? parse_duration_ns(v.text) : std::nullopt;
        if (!ns) {
          error = where(index, key, &v) + ": '" + v.text +
                  "' is not a duration in quotes (examples: \"30s\", \"10m\", \"24h\")";
          return false;
        }
        rule.history_ttl_ns = *ns;
        has_ttl = true;
      } else if (key == "subscribe") {
        if (!parse_access(v, false, rule.subscribe)) {
          error = where(index, key, &v) + ": '" + v.text +
                  "' is not one of \"anyone\", \"authenticated\", \"claim\"";
          return false;
        }
      } else if (key == "publish") {
        if (!parse_access(v, true, rule.publish)) {
          error = where(index, key, &v) + ": '" + v.text +
                  "' is not one of \"anyone\", \"authenticated\", \"subscribers\", "
                  "\"claim\", \"api\"";
          return false;
        }
      } else if (key == "presence" || key == "join_leave" || key == "propagate") {
        if (v.kind != RawValue::Kind::Boolean) {
          error = where(index, key, &v) + ": '" + v.text + "' is not true or false";
          return false;
        }
        (key == "presence" ? rule.presence : key == "join_leave" ? rule.join_leave : rule.propagate) =
            v.text == "true";
      } else {
        error = where(index, key, &v) +
                " is not a channel rule key (match, history_size, history_ttl, subscribe, publish, "
                "presence, join_leave, propagate)";
        return false;
      }
    }
    if (!has_match) {
      error = where(index, "", nullptr) + ": 'match' is required (a glob such as \"room:*\")";
      return false;
    }
    if (has_ttl && rule.history_size == 0 && rule.history_ttl_ns > 0) {
      error = where(index, "history_ttl", nullptr) +
              " needs a history_size above 0 (nothing is kept without one)";
      return false;
    }
    rules.push_back(std::move(rule));
  }
  out = std::move(rules);
  return true;
}

}  // namespace wstrace::stream
