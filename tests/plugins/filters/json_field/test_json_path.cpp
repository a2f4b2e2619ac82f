#include <doctest/doctest.h>

#include <string>

#include "doppel/json_path.hpp"
#include "doppel/json_text.hpp"

using namespace doppel::json;

namespace {
// The matches of `path` in `text`, each as minified JSON, joined by spaces.
std::string found(const std::string& path, const std::string& text) {
  auto doc = JsonDocument::parse(text);
  REQUIRE(doc.ok());
  std::string out;
  for (auto e : JsonPath::parse(path).find(doc.root())) {
    if (!out.empty()) out += " ";
    out += to_json(e);
  }
  return out;
}
std::string paths_found(const std::string& path, const std::string& text) {
  auto doc = JsonDocument::parse(text);
  REQUIRE(doc.ok());
  std::string out;
  for (auto& m : JsonPath::parse(path).find_with_paths(doc.root())) {
    if (!out.empty()) out += " ";
    out += format_path(m.path);
  }
  return out;
}
ConcretePath concrete(const std::string& text) {
  auto out = parse_concrete_path(text);
  REQUIRE(out.has_value());
  return *out;
}
std::string error_of(const std::string& path) {
  std::string error;
  CHECK_FALSE(JsonPath::try_parse(path, &error));
  return error;
}
}  // namespace

TEST_CASE("every path form finds its value") {
  const std::string doc =
      R"({"robot_id":664,"a":{"b":"deep","x.y":1,"it's":2,"*":3,"":4},"items":[{"id":1,"idempotency_key":"k"},{"id":2}],)"
      R"("$ref":"r","q\"k":5})";
  CHECK(found("robot_id", doc) == "664");
  CHECK(found("a.b", doc) == "\"deep\"");
  CHECK(found("$.a.b", doc) == "\"deep\"");
  CHECK(found(".a.b", doc) == "\"deep\"");
  CHECK(found("$[\"a\"]['b']", doc) == "\"deep\"");
  CHECK(found("items[0].id", doc) == "1");
  CHECK(found("items[1].id", doc) == "2");
  CHECK(found("items[2].id", doc) == "");
  CHECK(found("items[*].id", doc) == "1 2");
  CHECK(found("a[\"x.y\"]", doc) == "1");
  CHECK(found("a['it\\'s']", doc) == "2");
  CHECK(found("a[\"*\"]", doc) == "3");
  CHECK(found("a[\"\"]", doc) == "4");
  CHECK(found("[\"q\\\"k\"]", doc) == "5");
  CHECK(found("$ref", doc) == "\"r\"");
  CHECK(found("a[\"\\u0078.y\"]", doc) == "1");
  CHECK(found("$", doc).substr(0, 14) == "{\"robot_id\":66");
  CHECK(found("a.*", doc) == "\"deep\" 1 2 3 4");
}

TEST_CASE("wildcards are explicit and typed: * for keys, [*] for indexes") {
  const std::string doc = R"({"m":{"a":{"v":1},"b":{"v":2}},"l":[{"v":3},{"v":4}]})";
  CHECK(found("m.*.v", doc) == "1 2");
  CHECK(found("l[*].v", doc) == "3 4");
  CHECK(found("m[*].v", doc) == "");  // [*] never walks object keys
  CHECK(found("l.*.v", doc) == "");   // * never walks array indexes
  CHECK(found("*", doc) == R"({"a":{"v":1},"b":{"v":2}} [{"v":3},{"v":4}])");
  CHECK(paths_found("*.*", doc) == "m.a m.b");
  CHECK(paths_found("l[*]", doc) == "l[0] l[1]");
}

TEST_CASE("items.id never matches items.idempotency_key nor array elements") {
  const std::string doc = R"({"items":{"idempotency_key":"k","identity":1},"list":[{"id":1}]})";
  CHECK(found("items.id", doc) == "");
  CHECK(found("list.id", doc) == "");
  CHECK(found("items.idempotency_key", doc) == "\"k\"");
  auto ignore = JsonPath::parse("items.id");
  CHECK_FALSE(ignore.matches(concrete("items.idempotency_key")));
  CHECK_FALSE(ignore.covers(concrete("items.idempotency_key")));
  CHECK_FALSE(ignore.matches("items.idempotency_key"));
  CHECK(ignore.matches("items.id"));
  CHECK(ignore.covers("items.id.sub"));
  CHECK_FALSE(JsonPath::parse("items[*].id").matches("items[0].idempotency_key"));
  CHECK_FALSE(JsonPath::parse("results.trace").covers("results.tracer"));
}

