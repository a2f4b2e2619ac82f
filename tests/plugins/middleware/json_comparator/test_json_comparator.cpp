#include <doctest/doctest.h>

#include <string>

#include "doppel/testing.hpp"
#include "gzip_text.hpp"

using namespace doppel;
using doppel::testing::make_message;

namespace {

MessagePtr response(const std::string& body, Kind kind = Kind::response, const std::string& extra_headers = "") {
  std::string head = "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n" + extra_headers;
  if (extra_headers.find("Transfer-Encoding") == std::string::npos)
    head += "Content-Length: " + std::to_string(body.size()) + "\r\n";
  return make_message(kind, head + "\r\n" + body, "0123456789abcdef01234567");
}

std::unique_ptr<Comparator> comparator(Value options = Value::table({})) {
  const auto& def = testing::linked_plugin("json");
  return def.create_comparator(testing::validated_options(def, options));
}

std::vector<Difference> diff(const Comparator& c, const std::string& a, const std::string& b) {
  return c.compare(Exchange{nullptr, response(a), response(b, Kind::replay)});
}

// "path kind original replay" per difference, joined by " | ".
std::string summary(const std::vector<Difference>& ds) {
  std::string out;
  for (const auto& d : ds) {
    if (!out.empty()) out += " | ";
    out += d.path + " " + d.kind + " " + d.original + " " + d.replay;
  }
  return out;
}


}  // namespace

TEST_CASE("equal documents have no differences, whatever the formatting or key order") {
  auto c = comparator();
  CHECK(diff(*c, R"({"a":1,"b":[1,2]})", R"({ "b" : [1, 2], "a" : 1.0 })").empty());
  CHECK(diff(*c, "[]", "[ ]").empty());
  CHECK(diff(*c, R"({"s":"caf\u00e9"})", "{\"s\":\"caf\xC3\xA9\"}").empty());
}

TEST_CASE("each kind of difference is reported with path and both values") {
  auto c = comparator();
  CHECK(summary(diff(*c, R"({"a":1})", R"({"a":2})")) == "a changed 1 2");
  CHECK(summary(diff(*c, R"({"a":"664"})", R"({"a":664})")) == "a type \"664\" 664");
  CHECK(summary(diff(*c, R"({"a":{"b":null}})", R"({"a":{}})")) == "a.b missing null ");
  CHECK(summary(diff(*c, R"({"a":{}})", R"({"a":{"b":[1]}})")) == "a.b extra  [1]");
  CHECK(summary(diff(*c, R"({"l":[1,2,3]})", R"({"l":[1,2]})")) == "l length 3 2");
  CHECK(summary(diff(*c, R"({"l":[1,2,3]})", R"({"l":[1,5]})")) == "l length 3 2 | l[1] changed 2 5");
  CHECK(summary(diff(*c, R"({"l":[1,2,3]})", R"({"l":[3,1,2]})")) == "l order [1,2,3] [3,1,2]");
  CHECK(summary(diff(*c, R"({"l":[1,2,3]})", R"({"l":[3,1,4]})")) ==
        "l[0] changed 1 3 | l[1] changed 2 1 | l[2] changed 3 4");
  CHECK(summary(diff(*c, R"({"b":true})", R"({"b":false})")) == "b changed true false");
  CHECK(summary(diff(*c, R"({"x":["a.b"]})", R"({"x":["a.c"]})")) == "x[0] changed \"a.b\" \"a.c\"");
  CHECK(summary(diff(*c, R"({"x.y":{"z":1}})", R"({"x.y":{"z":2}})")) == "[\"x.y\"].z changed 1 2");
  CHECK(summary(diff(*c, R"([{"id":1}])", R"([{"id":2}])")) == "[0].id changed 1 2");
  CHECK(summary(diff(*c, R"({"a":1})", R"([1])")) == "$ type {\"a\":1} [1]");
}

TEST_CASE("ignore takes exact paths and explicit wildcards, never substrings") {
  auto c = comparator(Value::table({{"ignore", Value::array({"results.trace_id", "items[*].ts", "meta.*"})}}));
  CHECK(diff(*c, R"({"results":{"trace_id":"a","v":1}})", R"({"results":{"trace_id":"b","v":1}})").empty());
  CHECK(diff(*c, R"({"results":{"v":1}})", R"({"results":{"trace_id":"b","v":1}})").empty());  // extra, ignored
  CHECK(diff(*c, R"({"results":{"trace_id":{"x":1}}})", R"({"results":{"trace_id":[]}})").empty());
  CHECK(summary(diff(*c, R"({"results":{"trace_id_v2":"a"}})", R"({"results":{"trace_id_v2":"b"}})")) ==
        "results.trace_id_v2 changed \"a\" \"b\"");
  CHECK(diff(*c, R"({"items":[{"ts":1,"id":1},{"ts":2,"id":2}]})", R"({"items":[{"ts":9,"id":1},{"ts":8,"id":2}]})")
            .empty());
  CHECK(summary(diff(*c, R"({"items":[{"ts":1,"id":1}]})", R"({"items":[{"ts":9,"id":7}]})")) ==
        "items[0].id changed 1 7");
  CHECK(diff(*c, R"({"meta":{"a":1,"b":2}})", R"({"meta":{"a":3,"c":4}})").empty());
  CHECK(summary(diff(*c, R"({"meta":{"a":1}})", R"({"meta":[1]})")) == "meta type {\"a\":1} [1]");

  auto trap = comparator(Value::table({{"ignore", Value::array({"items.id"})}}));
  CHECK(summary(diff(*trap, R"({"items":{"id":1,"idempotency_key":"k1"}})",
                     R"({"items":{"id":2,"idempotency_key":"k2"}})")) ==
        "items.idempotency_key changed \"k1\" \"k2\"");
  CHECK(summary(diff(*trap, R"({"items":[{"id":1}]})", R"({"items":[{"id":2}]})")) == "items[0].id changed 1 2");
}

