// load_config: flag > environment > TOML file > default, every kind of
// value, and bad values exiting with code 2 and a message naming the option.
#include "server/config.h"

#include <gtest/gtest.h>
#include <unistd.h>

#include <cstdlib>
#include <fstream>
#include <string>
#include <vector>

extern char** environ;

namespace wstrace::server {
namespace {

class ConfigTest : public ::testing::Test {
 protected:
  void SetUp() override {
    // Start from an environment without any WSTRACE_ variable.
    std::vector<std::string> names;
    for (char** e = environ; *e != nullptr; ++e) {
      std::string_view kv(*e);
      if (kv.rfind("WSTRACE_", 0) == 0) names.emplace_back(kv.substr(0, kv.find('=')));
    }
    for (const auto& n : names) unsetenv(n.c_str());
  }
  void TearDown() override {
    for (const auto& n : set_env_) unsetenv(n.c_str());
    for (const auto& f : files_) std::remove(f.c_str());
  }

  void env(const std::string& name, const std::string& value) {
    setenv(name.c_str(), value.c_str(), 1);
    set_env_.push_back(name);
  }

  std::string toml(const std::string& text) {
    std::string path = testing::TempDir() + "wstrace_config_test_" + std::to_string(getpid()) +
                       "_" + std::to_string(files_.size()) + ".toml";
    std::ofstream(path) << text;
    files_.push_back(path);
    return path;
  }

  // Runs load_config with these arguments; captures what it prints.
  int load(std::vector<std::string> args) {
    args.insert(args.begin(), "wstrace");
    std::vector<char*> argv;
    for (auto& a : args) argv.push_back(a.data());
    argv.push_back(nullptr);
    testing::internal::CaptureStderr();
    testing::internal::CaptureStdout();
    int rc = load_config(static_cast<int>(args.size()), argv.data(), cfg_);
    out_ = testing::internal::GetCapturedStdout();
    err_ = testing::internal::GetCapturedStderr();
    return rc;
  }

  // A bad value: exit code 2 and a message that names `option`.
  void expect_bad(std::vector<std::string> args, const std::string& option) {
    Config before = cfg_;
    EXPECT_EQ(load(std::move(args)), 2) << option;
    EXPECT_NE(err_.find(option), std::string::npos) << "message: " << err_;
    EXPECT_EQ(cfg_.listen, before.listen);  // the output is not half-filled
  }

