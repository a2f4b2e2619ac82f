#include <doctest/doctest.h>

#include "doppel/testing.hpp"

using namespace doppel;
using doppel::testing::make_message;

namespace {
MessagePtr req(const std::string& target, const std::string& headers = "") {
  return make_message(Kind::request, "GET " + target + " HTTP/1.1\r\nHost: api.example.com\r\n" + headers +
                                         "Content-Length: 2\r\n\r\n{}", "id1");
}
std::string run_one(const Value& options, const MessagePtr& m) {
  testing::StageHarness h(testing::linked_plugin("rewrite"), options);
  h.process(m);
  auto out = h.emitted();
  REQUIRE(out.size() == 1);
  CHECK(out[0]->id == "id1");
  return out[0]->payload;
}
}  // namespace

TEST_CASE("rewrite: the URL with RE2 groups, GoReplay's --http-rewrite-url example") {
  auto p = run_one(Value::table({{"rewrite_url", R"(/v1/user/([^\/]+)/ping:/v2/user/$1/ping)"}}),
                   req("/v1/user/joe/ping?x=1"));
  CHECK(p.starts_with("GET /v2/user/joe/ping?x=1 HTTP/1.1\r\n"));
  CHECK(p.ends_with("\r\n\r\n{}"));
  // ${1} and a non-capturing group with its ':' stay intact.
  auto q = run_one(Value::table({{"rewrite_url", R"(^/(?:api)/(\d+):/v3/${1}/x)"}}), req("/api/42"));
  CHECK(q.starts_with("GET /v3/42/x HTTP/1.1"));
}

TEST_CASE("rewrite: set query parameters, replacing every value or appending") {
  auto p = run_one(Value::table({{"set_param", Value::array({"debug=0", "lang=en"})}}),
                   req("/search?q=a&debug=1&debug=2"));
  CHECK(p.starts_with("GET /search?q=a&debug=0&lang=en HTTP/1.1"));
  auto q = run_one(Value::table({{"set_param", "token=x"}}), req("/p"));
  CHECK(q.starts_with("GET /p?token=x HTTP/1.1"));
}

TEST_CASE("rewrite: set, rewrite and remove headers, keeping every other byte") {
  auto p = run_one(Value::table({{"set_header", Value::array({"User-Agent: Replayed by doppel", "X-New: 1"})},
                                 {"rewrite_header", "Host: (.*)\\.example\\.com,$1.beta.example.com"},
                                 {"remove_header", "Cookie"}}),
                   req("/a", "User-Agent: app\r\nCookie: s=1\r\nCookie: t=2\r\n"));
  CHECK(p == "GET /a HTTP/1.1\r\nHost: api.beta.example.com\r\nUser-Agent: Replayed by doppel\r\nContent-Length: 2\r\n"
             "X-New: 1\r\n\r\n{}");
}

TEST_CASE("rewrite: an untouched request passes as the same message; unparseable ones are dropped") {
  testing::StageHarness h(testing::linked_plugin("rewrite"), Value::table({{"rewrite_url", "^/nomatch:/x"}}));
  auto m = req("/a");
  h.process(m);
  h.process(make_message(Kind::request, "\x01\x02"));
  REQUIRE(h.emitted().size() == 1);
  CHECK(h.emitted()[0].get() == m.get());
  CHECK(h.dropped("unparseable_request") == 1);
}

TEST_CASE("rewrite: malformed options are configuration errors at the option") {
  auto& def = testing::linked_plugin("rewrite");
  CHECK_THROWS_WITH_AS(testing::StageHarness(def, Value::table({{"rewrite_url", "nocolon"}})),
                       doctest::Contains("pattern:replacement"), ConfigError);
  CHECK_THROWS_WITH_AS(testing::StageHarness(def, Value::table({{"set_param", "=x"}})),
                       doctest::Contains("name=value"), ConfigError);
  CHECK_THROWS_WITH_AS(testing::StageHarness(def, Value::table({{"rewrite_header", "Host: a"}})),
                       doctest::Contains("Name: pattern,replacement"), ConfigError);
  CHECK_THROWS_WITH_AS(testing::StageHarness(def, Value::table({{"rewrite_url", "(x:y"}})),
                       doctest::Contains("invalid pattern"), ConfigError);
}