TEST_CASE("unordered arrays compare as multisets") {
  auto c = comparator(Value::table({{"unordered", Value::array({"results.hint_list", "groups[*].members"})}}));
  CHECK(diff(*c, R"({"results":{"hint_list":["a","b","a"]}})", R"({"results":{"hint_list":["a","a","b"]}})").empty());
  CHECK(summary(diff(*c, R"({"results":{"hint_list":["a","b","a"]}})", R"({"results":{"hint_list":["b","c","a"]}})")) ==
        "results.hint_list[2] missing \"a\"  | results.hint_list[1] extra  \"c\"");
  CHECK(diff(*c, R"({"groups":[{"members":[{"id":1},{"id":2}]}]})", R"({"groups":[{"members":[{"id":2},{"id":1}]}]})")
            .empty());
  // Elsewhere order still matters.
  CHECK(summary(diff(*c, R"({"other":[1,2]})", R"({"other":[2,1]})")) == "other order [1,2] [2,1]");
  // Ignored fields inside unordered elements do not prevent pairing.
  auto both = comparator(Value::table({{"unordered", Value::array({"l"})}, {"ignore", Value::array({"l[*].ts"})}}));
  CHECK(diff(*both, R"({"l":[{"id":1,"ts":5},{"id":2,"ts":6}]})", R"({"l":[{"id":2,"ts":0},{"id":1,"ts":9}]})").empty());
}

TEST_CASE("numeric tolerance") {
  auto c = comparator(Value::table({{"tolerance", 0.01}}));
  CHECK(diff(*c, R"({"p":1.000})", R"({"p":1.005})").empty());
  CHECK(diff(*c, R"({"p":1})", R"({"p":1.01})").empty());
  CHECK(summary(diff(*c, R"({"p":1.0})", R"({"p":1.02})")) == "p changed 1 1.02");
  CHECK(summary(diff(*c, R"({"p":1})", R"({"p":"1"})")) == "p type 1 \"1\"");
  auto u = comparator(Value::table({{"tolerance", 0.5}, {"unordered", "l"}}));
  CHECK(diff(*u, R"({"l":[1.0,2.0]})", R"({"l":[2.2,0.9]})").empty());
  auto exact = comparator();
  CHECK(summary(diff(*exact, R"({"p":9007199254740993})", R"({"p":9007199254740992})")) ==
        "p changed 9007199254740993 9007199254740992");
  CHECK(diff(*exact, R"({"p":18446744073709551615})", R"({"p":18446744073709551615})").empty());
  CHECK(summary(diff(*exact, R"({"p":-1})", R"({"p":18446744073709551615})")) == "p changed -1 18446744073709551615");
}

TEST_CASE("invalid JSON on either side is a difference, never a crash") {
  auto c = comparator();
  auto ds = diff(*c, R"({"a":1})", "<html>oops</html>");
  REQUIRE(ds.size() == 1);
  CHECK(ds[0].kind == "invalid_json");
  CHECK(ds[0].path == "$");
  CHECK(ds[0].original == R"({"a":1})");
  CHECK(ds[0].replay.find("(invalid JSON:") == 0);
  CHECK(ds[0].replay.find("<html>oops</html>") != std::string::npos);
  CHECK(diff(*c, "", R"({"a":1})").at(0).original.find("empty body") != std::string::npos);
  CHECK(diff(*c, "not json", "not json").empty());  // byte-identical bodies never differ
  CHECK(diff(*c, "", "").empty());
  std::string deep = std::string(100000, '[') + std::string(100000, ']');
  auto deep_ds = diff(*c, deep, "[]");
  REQUIRE(deep_ds.size() == 1);
  CHECK(deep_ds[0].kind == "invalid_json");
  CHECK(deep_ds[0].original.find("nested deeper than 1024 levels") != std::string::npos);
  CHECK(deep_ds[0].original.size() < 400);
  CHECK(diff(*c, deep, deep).empty());
  CHECK(diff(*c, deep, deep + " ").at(0).kind == "invalid_json");
}

