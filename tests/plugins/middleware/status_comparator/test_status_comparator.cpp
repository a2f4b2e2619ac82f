#include <doctest/doctest.h>

#include "doppel/testing.hpp"

using namespace doppel;
using doppel::testing::make_message;

namespace {
std::unique_ptr<Comparator> make(const Value& options = Value::table({})) {
  auto& def = testing::linked_plugin("status");
  CHECK(def.role == Role::comparator);
  return def.create_comparator(testing::validated_options(def, options));
}
Exchange make_exchange(const std::string& a, const std::string& b) {
  return {make_message(Kind::request, "GET / HTTP/1.1\r\n\r\n", "x"), make_message(Kind::response, a, "x"),
          make_message(Kind::replay, b, "x")};
}
}  // namespace

TEST_CASE("status: equal codes pass, different codes are a `status` difference") {
  auto c = make();
  CHECK(c->compare(make_exchange("HTTP/1.1 200 OK\r\n\r\n", "HTTP/1.1 200 Fine\r\n\r\n")).empty());
  auto d = c->compare(make_exchange("HTTP/1.1 200 OK\r\n\r\n", "HTTP/1.1 503 Unavailable\r\n\r\n"));
  REQUIRE(d.size() == 1);
  CHECK(d[0].path == "status");
  CHECK(d[0].kind == "changed");
  CHECK(d[0].original == "200");
  CHECK(d[0].replay == "503");
}

TEST_CASE("status: by_class compares 2xx/4xx/5xx only") {
  auto c = make(Value::table({{"by_class", true}}));
  CHECK(c->compare(make_exchange("HTTP/1.1 200 OK\r\n\r\n", "HTTP/1.1 204 No Content\r\n\r\n")).empty());
  CHECK(c->compare(make_exchange("HTTP/1.1 200 OK\r\n\r\n", "HTTP/1.1 404 Not Found\r\n\r\n")).size() == 1);
}

TEST_CASE("status: a side that is not an HTTP response is an `invalid` difference, not a crash") {
  auto c = make();
  auto d = c->compare(make_exchange("HTTP/1.1 200 OK\r\n\r\n", "garbage"));
  REQUIRE(d.size() == 1);
  CHECK(d[0].kind == "invalid");
  CHECK(d[0].replay == "(not an HTTP response)");
  CHECK(c->compare(make_exchange("junk", "garbage")).empty());
}
