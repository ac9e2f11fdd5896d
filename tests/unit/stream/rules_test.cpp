// Channel rules: glob matching, first match wins, and every check of
// build_rules naming the rule and the key.
#include "stream/rules.h"

#include <gtest/gtest.h>

namespace wstrace::stream {
namespace {

RawValue str(std::string s, size_t line = 0) {
  return {RawValue::Kind::String, std::move(s), line};
}
RawValue num(std::string s, size_t line = 0) {
  return {RawValue::Kind::Integer, std::move(s), line};
}

TEST(Glob, StarsAndQuestionMarks) {
  EXPECT_TRUE(glob_match("room:*", "room:1"));
  EXPECT_TRUE(glob_match("room:*", "room:"));
  EXPECT_TRUE(glob_match("room:*", "room:a:b/c"));
  EXPECT_FALSE(glob_match("room:*", "rooms:1"));
  EXPECT_FALSE(glob_match("room:*", "room"));
  EXPECT_TRUE(glob_match("*", "anything"));
  EXPECT_TRUE(glob_match("*", ""));
  EXPECT_TRUE(glob_match("a?c", "abc"));
  EXPECT_FALSE(glob_match("a?c", "ac"));
  EXPECT_TRUE(glob_match("*:news", "eu:news"));
  EXPECT_FALSE(glob_match("*:news", "eu:newsx"));
  EXPECT_TRUE(glob_match("a*b*c", "aXXbYYc"));
  EXPECT_TRUE(glob_match("a*b*c", "abc"));
  EXPECT_FALSE(glob_match("a*b*c", "aXXbYY"));
  EXPECT_TRUE(glob_match("exact", "exact"));
  EXPECT_FALSE(glob_match("exact", "exactly"));
  EXPECT_TRUE(glob_match("**x", "x"));
}

TEST(Glob, PathologicalPatternsStayFast) {
  // Bounded work even for patterns that make naive backtracking explode.
  std::string name(128, 'a');
  std::string pattern;
  for (int i = 0; i < 40; ++i) pattern += "*a";
  pattern += "b";
  EXPECT_FALSE(glob_match(pattern, name));
}

TEST(Rules, FirstMatchWins) {
  std::vector<ChannelRule> built;
  std::string error;
  ASSERT_TRUE(build_rules({{{"match", str("room:vip:*")}, {"history_size", num("500")}},
                           {{"match", str("room:*")}, {"history_size", num("100")},
                            {"history_ttl", str("10m")}},
                           {{"match", str("*")}}},
                          built, error))
      << error;
  Rules rules(built);
  ASSERT_NE(rules.find("room:vip:1"), nullptr);
  EXPECT_EQ(rules.find("room:vip:1")->history_size, 500u);
  EXPECT_EQ(rules.find("room:vip:1")->index, 1u);
  EXPECT_EQ(rules.find("room:2")->history_size, 100u);
  EXPECT_EQ(rules.find("room:2")->history_ttl_ns, 600'000'000'000ull);
  EXPECT_EQ(rules.find("news")->history_size, 0u);
  EXPECT_EQ(rules.find("news")->index, 3u);
  EXPECT_TRUE(rules.any_history());
  EXPECT_EQ(Rules().find("room:1"), nullptr);  // no rules: the defaults
  EXPECT_FALSE(Rules().any_history());
}

void expect_refused(const std::vector<RawRule>& raw, const std::string& what) {
  std::vector<ChannelRule> built{ChannelRule{}};
  std::string error;
  EXPECT_FALSE(build_rules(raw, built, error)) << what;
  EXPECT_NE(error.find(what), std::string::npos) << "message: " << error;
  EXPECT_EQ(built.size(), 1u) << "the output is untouched";
}

TEST(Rules, EveryBadValueNamesTheRuleAndTheKey) {
  expect_refused({{{"history_size", num("5")}}}, "channel rule 1: 'match' is required");
  expect_refused({{{"match", str("a")}}, {{"match", num("5", 7)}}},
                 "channel rule 2 (line 7): 'match' must be a text");
  expect_refused({{{"match", str("bad name!")}}}, "channel rule 1: 'match'");
  expect_refused({{{"match", str("")}}}, "must be 1 to 256");
  expect_refused({{{"match", str("a")}, {"history_size", num("-1")}}},
                 "channel rule 1: 'history_size': '-1' is not a whole number");
  expect_refused({{{"match", str("a")}, {"history_size", num("1000001")}}}, "'history_size'");
  expect_refused({{{"match", str("a")}, {"history_size", str("10")}}}, "'history_size'");
  expect_refused({{{"match", str("a")}, {"history_size", num("5")}, {"history_ttl", str("soon")}}},
                 "'history_ttl': 'soon' is not a duration");
  expect_refused({{{"match", str("a")}, {"history_ttl", str("10m")}}},
                 "'history_ttl' needs a history_size above 0");
  expect_refused({{{"match", str("a")}, {"colour", str("red")}}},
                 "'colour' is not a channel rule key");
}

TEST(Rules, PropagateIsABoolean) {
  expect_refused({{{"match", str("a")}, {"propagate", str("on", 3)}}},
                 "channel rule 1 (line 3): 'propagate': 'on' is not true or false");
  std::vector<ChannelRule> rules;
  std::string error;
  ASSERT_TRUE(build_rules({{{"match", str("a")},
                            {"propagate", RawValue{RawValue::Kind::Boolean, "true", 1}}}},
                          rules, error))
      << error;
  EXPECT_TRUE(rules[0].propagate);
}

TEST(Rules, PresenceAndJoinLeaveAreBooleans) {
  expect_refused({{{"match", str("a")}, {"presence", str("yes")}}}, "'presence': 'yes' is not true or false");
  expect_refused({{{"match", str("a")}, {"join_leave", num("1")}}}, "'join_leave': '1' is not true or false");
  std::vector<RawRule> raw{{{"match", str("room:*")},
                            {"presence", RawValue{RawValue::Kind::Boolean, "true", 1}},
                            {"join_leave", RawValue{RawValue::Kind::Boolean, "false", 2}}}};
  std::vector<ChannelRule> rules;
  std::string error;
  ASSERT_TRUE(build_rules(raw, rules, error)) << error;
  EXPECT_TRUE(rules[0].presence);
  EXPECT_FALSE(rules[0].join_leave);
  EXPECT_TRUE(Rules(rules).any_presence());
}

TEST(Glob, SubIsTheUserExactly) {
  const std::string_view alice = "alice", star = "a*";
  EXPECT_TRUE(glob_match("user:{sub}", "user:alice", &alice));
  EXPECT_FALSE(glob_match("user:{sub}", "user:bob", &alice));
  EXPECT_FALSE(glob_match("user:{sub}", "user:alicex", &alice));
  EXPECT_TRUE(glob_match("user:{sub}:*", "user:alice:inbox", &alice));
  EXPECT_FALSE(glob_match("user:{sub}:*", "user:bob:inbox", &alice));
  EXPECT_TRUE(glob_match("*:{sub}", "dm:x:alice", &alice));
  // A user id with wildcard characters is still literal text.
  EXPECT_FALSE(glob_match("user:{sub}", "user:abc", &star));
  EXPECT_TRUE(glob_match("user:{sub}", "user:a*", &star));
  // Without a user (history lookups) it matches like '*'.
  EXPECT_TRUE(glob_match("user:{sub}", "user:bob"));
  EXPECT_TRUE(glob_match("user:{sub}:inbox", "user:bob:inbox"));
  EXPECT_FALSE(glob_match("user:{sub}:inbox", "user:bob:outbox"));
  const std::string_view none = "";
  EXPECT_FALSE(glob_match("user:{sub}", "user:", &none));
}

TEST(Rules, WhoMaySubscribeAndPublish) {
  std::vector<ChannelRule> built;
  std::string error;
  ASSERT_TRUE(build_rules({{{"match", str("user:{sub}")}, {"subscribe", str("authenticated")},
                            {"publish", str("api")}},
                           {{"match", str("user:*")}, {"subscribe", str("claim")}},
                           {{"match", str("room:*")}, {"publish", str("subscribers")}},
                           {{"match", str("open:*")}, {"subscribe", str("anyone")},
                            {"publish", str("anyone")}}},
                          built, error))
      << error;
  Rules rules(built);
  const std::string_view alice = "alice";
  EXPECT_EQ(rules.find("user:alice", &alice)->index, 1u);
  EXPECT_EQ(rules.find("user:bob", &alice)->index, 2u);  // not hers: the next rule
  EXPECT_EQ(rules.find("user:bob")->index, 1u);          // no user: {sub} is '*'
  EXPECT_EQ(rules.find("user:alice", &alice)->publish, Access::Api);
  EXPECT_EQ(rules.find("user:bob", &alice)->subscribe, Access::Claim);
  EXPECT_EQ(rules.find("room:1")->publish, Access::Subscribers);
  EXPECT_EQ(rules.find("room:1")->subscribe, Access::Default);
  EXPECT_EQ(rules.find("open:x")->subscribe, Access::Anyone);
  expect_refused({{{"match", str("a")}, {"subscribe", str("subscribers")}}},
                 "'subscribe': 'subscribers' is not one of");
  expect_refused({{{"match", str("a")}, {"publish", str("everyone")}}}, "'publish': 'everyone'");
  expect_refused({{{"match", str("a")}, {"publish", num("1")}}}, "'publish'");
  expect_refused({{{"match", str("user:{user}")}}}, "'match'");
  expect_refused({{{"match", str("user:{sub")}}}, "'match'");
}

TEST(Rules, NoRulesIsFine) {
  std::vector<ChannelRule> built{ChannelRule{}};
  std::string error;
  EXPECT_TRUE(build_rules({}, built, error));
  EXPECT_TRUE(built.empty());
}

}  // namespace
}  // namespace wstrace::stream