TEST_CASE("missing sides and failed replays are left to the compare stage") {
  auto c = comparator();
  CHECK(c->compare(Exchange{nullptr, nullptr, response("{}", Kind::replay)}).empty());
  CHECK(c->compare(Exchange{nullptr, response("{}"), nullptr}).empty());
  Message failed(Kind::replay, "0123456789abcdef01234567", 0, "");
  failed.meta.error = "refused";
  CHECK(c->compare(Exchange{nullptr, response("{\"a\":1}"), share(std::move(failed))}).empty());
}

TEST_CASE("gzip and chunked bodies are decoded; broken encodings are reported") {
  auto c = comparator();
  auto gz = response(doppel::testing::gzip_text(R"({"a":1})"), Kind::replay, "Content-Encoding: gzip\r\n");
  CHECK(c->compare(Exchange{nullptr, response(R"({"a":1})"), gz}).empty());
  auto gz2 = response(doppel::testing::gzip_text(R"({"a":2})"), Kind::replay, "Content-Encoding: gzip\r\n");
  CHECK(summary(c->compare(Exchange{nullptr, response(R"({"a":1})"), gz2})) == "a changed 1 2");
  auto ch = response("3\r\n{\"a\r\n4\r\n\":1}\r\n0\r\n\r\n", Kind::replay, "Transfer-Encoding: chunked\r\n");
  CHECK(c->compare(Exchange{nullptr, response(R"({"a":1})"), ch}).empty());
  auto bad = response("definitely not gzip", Kind::replay, "Content-Encoding: gzip\r\n");
  auto ds = c->compare(Exchange{nullptr, response(R"({"a":1})"), bad});
  REQUIRE(ds.size() == 1);
  CHECK(ds[0].kind == "invalid_json");
  CHECK(ds[0].replay.find("undecodable body") != std::string::npos);
}

TEST_CASE("duplicate keys: the last occurrence wins on both sides") {
  auto c = comparator();
  CHECK(diff(*c, R"({"a":1,"a":2})", R"({"a":2})").empty());
  CHECK(summary(diff(*c, R"({"a":2,"a":1})", R"({"a":2})")) == "a changed 1 2");
  std::string many_a = "{", many_b = "{";
  for (int i = 0; i < 30; ++i) many_a += "\"k" + std::to_string(i) + "\":" + std::to_string(i) + ",";
  for (int i = 0; i < 30; ++i) many_b += "\"k" + std::to_string(i) + "\":0,";
  for (int i = 29; i >= 0; --i) many_b += "\"k" + std::to_string(i) + "\":" + std::to_string(i) + ",";
  many_a.back() = '}';
  many_b.back() = '}';
  CHECK(diff(*c, many_a, many_b).empty());
}

TEST_CASE("values are truncated and the number of differences is capped") {
  auto c = comparator(Value::table({{"max_differences", 3}, {"max_value_length", 16}}));
  std::string a = "{", b = "{";
  for (int i = 0; i < 10; ++i) {
    a += "\"k" + std::to_string(i) + "\":" + std::to_string(i) + ",";
    b += "\"k" + std::to_string(i) + "\":" + std::to_string(i + 1) + ",";
  }
  a += "\"long\":\"" + std::string(1000, 'x') + "\"}";
  b += "\"long\":\"" + std::string(1000, 'y') + "\"}";
  auto ds = diff(*c, a, b);
  REQUIRE(ds.size() == 4);
  CHECK(ds[3].kind == "truncated");
  auto longs = comparator(Value::table({{"max_value_length", 16}, {"ignore", Value::array({"*"})}}));
  CHECK(diff(*longs, a, b).empty());
  auto only_long = comparator(Value::table({{"max_value_length", 16}, {"ignore", Value::array({"k0", "k1", "k2", "k3", "k4", "k5", "k6", "k7", "k8", "k9"})}}));
  auto l = diff(*only_long, a, b);
  REQUIRE(l.size() == 1);
  CHECK(l[0].original.size() <= 16 + 3);
  CHECK(l[0].original.substr(0, 5) == "\"xxxx");
}

TEST_CASE("50 MB bodies are compared without trouble") {
  std::string a = "{\"items\":[";
  while (a.size() < 50u * 1024 * 1024) a += "{\"id\":12345,\"name\":\"abcdefghijklmnopqrstuvwxyz\",\"v\":[1,2,3]},";
  std::string b = a;
  a += "{\"id\":1}]}";
  b += "{\"id\":2}]}";
  auto c = comparator();
  auto ds = diff(*c, a, b);
  REQUIRE(ds.size() == 1);
  CHECK(ds[0].kind == "changed");
  CHECK(ds[0].path.substr(0, 6) == "items[");
}

TEST_CASE("bad options are configuration errors") {
  const auto& def = testing::linked_plugin("json");
  auto make = [&](Value v) { return def.create_comparator(testing::validated_options(def, v)); };
  CHECK_THROWS_WITH_AS(make(Value::table({{"ignore", Value::array({"ok", "items[*"})}})),
                       doctest::Contains("invalid path \"items[*\""), ConfigError);
  CHECK_THROWS_AS(make(Value::table({{"tolerance", -1.0}})), ConfigError);
  CHECK_THROWS_AS(make(Value::table({{"max_differences", 0}})), ConfigError);
}
