#include <doctest/doctest.h>

#include <chrono>
#include <set>

#include "doppel/testing.hpp"
#include "limit_filter.hpp"

using namespace doppel;
using doppel::testing::make_message;

namespace {
const PluginDefinition& limit() { return testing::linked_plugin("limit"); }

MessagePtr request(const std::string& target, const std::string& headers = "", const std::string& body = "") {
  std::string p = "POST " + target + " HTTP/1.1\r\nHost: a\r\n" + headers;
  if (!body.empty()) p += "Content-Type: application/json\r\nContent-Length: " + std::to_string(body.size()) + "\r\n";
  return make_message(Kind::request, p + "\r\n" + body);
}
}  // namespace

TEST_CASE("fnv1a32 is the standard FNV-1a (as Go's hash/fnv New32a)") {
  CHECK(plugins::fnv1a32("") == 2166136261u);
  CHECK(plugins::fnv1a32("a") == 0xe40c292cu);
  CHECK(plugins::fnv1a32("foobar") == 0xbf9cf968u);
}

TEST_CASE("rate in drop mode passes the burst, then one request per token") {
  testing::StageHarness h(limit(), Value::table({{"rate", "10/s"}, {"burst", 3}}));
  for (int i = 0; i < 10; ++i) h.process(request("/x"));
  CHECK(h.emitted().size() == 3);
  CHECK(h.dropped("rate_limited") == 7);
  std::this_thread::sleep_for(std::chrono::milliseconds(250));  // 2.5 tokens
  for (int i = 0; i < 5; ++i) h.process(request("/x"));
  CHECK(h.emitted().size() == 5);
}

TEST_CASE("rate in wait mode holds its rate and loses nothing") {
  testing::StageHarness h(limit(), Value::table({{"rate", "200/s"}, {"mode", "wait"}, {"burst", 1}}));
  auto start = std::chrono::steady_clock::now();
  for (int i = 0; i < 101; ++i) h.process(request("/x"));
  double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  CHECK(h.emitted().size() == 101);
  CHECK(h.drops().empty());
  // 100 intervals of 5ms after the first token.
  CHECK(seconds >= 0.45);
  CHECK(seconds < 0.8);
}

TEST_CASE("percent samples at random, repeatably with a seed") {
  auto run = [] {
    testing::StageHarness h(limit(), Value::table({{"percent", 10}, {"seed", 42}}));
    for (int i = 0; i < 5000; ++i) h.process(request("/x", "", ""));
    return std::make_pair(h.emitted().size(), h.dropped("sampled_out"));
  };
  auto [kept, dropped] = run();
  CHECK(kept + dropped == 5000);
  CHECK(kept > 400);
  CHECK(kept < 600);
  CHECK(run().first == kept);
}

TEST_CASE("consistent sampling by header keeps a user always or never, like --http-header-limiter") {
  testing::StageHarness h(limit(), Value::table({{"percent", 30}, {"key", "header:X-User"}}));
  std::set<std::string> kept_users;
  int kept = 0;
  for (int round = 0; round < 3; ++round)
    for (int u = 0; u < 1000; ++u) {
      std::string user = "user-" + std::to_string(u);
      bool expect = plugins::fnv1a32(user) % 100 < 30;
      auto before = h.emitted().size();
      h.process(request("/x", "X-User: " + user + "\r\n"));
      bool passed = h.emitted().size() > before;
      CHECK(passed == expect);
      if (passed) ++kept;
    }
  CHECK(kept > 3 * 250);
  CHECK(kept < 3 * 350);
  // No header: passes, as in GoReplay.
  auto before = h.emitted().size();
  h.process(request("/x"));
  CHECK(h.emitted().size() == before + 1);
}

TEST_CASE("consistent sampling by query parameter and by JSON field") {
  auto keep = [](const std::string& v) { return plugins::fnv1a32(v) % 100 < 50; };
  std::string in_user, out_user;
  for (int i = 0; in_user.empty() || out_user.empty(); ++i) {
    std::string u = std::to_string(i);
    (keep(u) ? in_user : out_user) = u;
  }
  testing::StageHarness p(limit(), Value::table({{"percent", 50}, {"key", "param:user"}, {"missing_key", "drop"}}));
  p.process(request("/x?a=1&user=" + in_user));
  p.process(request("/x?user=" + out_user + "&b=2"));
  p.process(request("/x?username=" + in_user));
  CHECK(p.emitted().size() == 1);
  CHECK(p.dropped("sampled_out_by_key") == 1);
  CHECK(p.dropped("missing_key") == 1);

  testing::StageHarness j(limit(), Value::table({{"percent", 50}, {"key", "json:user.id"}}));
  j.process(request("/x", "", "{\"user\":{\"id\":" + in_user + "}}"));
  j.process(request("/x", "", "{\"user\":{\"id\":\"" + out_user + "\"}}"));
  CHECK(j.emitted().size() == 1);
  CHECK(j.dropped("sampled_out_by_key") == 1);
}

TEST_CASE("configuration errors") {
  CHECK_THROWS_WITH_AS(testing::StageHarness(limit(), Value::table({})), doctest::Contains("needs rate or percent"),
                       ConfigError);
  CHECK_THROWS_WITH_AS(testing::StageHarness(limit(), Value::table({{"rate", "50%"}})),
                       doctest::Contains("events per time"), ConfigError);
  CHECK_THROWS_WITH_AS(testing::StageHarness(limit(), Value::table({{"percent", 10}, {"key", "cookie:x"}})),
                       doctest::Contains("header:NAME"), ConfigError);
  CHECK_THROWS_WITH_AS(testing::StageHarness(limit(), Value::table({{"percent", 10}, {"key", "json:a[*].b"}})),
                       doctest::Contains("without wildcards"), ConfigError);
  CHECK_THROWS_WITH_AS(testing::StageHarness(limit(), Value::table({{"percent", 120}})),
                       doctest::Contains("between 0 and 100"), ConfigError);
}
