// Channel rules: what a channel keeps and allows, chosen by the first rule
// whose glob matches its name. Channels matching no rule get the defaults:
// no history, and anyone may subscribe and publish.
//
//   [[channel]]
//   match = "room:*"
//   history_size = 100
//   history_ttl = "10m"
//
// build_rules() checks raw key/value pairs (read from TOML by the
// configuration) without doing any I/O, so it is unit-tested and fuzzed.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace wstrace::stream {

// Who may do something on a channel. Default: anyone when the server needs
// no authentication, authenticated clients when it does.
enum class Access : uint8_t { Default, Anyone, Authenticated, Subscribers, Claim, Api };
const char* access_name(Access a);

struct ChannelRule {
  std::string match;              // glob: '*' any run of characters, '?' one
  uint32_t history_size = 0;      // messages kept; 0 = no history
  uint64_t history_ttl_ns = 0;    // how long each is kept; 0 = until trimmed by size
  Access subscribe = Access::Default;  // Subscribe and History: anyone|authenticated|claim
  Access publish = Access::Default;    // Message: anyone|authenticated|subscribers|claim|api
  bool presence = false;          // Presence requests: who is subscribed
  bool join_leave = false;        // subscribers get Join and Leave
  bool propagate = false;         // delivered Messages carry the publication's traceparent
  size_t index = 0;               // 1-based position among the rules
  bool has_history() const { return history_size > 0; }
  bool tracks_members() const { return presence || join_leave; }
};

// '*' matches any run of characters (':' and '/' included), '?' exactly one.
// "{sub}" matches the text `user` exactly (a connection's user id, never a
// wildcard whatever it holds); without a user it matches like '*'.
bool glob_match(std::string_view pattern, std::string_view name,
                const std::string_view* user = nullptr);

class Rules {
 public:
  Rules() = default;
  explicit Rules(std::vector<ChannelRule> rules) : rules_(std::move(rules)) {}

  // The first rule that matches, or null (the defaults). With `user`, a
  // "{sub}" in a rule's match is that user; without, it matches anything.
  const ChannelRule* find(std::string_view channel, const std::string_view* user = nullptr) const;
  const std::vector<ChannelRule>& all() const { return rules_; }
  bool empty() const { return rules_.empty(); }
  // Whether any rule keeps history; whether any has presence or join_leave.
  bool any_history() const;
  bool any_presence() const;

 private:
  std::vector<ChannelRule> rules_;
};

// One value of a rule as the configuration read it.
struct RawValue {
  enum class Kind : uint8_t { String, Integer, Boolean, Float, Other };
  Kind kind = Kind::Other;
  std::string text;  // strings as they are; numbers and booleans as written
  size_t line = 0;   // where in the file, for messages (0: unknown)
};
using RawRule = std::vector<std::pair<std::string, RawValue>>;

// Checks every rule and key; false with `error` naming the rule (1-based
// index), the key and what is wrong. Keys that belong to features this
// version does not have are refused with "not supported yet", so no key is
// ever silently ignored.
bool build_rules(const std::vector<RawRule>& raw, std::vector<ChannelRule>& out,
                 std::string& error);

}  // namespace wstrace::stream
