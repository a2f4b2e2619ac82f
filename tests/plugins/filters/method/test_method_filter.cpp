#include <doctest/doctest.h>

#include "doppel/testing.hpp"

using namespace doppel;
using doppel::testing::make_message;

namespace {
MessagePtr req(const std::string& method) {
  return make_message(Kind::request, method + " /a HTTP/1.1\r\nHost: x\r\n\r\n");
}
}  // namespace

TEST_CASE("method: allow keeps listed methods only, case-insensitively") {
  testing::StageHarness h(testing::linked_plugin("method"), Value::table({{"allow", Value::array({"get", "POST"})}}));
  h.process(req("GET"));
  h.process(req("POST"));
  h.process(req("DELETE"));
  h.process(make_message(Kind::request, "garbage"));
  auto out = h.emitted();
  REQUIRE(out.size() == 2);
  CHECK(out[0]->http().method() == "GET");
  CHECK(out[1]->http().method() == "POST");
  CHECK(h.dropped("method_not_allowed") == 1);
  CHECK(h.dropped("unparseable_request") == 1);
}

TEST_CASE("method: deny drops listed methods; allow and deny combine") {
  testing::StageHarness h(testing::linked_plugin("method"),
                          Value::table({{"allow", Value::array({"GET", "OPTIONS"})}, {"deny", "options"}}));
  h.process(req("GET"));
  h.process(req("OPTIONS"));
  h.process(req("PUT"));
  CHECK(h.emitted().size() == 1);
  CHECK(h.dropped("method_denied") == 1);
  CHECK(h.dropped("method_not_allowed") == 1);
}

TEST_CASE("method: a value that is not a method is a configuration error") {
  CHECK_THROWS_AS(testing::StageHarness(testing::linked_plugin("method"), Value::table({{"deny", "GET POST"}})),
                  ConfigError);
}