TEST_CASE("the matcher answers for concrete paths as a diff walk produces them") {
  auto p = JsonPath::parse("items[*].meta.*");
  CHECK(p.matches(concrete("items[3].meta.ts")));
  CHECK_FALSE(p.matches(concrete("items[3].meta")));
  CHECK_FALSE(p.matches(concrete("items.x.meta.ts")));
  CHECK_FALSE(p.matches(concrete("items[3].meta.ts.deeper")));
  CHECK(p.covers(concrete("items[3].meta.ts.deeper")));
  CHECK(JsonPath::parse("$").covers(concrete("anything[1]")));
  CHECK(JsonPath::parse("$").matches(ConcretePath{}));
  CHECK(JsonPath::parse("a[2]").matches("$.a[2]"));
  CHECK_FALSE(JsonPath::parse("a.2").matches("a[2]"));  // a.2 is the key "2"
  CHECK_FALSE(p.matches("items[*].meta.ts"));           // a pattern is not a concrete path
  CHECK_FALSE(p.matches("items[0"));                    // nor is broken text

  auto set = JsonPathSet::parse({"results.trace_id", "items[*].ts"});
  CHECK(set.matches(concrete("items[7].ts")));
  CHECK_FALSE(set.matches(concrete("items[7].tsx")));
  CHECK(set.may_match_below(concrete("items[7]")));
  CHECK(set.may_match_below(concrete("results")));
  CHECK_FALSE(set.may_match_below(concrete("other")));
  CHECK_FALSE(set.may_match_below(concrete("items[7].ts")));
}

TEST_CASE("format_path round-trips through parse") {
  ConcretePath p{PathStep::of_key("a"),     PathStep::of_index(0),    PathStep::of_key("x.y"),
                 PathStep::of_key("*"),     PathStep::of_key(""),     PathStep::of_key("q\"\\"),
                 PathStep::of_key("sp ace"), PathStep::of_key("ok_1-2")};
  std::string text = format_path(p);
  CHECK(text == R"(a[0]["x.y"]["*"][""]["q\"\\"]["sp ace"].ok_1-2)");
  CHECK(JsonPath::parse(text).matches(p));
  CHECK(parse_concrete_path(text) == p);
  CHECK_FALSE(parse_concrete_path("a[*]"));
  CHECK_FALSE(parse_concrete_path("a["));
  CHECK(format_path(ConcretePath{}) == "$");
  CHECK(format_path(ConcretePath{PathStep::of_index(2), PathStep::of_key("id")}) == "[2].id");
  CHECK(format_path(ConcretePath{PathStep::of_key("$ref")}) == "[\"$ref\"]");
  CHECK(JsonPath::parse(format_path(ConcretePath{PathStep::of_key("$")})).matches(ConcretePath{PathStep::of_key("$")}));
}

TEST_CASE("bad paths are errors with a position") {
  CHECK(error_of("") .find("empty path") != std::string::npos);
  CHECK(error_of("a..b") == "expected a key after '.' at 2");
  CHECK(error_of("a.") == "expected a key after '.' at 2");
  CHECK(error_of("a[") == "unterminated '[' at 1");
  CHECK(error_of("a[0") == "expected ']' at 3");
  CHECK(error_of("a[x]") == "expected an index, '*' or a quoted key after '[' at 2");
  CHECK(error_of("a[-1]") == "negative array indexes are not supported at 2");
  CHECK(error_of("a[\"x]") == "unterminated quoted key at 2");
  CHECK(error_of("it*ms") .find("at 2") != std::string::npos);
  CHECK(error_of("a b").find("unexpected character ' '") != std::string::npos);
  CHECK(error_of("a]b").find("at 1") != std::string::npos);
  CHECK(error_of("a[99999999999999999999999]") == "array index out of range at 2");
  try {
    JsonPath::parse("x.y[0]z");
    FAIL("no error");
  } catch (const JsonPathError& e) {
    CHECK(e.position() == 6);
  }
  CHECK_THROWS_WITH(JsonPathSet::parse({"ok", "bad["}), doctest::Contains("invalid path \"bad[\""));
}

TEST_CASE("duplicate keys: the last occurrence wins") {
  const std::string doc = R"({"robot_id":"1","x":{"a":1},"robot_id":"664","x":{"a":2}})";
  CHECK(found("robot_id", doc) == "\"664\"");
  CHECK(found("x.a", doc) == "2");
  CHECK(found("*", doc) == R"("664" {"a":2})");
  std::string many = "{";
  for (int i = 0; i < 40; ++i) many += "\"k" + std::to_string(i % 20) + "\":" + std::to_string(i) + ",";
  many.back() = '}';
  auto doc2 = JsonDocument::parse(many);
  REQUIRE(doc2.ok());
  auto all = JsonPath::parse("*").find(doc2.root());
  REQUIRE(all.size() == 20);
  CHECK(int64_t(all[0]) == 20);
  CHECK(found("k3", many) == "23");
}

