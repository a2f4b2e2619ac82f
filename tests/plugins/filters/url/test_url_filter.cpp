#include <doctest/doctest.h>

#include "doppel/testing.hpp"

using namespace doppel;
using doppel::testing::make_message;

namespace {
MessagePtr get(const std::string& target) {
  return make_message(Kind::request, "GET " + target + " HTTP/1.1\r\nHost: a\r\n\r\n");
}
}  // namespace

TEST_CASE("url filter keeps allowed targets and drops the rest with a reason") {
  testing::StageHarness h(testing::linked_plugin("url"),
                          Value::table({{"allow", Value::array({"^/v2/robot/query$", "^/v1/robot/intention"})},
                                        {"deny", Value::array({"debug=1"})}}));
  h.process(get("/v2/robot/query"));
  h.process(get("/v2/robot/query?x=1"));  // anchored at $: the query is part of the target
  h.process(get("/v1/robot/intention?debug=1"));
  h.process(get("/v1/robot/intention?lang=en"));
  h.process(make_message(Kind::request, "not http at all"));
  auto out = h.emitted();
  REQUIRE(out.size() == 2);
  CHECK(out[0]->http().target() == "/v2/robot/query");
  CHECK(out[1]->http().target() == "/v1/robot/intention?lang=en");
  CHECK(h.dropped("url_not_allowed") == 1);
  CHECK(h.dropped("url_denied") == 1);
  CHECK(h.dropped("unparseable_request") == 1);
}

TEST_CASE("url filter with no allow list passes everything not denied") {
  testing::StageHarness h(testing::linked_plugin("url"), Value::table({{"deny", "^/health"}}));
  h.process(get("/a"));
  h.process(get("/healthz"));
  CHECK(h.emitted().size() == 1);
  CHECK(h.dropped("url_denied") == 1);
}

TEST_CASE("an invalid pattern is a configuration error naming the pattern") {
  CHECK_THROWS_WITH_AS(testing::StageHarness(testing::linked_plugin("url"), Value::table({{"allow", "(unclosed"}})),
                       doctest::Contains("invalid pattern \"(unclosed\""), ConfigError);
}