  Config cfg_;
  std::string out_, err_;
  std::vector<std::string> set_env_, files_;
};

TEST_F(ConfigTest, Defaults) {
  ASSERT_EQ(load({}), -1) << err_;
  EXPECT_EQ(cfg_.listen, "0.0.0.0:8080");
  EXPECT_EQ(cfg_.admin, "127.0.0.1:9464");
  EXPECT_TRUE(cfg_.admin_enabled());
  EXPECT_EQ(cfg_.threads, 0u);
  EXPECT_EQ(cfg_.redis, "");
  EXPECT_EQ(cfg_.redis_prefix, "wstrace");
  EXPECT_FALSE(cfg_.node_id.empty());  // <hostname>-<pid>
  EXPECT_EQ(cfg_.heartbeat_interval_ns, 30'000'000'000ull);
  EXPECT_EQ(cfg_.client_timeout_ns, 60'000'000'000ull);
  EXPECT_EQ(cfg_.shutdown_timeout_ns, 10'000'000'000ull);
  EXPECT_EQ(cfg_.max_message_size, 1u << 20);
  EXPECT_EQ(cfg_.max_backpressure, 1u << 20);
  EXPECT_EQ(cfg_.max_connections, 0u);
  EXPECT_EQ(cfg_.max_subscriptions, 100u);
  EXPECT_FALSE(cfg_.compression);
  EXPECT_TRUE(cfg_.allowed_origins.empty());
  EXPECT_FALSE(cfg_.echo);
  EXPECT_EQ(cfg_.log_level, log::Level::Info);
  EXPECT_EQ(cfg_.log_format, log::Format::Text);
}

TEST_F(ConfigTest, Flags) {
  ASSERT_EQ(load({"--listen", "127.0.0.1:9000", "--admin", "off", "--threads", "3",
                  "--redis", "redis://r:6379", "--node-id", "edge-1", "--redis-prefix", "eu.chat",
                  "--heartbeat-interval", "500ms", "--client-timeout", "2m",
                  "--max-message-size", "64KiB", "--max-backpressure", "2MiB",
                  "--max-connections", "50000", "--max-subscriptions", "7",
                  "--compression", "on", "--allowed-origins", "https://a.com, https://*.b.com,,",
                  "--log-level", "debug", "--log-format", "json", "--shutdown-timeout", "1s",
                  "--echo"}),
            -1)
      << err_;
  EXPECT_EQ(cfg_.listen, "127.0.0.1:9000");
  EXPECT_FALSE(cfg_.admin_enabled());
  EXPECT_EQ(cfg_.threads, 3u);
  EXPECT_EQ(cfg_.redis, "redis://r:6379");
  EXPECT_EQ(cfg_.node_id, "edge-1");
  EXPECT_EQ(cfg_.redis_prefix, "eu.chat");
  EXPECT_EQ(cfg_.heartbeat_interval_ns, 500'000'000u);
  EXPECT_EQ(cfg_.client_timeout_ns, 120'000'000'000u);
  EXPECT_EQ(cfg_.max_message_size, 65536u);
  EXPECT_EQ(cfg_.max_backpressure, 2u << 20);
  EXPECT_EQ(cfg_.max_connections, 50000u);
  EXPECT_EQ(cfg_.max_subscriptions, 7u);
  EXPECT_TRUE(cfg_.compression);
  EXPECT_EQ(cfg_.allowed_origins, (std::vector<std::string>{"https://a.com", "https://*.b.com"}));
  EXPECT_EQ(cfg_.log_level, log::Level::Debug);
  EXPECT_EQ(cfg_.log_format, log::Format::Json);
  EXPECT_EQ(cfg_.shutdown_timeout_ns, 1'000'000'000u);
  EXPECT_TRUE(cfg_.echo);
}

TEST_F(ConfigTest, FlagEqualsSyntaxAndBooleans) {
  ASSERT_EQ(load({"--max-message-size=2MiB", "--echo=false", "--compression=off"}), -1) << err_;
  EXPECT_EQ(cfg_.max_message_size, 2u << 20);
  EXPECT_FALSE(cfg_.echo);
  EXPECT_FALSE(cfg_.compression);
  for (const char* yes : {"true", "1", "on", "yes"}) {
    ASSERT_EQ(load({std::string("--compression=") + yes}), -1) << yes;
    EXPECT_TRUE(cfg_.compression) << yes;
  }
}

TEST_F(ConfigTest, Environment) {
  env("WSTRACE_MAX_MESSAGE_SIZE", "2MiB");
  env("WSTRACE_HEARTBEAT_INTERVAL", "5s");
  env("WSTRACE_COMPRESSION", "on");
  env("WSTRACE_ALLOWED_ORIGINS", "https://x.com");
  env("WSTRACE_ECHO", "true");
  ASSERT_EQ(load({}), -1) << err_;
  EXPECT_EQ(cfg_.max_message_size, 2u << 20);
  EXPECT_EQ(cfg_.heartbeat_interval_ns, 5'000'000'000u);
  EXPECT_TRUE(cfg_.compression);
  EXPECT_EQ(cfg_.allowed_origins, std::vector<std::string>{"https://x.com"});
  EXPECT_TRUE(cfg_.echo);
}

TEST_F(ConfigTest, TomlFile) {
  std::string path = toml(R"(
listen = "127.0.0.1:7000"
max-message-size = "256KiB"
max_backpressure = 65536          # an integer size, underscores in the key
heartbeat-interval = "10s"
client-timeout = 90               # a bare number of seconds
compression = true
allowed-origins = ["https://a.com", "https://b.com"]
max-subscriptions = 12
log-level = "warn"
)");
  ASSERT_EQ(load({"--config", path}), -1) << err_;
  EXPECT_EQ(cfg_.listen, "127.0.0.1:7000");
  EXPECT_EQ(cfg_.max_message_size, 256u << 10);
  EXPECT_EQ(cfg_.max_backpressure, 65536u);
  EXPECT_EQ(cfg_.heartbeat_interval_ns, 10'000'000'000u);
  EXPECT_EQ(cfg_.client_timeout_ns, 90'000'000'000u);
  EXPECT_TRUE(cfg_.compression);
  EXPECT_EQ(cfg_.allowed_origins, (std::vector<std::string>{"https://a.com", "https://b.com"}));
  EXPECT_EQ(cfg_.max_subscriptions, 12u);
  EXPECT_EQ(cfg_.log_level, log::Level::Warn);
}

TEST_F(ConfigTest, ConfigFileFromTheEnvironment) {
  std::string path = toml("max-subscriptions = 9\n");
  env("WSTRACE_CONFIG", path);
  ASSERT_EQ(load({}), -1) << err_;
  EXPECT_EQ(cfg_.max_subscriptions, 9u);
}

TEST_F(ConfigTest, PrecedenceFlagOverEnvOverFileOverDefault) {
  std::string path = toml(
      "max-message-size = \"3MiB\"\nheartbeat-interval = \"3s\"\nmax-subscriptions = 3\n"
      "listen = \"127.0.0.1:3003\"\n");
  env("WSTRACE_MAX_MESSAGE_SIZE", "2MiB");
  env("WSTRACE_HEARTBEAT_INTERVAL", "2s");
  env("WSTRACE_LOG_LEVEL", "error");
  ASSERT_EQ(load({"--config", path, "--max-message-size", "1KiB"}), -1) << err_;
  EXPECT_EQ(cfg_.max_message_size, 1024u);                  // flag
  EXPECT_EQ(cfg_.heartbeat_interval_ns, 2'000'000'000u);    // env over file
  EXPECT_EQ(cfg_.max_subscriptions, 3u);                    // file over default
  EXPECT_EQ(cfg_.listen, "127.0.0.1:3003");                 // file
  EXPECT_EQ(cfg_.log_level, log::Level::Error);             // env over default
  EXPECT_EQ(cfg_.client_timeout_ns, 60'000'000'000u);       // default
  // Without the flag, the environment wins; without both, the file.
  ASSERT_EQ(load({"--config", path}), -1) << err_;
  EXPECT_EQ(cfg_.max_message_size, 2u << 20);
  unsetenv("WSTRACE_MAX_MESSAGE_SIZE");
  ASSERT_EQ(load({"--config", path}), -1) << err_;
  EXPECT_EQ(cfg_.max_message_size, 3u << 20);
  ASSERT_EQ(load({}), -1) << err_;
  EXPECT_EQ(cfg_.max_message_size, 1u << 20);
}

TEST_F(ConfigTest, UnknownTomlKeyIsAnError) {
  std::string path = toml("listen = \"127.0.0.1:1\"\nmax-mesage-size = \"1MiB\"\n");
  EXPECT_EQ(load({"--config", path}), 2);
  EXPECT_NE(err_.find("max-mesage-size"), std::string::npos) << err_;
  path = toml("[server]\nlisten = \"127.0.0.1:1\"\n");
  EXPECT_EQ(load({"--config", path}), 2);
  EXPECT_NE(err_.find("server"), std::string::npos) << err_;
}

TEST_F(ConfigTest, BrokenTomlOrMissingFile) {
  std::string path = toml("listen = \n");
  EXPECT_EQ(load({"--config", path}), 2);
  EXPECT_NE(err_.find("--config"), std::string::npos) << err_;
  EXPECT_EQ(load({"--config", "/nonexistent/wstrace.toml"}), 2);
  EXPECT_NE(err_.find("/nonexistent/wstrace.toml"), std::string::npos) << err_;
}

TEST_F(ConfigTest, UnknownFlag) {
  EXPECT_EQ(load({"--no-such-option", "1"}), 2);
  EXPECT_EQ(load({"--max-message-size"}), 2);  // missing value
}

TEST_F(ConfigTest, BadValuesNameTheOption) {
  expect_bad({"--max-message-size", "lots"}, "--max-message-size");
  expect_bad({"--max-backpressure", "1 MiBs"}, "--max-backpressure");
  expect_bad({"--max-content-size", "-5"}, "--max-content-size");
  expect_bad({"--heartbeat-interval", "soon"}, "--heartbeat-interval");
  expect_bad({"--client-timeout", "30 fortnights"}, "--client-timeout");
  expect_bad({"--shutdown-timeout", "-1s"}, "--shutdown-timeout");
  expect_bad({"--handshake-timeout", ""}, "--handshake-timeout");
  expect_bad({"--threads", "many"}, "--threads");
  expect_bad({"--threads", "-1"}, "--threads");
  expect_bad({"--threads", "1000"}, "--threads");
  expect_bad({"--max-subscriptions", "65536"}, "--max-subscriptions");
  expect_bad({"--max-connections", "1e6"}, "--max-connections");
  expect_bad({"--compression", "maybe"}, "--compression");
  expect_bad({"--echo=perhaps"}, "--echo");
  expect_bad({"--log-level", "loud"}, "--log-level");
  expect_bad({"--log-format", "xml"}, "--log-format");
  expect_bad({"--redis-prefix", ""}, "--redis-prefix");
  expect_bad({"--redis-prefix", "two words"}, "--redis-prefix");
  expect_bad({"--redis-prefix", std::string(65, 'p')}, "--redis-prefix");
  // The cross-option limits.
  expect_bad({"--max-message-size", "100"}, "--max-message-size");
  expect_bad({"--max-backpressure", "512"}, "--max-backpressure");
}

TEST_F(ConfigTest, SizesBeyondWhatTheEngineHandles) {
  // Frames, buffers and the outbound queue count in 32 bits.
  expect_bad({"--max-message-size", "5GiB"}, "--max-message-size");
  expect_bad({"--max-backpressure", "8GiB"}, "--max-backpressure");
  expect_bad({"--max-content-size", "4GiB"}, "--max-content-size");
  ASSERT_EQ(load({"--max-message-size", "1GiB", "--max-backpressure", "1GiB"}), -1) << err_;
  EXPECT_EQ(cfg_.max_message_size, 1u << 30);
}

TEST_F(ConfigTest, BadValuesFromTheEnvironmentAndTheFile) {
  env("WSTRACE_HEARTBEAT_INTERVAL", "often");
  expect_bad({}, "WSTRACE_HEARTBEAT_INTERVAL");
  unsetenv("WSTRACE_HEARTBEAT_INTERVAL");
  std::string path = toml("max-message-size = \"huge\"\n");
  expect_bad({"--config", path}, "max-message-size in " + path);
  path = toml("compression = \"sometimes\"\n");
  expect_bad({"--config", path}, "compression");
}

TEST_F(ConfigTest, HelpAndVersion) {
  EXPECT_EQ(load({"--help"}), 0);
  for (const char* opt : {"--listen", "--admin", "--threads", "--redis", "--node-id",
                          "--heartbeat-interval", "--client-timeout", "--max-message-size",
                          "--max-backpressure", "--max-connections", "--max-subscriptions",
                          "--compression", "--allowed-origins", "--log-level", "--log-format",
                          "--shutdown-timeout", "--echo", "--config", "WSTRACE_MAX_CONNECTIONS",
                          "OTEL_EXPORTER_OTLP_ENDPOINT"}) {
    EXPECT_NE(out_.find(opt), std::string::npos) << opt;
  }
  EXPECT_EQ(load({"--version"}), 0);
  EXPECT_NE(out_.find("wstrace"), std::string::npos) << out_;
}

TEST_F(ConfigTest, AddressesAreCheckedBeforeAnythingStarts) {
  expect_bad({"--listen", "nonsense"}, "--listen");
  expect_bad({"--listen", ":99999"}, "--listen");
  expect_bad({"--listen", "[::1"}, "--listen");
  expect_bad({"--admin", "127.0.0.1"}, "--admin");
  expect_bad({"--admin", "127.0.0.1:65536"}, "--admin");
  EXPECT_EQ(load({"--admin", "off", "--listen", "[::1]:0"}), -1) << err_;
  EXPECT_FALSE(cfg_.admin_enabled());
  EXPECT_EQ(load({"--listen", ":0"}), -1) << err_;
  std::string path = toml("listen = \"nowhere\"\n");
  expect_bad({"--config", path}, "listen in " + path);
}

TEST_F(ConfigTest, TomlTextWithoutQuotesSaysSo) {
  std::string path = toml("threads = 2\nlisten = 127.0.0.1:0\n");
  EXPECT_EQ(load({"--config", path}), 2);
  EXPECT_NE(err_.find("line 2"), std::string::npos) << err_;
  EXPECT_NE(err_.find("need quotes"), std::string::npos) << err_;
  EXPECT_NE(err_.find("listen = \"127.0.0.1:0\""), std::string::npos) << err_;
  // A real syntax error is not mistaken for missing quotes.
  path = toml("threads = [1,\n");
  EXPECT_EQ(load({"--config", path}), 2);
  EXPECT_EQ(err_.find("need quotes"), std::string::npos) << err_;
}

TEST_F(ConfigTest, SeveralBadValuesInAFileReportTheFirst) {
  // In file order, not in the order of the option table.
  std::string path = toml("max-message-size = \"huge\"\nthreads = \"x\"\nlisten = \"bad\"\n");
  EXPECT_EQ(load({"--config", path}), 2);
  EXPECT_NE(err_.find("max-message-size in"), std::string::npos) << err_;
  EXPECT_NE(err_.find("line 1"), std::string::npos) << err_;
  EXPECT_EQ(err_.find("threads"), std::string::npos) << err_;
  // A bad flag comes before the file's.
  EXPECT_EQ(load({"--config", path, "--threads", "many"}), 2);
  EXPECT_NE(err_.find("--threads"), std::string::npos) << err_;
  EXPECT_EQ(err_.find("max-message-size"), std::string::npos) << err_;
}

TEST_F(ConfigTest, NewLimits) {
  ASSERT_EQ(load({}), -1) << err_;
  EXPECT_FALSE(cfg_.reuse_port);
  EXPECT_EQ(cfg_.send_buffer, 128u << 10);
  EXPECT_EQ(cfg_.rate_burst, 0u);
  EXPECT_EQ(cfg_.stall_timeout_ns, 10'000'000'000ull);
  ASSERT_EQ(load({"--reuse-port", "--send-buffer", "0", "--rate-limit", "100000",
                  "--rate-burst", "5", "--stall-timeout", "2s"}),
            -1)
      << err_;
  EXPECT_TRUE(cfg_.reuse_port);
  EXPECT_EQ(cfg_.send_buffer, 0u);
  EXPECT_EQ(cfg_.rate_limit, 100000u);
  EXPECT_EQ(cfg_.rate_burst, 5u);
  EXPECT_EQ(cfg_.stall_timeout_ns, 2'000'000'000ull);
  expect_bad({"--send-buffer", "1GiB"}, "--send-buffer");
  expect_bad({"--stall-timeout", "10ms"}, "--stall-timeout");
  expect_bad({"--reuse-port=sometimes"}, "--reuse-port");
}

TEST_F(ConfigTest, ReloadReadsTheSameSourcesAgain) {
  std::string path = toml("log-level = \"info\"\nthreads = 2\n");
  ASSERT_EQ(load({"--config", path, "--node-id", "n1"}), -1) << err_;
  EXPECT_EQ(cfg_.args, (std::vector<std::string>{"--config", path, "--node-id", "n1"}));
  EXPECT_EQ(cfg_.config_file, path);
  EXPECT_EQ(cfg_.sources.at("log-level"), "info");
  EXPECT_EQ(cfg_.sources.at("node-id"), "n1");
  std::ofstream(path) << "log-level = \"debug\"\nthreads = 3\n";
  Config now = cfg_;
  std::string error;
  ASSERT_TRUE(reload_config(cfg_.args, now, error)) << error;
  EXPECT_EQ(now.log_level, log::Level::Debug);
  EXPECT_EQ(now.threads, 3u);  // read; the server decides what it can apply
  EXPECT_EQ(now.node_id, "n1");
  // A bad file is refused and leaves the running configuration alone.
  std::ofstream(path) << "log-level = \"loud\"\n";
  Config kept = now;
  EXPECT_FALSE(reload_config(cfg_.args, kept, error));
  EXPECT_NE(error.find("log-level"), std::string::npos) << error;
  EXPECT_EQ(kept.log_level, log::Level::Debug);
  EXPECT_TRUE(option_is_live("log-level"));
  EXPECT_TRUE(option_is_live("log-format"));
  EXPECT_FALSE(option_is_live("listen"));
  EXPECT_FALSE(option_is_live("threads"));
}

TEST_F(ConfigTest, ReloadKeepsAGeneratedNodeId) {
  ASSERT_EQ(load({}), -1) << err_;
  Config now = cfg_;
  now.node_id = "host-123";  // as generated at start
  std::string error;
  ASSERT_TRUE(reload_config(cfg_.args, now, error)) << error;
  EXPECT_EQ(now.node_id, "host-123");
}

TEST_F(ConfigTest, ChannelRulesFromTheFile) {
  std::string path = toml(
      "history-memory = \"8MiB\"\n"
      "[[channel]]\nmatch = \"room:*\"\nhistory_size = 100\nhistory_ttl = \"10m\"\n"
      "[[channel]]\nmatch = \"feed:*\"\nhistory_size = 5\n");
  ASSERT_EQ(load({"--config", path}), -1) << err_;
  ASSERT_EQ(cfg_.channel_rules.size(), 2u);
  EXPECT_EQ(cfg_.channel_rules[0].match, "room:*");
  EXPECT_EQ(cfg_.channel_rules[0].history_size, 100u);
  EXPECT_EQ(cfg_.channel_rules[0].history_ttl_ns, 600'000'000'000ull);
  EXPECT_EQ(cfg_.channel_rules[1].history_size, 5u);
  EXPECT_EQ(cfg_.history_memory, 8u << 20);
  EXPECT_EQ(cfg_.sources.count("channel"), 1u);
  EXPECT_TRUE(option_is_live("channel"));
}

TEST_F(ConfigTest, ABadChannelRuleNamesItsIndexAndKey) {
  std::string path = toml("[[channel]]\nmatch = \"a\"\n[[channel]]\nmatch = \"b\"\nhistory_size = -3\n");
  EXPECT_EQ(load({"--config", path}), 2);
  EXPECT_NE(err_.find("channel rule 2 (line 5): 'history_size'"), std::string::npos) << err_;
  path = toml("[[channel]]\nmatch = \"a\"\ncolour = 1\n");
  EXPECT_EQ(load({"--config", path}), 2);
  EXPECT_NE(err_.find("'colour' is not a channel rule key"), std::string::npos) << err_;
  path = toml("[[channel]]\nmatch = \"a\"\n[[channel]]\nmatch = \"room:*\"\npresence = true\n");
  EXPECT_EQ(load({"--config", path}), -1) << err_;
  EXPECT_EQ(load({"--config", path, "--presence-ttl", "500ms"}), 2);
  EXPECT_NE(err_.find("--presence-ttl"), std::string::npos) << err_;
  path = toml("channel = \"room:*\"\n");
  EXPECT_EQ(load({"--config", path}), 2);
  EXPECT_NE(err_.find("[[channel]] tables"), std::string::npos) << err_;
}

TEST_F(ConfigTest, ReloadReadsNewChannelRules) {
  std::string path = toml("[[channel]]\nmatch = \"room:*\"\nhistory_size = 10\n");
  ASSERT_EQ(load({"--config", path}), -1) << err_;
  std::ofstream(path) << "[[channel]]\nmatch = \"room:*\"\nhistory_size = 20\n";
  Config now = cfg_;
  std::string error;
  ASSERT_TRUE(reload_config(cfg_.args, now, error)) << error;
  ASSERT_EQ(now.channel_rules.size(), 1u);
  EXPECT_EQ(now.channel_rules[0].history_size, 20u);
  EXPECT_NE(now.sources.at("channel"), cfg_.sources.at("channel"));
  std::ofstream(path) << "[[channel]]\nhistory_size = 20\n";  // no match: refused
  Config kept = now;
  EXPECT_FALSE(reload_config(cfg_.args, kept, error));
  EXPECT_NE(error.find("'match' is required"), std::string::npos) << error;
  EXPECT_EQ(kept.channel_rules[0].history_size, 20u);
}

}  // namespace
}  // namespace wstrace::server
