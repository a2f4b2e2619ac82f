#include <doctest/doctest.h>

#include <string>

#include "doppel/testing.hpp"

using namespace doppel;
using doppel::testing::make_message;

namespace {

MessagePtr response(const std::string& body, Kind kind) {
  return make_message(kind, "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: " +
                                std::to_string(body.size()) + "\r\n\r\n" + body);
}
std::unique_ptr<Comparator> comparator(Value fields) {
  const auto& def = testing::linked_plugin("nonempty");
  return def.create_comparator(testing::validated_options(def, Value::table({{"fields", fields}})));
}
std::string summary(const std::vector<Difference>& ds) {
  std::string out;
  for (const auto& d : ds) {
    if (!out.empty()) out += " | ";
    out += d.path + " " + d.kind + " " + d.original + " " + d.replay;
  }
  return out;
}
std::string check(const Comparator& c, const std::string& replay, const std::string& original = R"({})") {
  return summary(c.compare(Exchange{nullptr, response(original, Kind::response), response(replay, Kind::replay)}));
}

}  // namespace

TEST_CASE("the seed's rule: results.hint_list must be non-empty in the replay") {
  auto c = comparator(Value::array({"results.hint_list"}));
  const std::string original = R"({"results":{"hint_list":["a","b"]}})";
  CHECK(check(*c, R"({"results":{"hint_list":["x"]}})", original) == "");
  CHECK(check(*c, R"({"results":{"hint_list":[]}})", original) == "results.hint_list empty [\"a\",\"b\"] []");
  CHECK(check(*c, R"({"results":{}})", original) == "results.hint_list missing [\"a\",\"b\"] ");
  CHECK(check(*c, R"({"results":{"hint_list":null}})") == "results.hint_list empty (absent) null");
  CHECK(check(*c, R"({"results":{"hint_list":""}})") == "results.hint_list empty (absent) \"\"");
  CHECK(check(*c, R"({"results":{"hint_list":{}}})") == "results.hint_list empty (absent) {}");
  CHECK(check(*c, R"({"results":{"hint_list":0}})") == "");      // 0 is a value
  CHECK(check(*c, R"({"results":{"hint_list":false}})") == "");  // so is false
  CHECK(check(*c, R"({"results":{"hint_list_v2":[1]}})") == "results.hint_list missing (absent) ");  // exact path
}

TEST_CASE("wildcards: at least one match, and every match non-empty") {
  auto c = comparator(Value::array({"items[*].name", "intention_list"}));
  CHECK(check(*c, R"({"items":[{"name":"a"},{"name":"b"}],"intention_list":[1]})") == "");
  CHECK(check(*c, R"({"items":[{"name":"a"},{"name":""}],"intention_list":[1]})") == "items[1].name empty (absent) \"\"");
  CHECK(check(*c, R"({"items":[],"intention_list":[1]})") == "items[*].name missing (absent) ");
}

TEST_CASE("invalid replays are a difference; missing or failed replays are left to compare") {
  auto c = comparator(Value::array({"a"}));
  auto ds = c->compare(Exchange{nullptr, nullptr, response("<html>", Kind::replay)});
  REQUIRE(ds.size() == 1);
  CHECK(ds[0].kind == "invalid_json");
  CHECK(c->compare(Exchange{nullptr, response("{}", Kind::response), nullptr}).empty());
  CHECK(check(*c, std::string(100000, '[') + std::string(100000, ']')).find("$ invalid_json") == 0);
  CHECK(check(*c, R"({"a":1})", "not json") == "");  // the original's body does not matter
}

TEST_CASE("bad options") {
  CHECK_THROWS_WITH_AS(comparator(Value::array({"a["})), doctest::Contains("invalid path"), ConfigError);
  CHECK_THROWS_AS(comparator(Value::array({})), ConfigError);
}
