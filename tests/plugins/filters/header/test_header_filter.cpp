#include <doctest/doctest.h>

#include "doppel/testing.hpp"

using namespace doppel;
using doppel::testing::make_message;

namespace {
MessagePtr req(const std::string& headers) {
  return make_message(Kind::request, "GET / HTTP/1.1\r\nHost: x\r\n" + headers + "\r\n");
}
}  // namespace

TEST_CASE("header: every allow rule must match; a missing header fails an allow rule") {
  testing::StageHarness h(testing::linked_plugin("header"),
                          Value::table({{"allow", Value::array({"User-Agent: ^robot-client/", "X-Env: prod|staging"})}}));
  h.process(req("user-agent: robot-client/3.1\r\nX-Env: prod\r\n"));
  h.process(req("User-Agent: robot-client/3.1\r\nX-Env: dev\r\n"));
  h.process(req("User-Agent: curl/8\r\nX-Env: prod\r\n"));
  h.process(req("X-Env: prod\r\n"));  // no User-Agent
  CHECK(h.emitted().size() == 1);
  CHECK(h.dropped("header_not_allowed") == 3);
}

TEST_CASE("header: deny drops a request with a matching header; a missing header passes deny") {
  testing::StageHarness h(testing::linked_plugin("header"), Value::table({{"deny", "X-Debug: ."}}));
  h.process(req("X-Debug: 1\r\n"));
  h.process(req("X-Debug:\r\n"));  // empty value: `.` does not match
  h.process(req(""));
  CHECK(h.emitted().size() == 2);
  CHECK(h.dropped("header_denied") == 1);
}

TEST_CASE("header: a repeated header matches when one of its values does") {
  testing::StageHarness h(testing::linked_plugin("header"), Value::table({{"allow", "Accept: json"}}));
  h.process(req("Accept: text/html\r\nAccept: application/json\r\n"));
  CHECK(h.emitted().size() == 1);
}

TEST_CASE("header: malformed rules are configuration errors") {
  auto& def = testing::linked_plugin("header");
  CHECK_THROWS_WITH_AS(testing::StageHarness(def, Value::table({{"allow", "no colon"}})),
                       doctest::Contains("must be \"Header-Name: regex\""), ConfigError);
  CHECK_THROWS_WITH_AS(testing::StageHarness(def, Value::table({{"deny", "X-A: (unclosed"}})),
                       doctest::Contains("invalid pattern"), ConfigError);
}

TEST_CASE("header: basic_auth matches the decoded credentials, like --http-basic-auth-filter") {
  testing::StageHarness h(testing::linked_plugin("header"), Value::table({{"basic_auth", "^admin:"}}));
  // admin:secret, guest:secret, a non-basic scheme, none, and broken base64
  h.process(testing::make_message(Kind::request, "GET / HTTP/1.1\r\nAuthorization: Basic YWRtaW46c2VjcmV0\r\n\r\n"));
  h.process(testing::make_message(Kind::request, "GET / HTTP/1.1\r\nAuthorization: Basic Z3Vlc3Q6c2VjcmV0\r\n\r\n"));
  h.process(testing::make_message(Kind::request, "GET / HTTP/1.1\r\nAuthorization: Bearer YWRtaW46\r\n\r\n"));
  h.process(testing::make_message(Kind::request, "GET / HTTP/1.1\r\n\r\n"));
  h.process(testing::make_message(Kind::request, "GET / HTTP/1.1\r\nAuthorization: Basic !!!\r\n\r\n"));
  auto out = h.emitted();
  REQUIRE(out.size() == 1);
  CHECK(out[0]->payload.find("YWRtaW46c2VjcmV0") != std::string::npos);
  CHECK(h.dropped("basic_auth_not_allowed") == 4);
}
