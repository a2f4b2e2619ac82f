#include <doctest/doctest.h>

#include "doppel/testing.hpp"
#include "gzip_text.hpp"

using namespace doppel;
using doppel::testing::make_message;

namespace {
std::unique_ptr<Comparator> make(const Value& options = Value::table({})) {
  auto& def = testing::linked_plugin("exact");
  return def.create_comparator(testing::validated_options(def, options));
}
std::string resp(const std::string& body, const std::string& extra = "") {
  return "HTTP/1.1 200 OK\r\n" + extra + "Content-Length: " + std::to_string(body.size()) + "\r\n\r\n" + body;
}
Exchange make_exchange(const std::string& a, const std::string& b) {
  return {nullptr, make_message(Kind::response, a, "x"), make_message(Kind::replay, b, "x")};
}
}  // namespace

TEST_CASE("exact: equal bodies pass; the first differing byte is shown with context") {
  auto c = make();
  CHECK(c->compare(make_exchange(resp("hello world"), resp("hello world"))).empty());
  auto d = c->compare(make_exchange(resp("hello world"), resp("hello there")));
  REQUIRE(d.size() == 1);
  CHECK(d[0].path == "body");
  CHECK(d[0].kind == "changed");
  CHECK(d[0].original.find("hello world") != std::string::npos);
  CHECK(d[0].replay.find("first difference at byte 6") != std::string::npos);
  auto l = c->compare(make_exchange(resp("abc"), resp("abcdef")));
  REQUIRE(l.size() == 1);
  CHECK(l[0].kind == "length");
}

TEST_CASE("exact: compares decoded bodies by default, wire bytes with decoded = false") {
  std::string body = std::string(200, 'x') + "payload";
  auto gz = resp(doppel::testing::gzip_text(body), "Content-Encoding: gzip\r\n");
  CHECK(make()->compare(make_exchange(gz, resp(body))).empty());
  CHECK(make(Value::table({{"decoded", false}}))->compare(make_exchange(gz, resp(body))).size() == 1);
}

TEST_CASE("exact: a 50 MB body compares and the shown values stay short") {
  std::string big(50u << 20, 'a');
  std::string other = big;
  other[40u << 20] = 'b';
  auto d = make()->compare(make_exchange(resp(big), resp(other)));
  REQUIRE(d.size() == 1);
  CHECK(d[0].original.size() < 400);
  CHECK(d[0].replay.find("first difference at byte 41943040") != std::string::npos);
}