TEST_CASE("deep nesting is a clean error, not a crash") {
  std::string deep(100000, '[');
  deep += std::string(100000, ']');
  auto doc = JsonDocument::parse(deep);
  CHECK_FALSE(doc.ok());
  CHECK(doc.too_deep());
  CHECK(doc.error() == "nested deeper than 1024 levels");
  std::string ok_deep = std::string(1000, '[') + std::string(1000, ']');
  CHECK(JsonDocument::parse(ok_deep).ok());
  auto bigger = JsonDocument::parse(deep, 200000);
  CHECK(bigger.ok());
}

TEST_CASE("invalid and empty documents report why") {
  CHECK(JsonDocument::parse("").error() == "empty body");
  CHECK_FALSE(JsonDocument::parse("{\"a\":").ok());
  CHECK_FALSE(JsonDocument::parse("<html>").ok());
  CHECK_FALSE(JsonDocument::parse("{\"a\":1} trailing").ok());
  auto moved = JsonDocument::parse("[1,2]");
  JsonDocument other = std::move(moved);
  CHECK(to_json(other.root()) == "[1,2]");
}

TEST_CASE("a 50 MB document parses and paths evaluate") {
  std::string big = "{\"items\":[";
  while (big.size() < 50u * 1024 * 1024) big += "{\"id\":12345,\"name\":\"abcdefghijklmnopqrstuvwxyz\"},";
  big += "{\"id\":\"last\"}]}";
  auto doc = JsonDocument::parse(big);
  REQUIRE(doc.ok());
  CHECK(JsonPath::parse("items[*].id").find(doc.root()).size() > 500000);
  auto last = JsonPath::parse("items[*].id").find(doc.root()).back();
  CHECK(scalar_text(last) == "last");
  CHECK(display(doc.root(), 30).size() < 40);
}

TEST_CASE("text helpers: quoting, truncation, scalars") {
  CHECK(quoted("a\"b\\c\n\x01") == R"("a\"b\\c\n\u0001")");
  CHECK(quoted("caf\xC3\xA9") == "\"caf\xC3\xA9\"");
  CHECK(quoted("bad\xFF") == "\"bad\xEF\xBF\xBD\"");
  CHECK(quoted("\xC0\x80") == "\"\xEF\xBF\xBD\xEF\xBF\xBD\"");  // overlong NUL
  CHECK(truncate_for_display("abcdef", 4) == "abcd\xE2\x80\xA6(+2 bytes)");
  CHECK(truncate_for_display("abc", 4) == "abc");
  CHECK(truncate_for_display("\xC3\xA9\xC3\xA9", 3) == "\xC3\xA9\xE2\x80\xA6(+2 bytes)");  // never splits é
  auto doc = JsonDocument::parse(R"({"i":664,"d":664.0,"s":"664","f":1.5,"b":true,"n":null,"u":18446744073709551615,"big":-12})");
  REQUIRE(doc.ok());
  auto at = [&](const char* k) { return *JsonPath::parse(k).find_first(doc.root()); };
  CHECK(scalar_text(at("i")) == "664");
  CHECK(scalar_text(at("d")) == "664");
  CHECK(scalar_text(at("s")) == "664");
  CHECK(scalar_text(at("f")) == "1.5");
  CHECK(scalar_text(at("b")) == "true");
  CHECK(scalar_text(at("n")) == "null");
  CHECK(scalar_equals(at("i"), "664"));
  CHECK(scalar_equals(at("i"), "664.0"));
  CHECK(scalar_equals(at("d"), "664"));
  CHECK(scalar_equals(at("s"), "664"));
  CHECK_FALSE(scalar_equals(at("s"), "664.0"));  // strings compare exactly
  CHECK_FALSE(scalar_equals(at("i"), "665"));
  CHECK_FALSE(scalar_equals(at("i"), "664x"));
  CHECK(scalar_equals(at("u"), "18446744073709551615"));
  CHECK(scalar_equals(at("big"), "-12"));
  CHECK(scalar_equals(at("b"), "true"));
  CHECK(scalar_equals(at("n"), "null"));
  CHECK(display(at("s")) == "\"664\"");
  CHECK(type_name(at("d")) == "number");
  CHECK(type_name(doc.root()) == "object");
  CHECK(is_json_content_type("application/json; charset=utf-8"));
  CHECK(is_json_content_type("application/problem+json"));
  CHECK_FALSE(is_json_content_type("text/html"));
  CHECK(looks_like_json("  \n{\"a\":1}"));
  CHECK_FALSE(looks_like_json("a=1"));
}
