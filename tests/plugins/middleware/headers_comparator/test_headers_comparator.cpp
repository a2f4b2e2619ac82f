#include <doctest/doctest.h>

#include "doppel/testing.hpp"

using namespace doppel;
using doppel::testing::make_message;

namespace {
std::unique_ptr<Comparator> make(const Value& options = Value::table({})) {
  auto& def = testing::linked_plugin("headers");
  return def.create_comparator(testing::validated_options(def, options));
}
Exchange make_exchange(const std::string& a_headers, const std::string& b_headers) {
  return {nullptr, make_message(Kind::response, "HTTP/1.1 200 OK\r\n" + a_headers + "\r\n", "x"),
          make_message(Kind::replay, "HTTP/1.1 200 OK\r\n" + b_headers + "\r\n", "x")};
}
}  // namespace

TEST_CASE("headers: all but the ignore list; Date and Server are ignored by default") {
  auto c = make();
  auto d = c->compare(make_exchange("Date: Mon\r\nServer: old\r\nContent-Type: application/json\r\nX-A: 1\r\n",
                               "Date: Tue\r\nServer: new\r\ncontent-type: text/html\r\nX-B: 2\r\n"));
  REQUIRE(d.size() == 3);
  CHECK(d[0].path == "header:content-type");
  CHECK(d[0].kind == "changed");
  CHECK(d[0].original == "application/json");
  CHECK(d[0].replay == "text/html");
  CHECK(d[1].path == "header:x-a");
  CHECK(d[1].kind == "missing");
  CHECK(d[2].path == "header:x-b");
  CHECK(d[2].kind == "extra");
}

TEST_CASE("headers: a custom ignore list replaces the default") {
  auto c = make(Value::table({{"ignore", Value::array({"X-Request-Id"})}}));
  auto d = c->compare(make_exchange("Date: Mon\r\nX-Request-Id: 1\r\n", "Date: Tue\r\nX-Request-Id: 2\r\n"));
  REQUIRE(d.size() == 1);
  CHECK(d[0].path == "header:date");
}

TEST_CASE("headers: listed headers only, repeated headers compare as a list") {
  auto c = make(Value::table({{"headers", Value::array({"Set-Cookie", "Cache-Control"})}}));
  CHECK(c->compare(make_exchange("Set-Cookie: a\r\nSet-Cookie: b\r\nX: 1\r\n", "set-cookie: a\r\nSet-Cookie: b\r\nX: 2\r\n"))
            .empty());
  auto d = c->compare(make_exchange("Set-Cookie: a\r\nSet-Cookie: b\r\n", "Set-Cookie: b\r\nSet-Cookie: a\r\nCache-Control: no\r\n"));
  REQUIRE(d.size() == 2);
  CHECK(d[0].original == "a, b");
  CHECK(d[0].replay == "b, a");
  CHECK(d[1].kind == "extra");
}

TEST_CASE("headers: ignore together with a headers list is a configuration error") {
  CHECK_THROWS_AS(make(Value::table({{"headers", Value::array({"A"})}, {"ignore", Value::array({"B"})}})), ConfigError);
}
