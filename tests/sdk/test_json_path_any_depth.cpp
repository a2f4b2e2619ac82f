// `**` in JSON paths: any number of steps, zero included. Every user of the SDK's paths
// (redact, json_field, the json and nonempty comparators, correlate) gets it from here.
#include <doctest/doctest.h>

#include <string>

#include "doppel/json_path.hpp"
#include "doppel/json_text.hpp"

using namespace doppel::json;

namespace {
ConcretePath concrete(const std::string& text) {
  auto out = parse_concrete_path(text);
  REQUIRE(out.has_value());
  return *out;
}
bool matches(const std::string& pattern, const std::string& path) {
  return JsonPath::parse(pattern).matches(concrete(path));
}
// The locations `pattern` finds in `text`, as canonical paths joined by spaces.
std::string paths_found(const std::string& pattern, const std::string& text) {
  auto doc = JsonDocument::parse(text);
  REQUIRE(doc.ok());
  std::string out;
  for (auto& m : JsonPath::parse(pattern).find_with_paths(doc.root())) {
    if (!out.empty()) out += " ";
    out += format_path(m.path);
  }
  return out;
}
std::string values_found(const std::string& pattern, const std::string& text) {
  auto doc = JsonDocument::parse(text);
  REQUIRE(doc.ok());
  std::string out;
  for (auto e : JsonPath::parse(pattern).find(doc.root())) {
    if (!out.empty()) out += " ";
    out += to_json(e);
  }
  return out;
}
}  // namespace

TEST_CASE("**.password matches the key at depth 0, 1, 3, below array elements and arrays of arrays") {
  CHECK(matches("**.password", "password"));
  CHECK(matches("**.password", "user.password"));
  CHECK(matches("**.password", "a.b.c.password"));
  CHECK(matches("**.password", "items[3].password"));
  CHECK(matches("**.password", "grid[0][1].password"));
  CHECK(matches("**.password", "[0].password"));  // a top-level array
  CHECK(matches("$.**.password", "user.password"));
  CHECK(matches(".**.password", "password"));
  // Still exact per key: no substring, no prefix, and the last step must be the key.
  CHECK_FALSE(matches("**.password", "password_hint"));
  CHECK_FALSE(matches("**.password", "old_password"));
  CHECK_FALSE(matches("**.password", "password.value"));
  CHECK_FALSE(matches("**.password", "items[0]"));
  CHECK_FALSE(matches("**.password", "$"));
  // `**` spans indexes too, `[*]` only indexes, `*` only keys.
  CHECK(matches("**[*]", "a[0]"));
  CHECK(matches("**[*]", "[2]"));
  CHECK_FALSE(matches("**[*]", "a.b"));
}

TEST_CASE("without ** a path keeps its exact meaning") {
  CHECK(matches("password", "password"));
  CHECK_FALSE(matches("password", "user.password"));
  CHECK_FALSE(matches("password", "items[0].password"));
  CHECK_FALSE(matches("*.password", "a.b.password"));  // `*` is one level
  CHECK(matches("items[*].password", "items[4].password"));
  CHECK_FALSE(matches("items[*].password", "items[4][0].password"));
}

TEST_CASE("** in the middle and at the end") {
  CHECK(matches("a.**.id", "a.id"));
  CHECK(matches("a.**.id", "a.x[2].y.id"));
  CHECK_FALSE(matches("a.**.id", "b.x.id"));
  CHECK_FALSE(matches("a.**.id", "id"));
  CHECK(matches("a.**", "a"));  // zero steps
  CHECK(matches("a.**", "a.b[0].c"));
  CHECK_FALSE(matches("a.**", "ab"));
  // Backtracking: the first `b` seen is not the one the pattern needs.
  CHECK(matches("**.b.c", "b.x.b.c"));
  CHECK(matches("**.a.**.b", "x.a.y.a.z.b"));
  CHECK_FALSE(matches("**.a.**.b", "x.b.a"));
  CHECK(matches("**.*", "anything[0].at.all"));
  CHECK_FALSE(matches("**.*", "[0]"));  // ends at an index, `*` needs a key
  // `**.**` is `**`.
  CHECK(JsonPath::parse("**.**.x").segments().size() == 2);
  CHECK(JsonPath::parse("**.**.x").matches(concrete("x")));
}

TEST_CASE("covers and may_match_below with **") {
  auto p = JsonPath::parse("**.token");
  CHECK(p.covers(concrete("token")));
  CHECK(p.covers(concrete("token.inner[0]")));
  CHECK(p.covers(concrete("a[1].token.x")));
  CHECK_FALSE(p.covers(concrete("a.tokens")));
  // A subtree can hold a match anywhere, so nothing is skipped...
  CHECK(p.may_match_below(concrete("a.b[0]")));
  CHECK(p.may_match_below(ConcretePath{}));
  // ...while a pattern anchored below `a` skips what is not under `a`.
  auto anchored = JsonPath::parse("a.**.id");
  CHECK(anchored.may_match_below(ConcretePath{}));
  CHECK(anchored.may_match_below(concrete("a")));
  CHECK(anchored.may_match_below(concrete("a.x.id")));  // a.x.id.id
  CHECK_FALSE(anchored.may_match_below(concrete("b")));
  CHECK_FALSE(anchored.may_match_below(concrete("b.a")));
  auto tail = JsonPath::parse("a.**");
  CHECK(tail.may_match_below(concrete("a.b.c")));
  CHECK_FALSE(tail.may_match_below(concrete("z")));
  JsonPathSet set = JsonPathSet::parse({"x.y", "a.**.id"});
  CHECK(set.may_match_below(concrete("a.q")));
  CHECK(set.may_match_below(concrete("x")));
  CHECK_FALSE(set.may_match_below(concrete("q")));
}

TEST_CASE("find with ** returns every location once, outer before inner, document order") {
  const std::string doc =
      R"({"password":"top","user":{"password":"u","profile":{"security":{"password":"deep"}}},)"
      R"("items":[{"password":"i0"},{"x":1},{"password":"i2"}],"grid":[[{"password":"g"}]],)"
      R"("nested":{"password":{"password":"inner"}},"password_hint":"no"})";
  CHECK(paths_found("**.password", doc) ==
        "password user.password user.profile.security.password items[0].password items[2].password "
        "grid[0][0].password nested.password nested.password.password");
  CHECK(values_found("**.password", doc) ==
        R"("top" "u" "deep" "i0" "i2" "g" {"password":"inner"} "inner")");
  CHECK(paths_found("items.**.password", doc) == "items[0].password items[2].password");
  // Patterns that could reach one location two ways still report it once.
  CHECK(paths_found("**.*.**.password", R"({"a":{"b":{"password":1}}})") == "a.b.password");
  // Duplicate keys: the last occurrence, as everywhere else in path lookups.
  CHECK(values_found("**.k", R"({"k":1,"k":2})") == "2");
  CHECK(values_found("**.missing", doc).empty());
  CHECK(JsonPath::parse("**.password").find_first(JsonDocument::parse(doc).root()).has_value());
}

TEST_CASE("** syntax: quoted keys stay literal, ** must be a whole segment") {
  auto literal = JsonPath::parse(R"(["**"].x)");
  CHECK_FALSE(literal.has_any_depth());
  CHECK(literal.matches(ConcretePath{PathStep::of_key("**"), PathStep::of_key("x")}));
  CHECK_FALSE(literal.matches(concrete("a.x")));
  // Dotted key names under **: quote them.
  auto dotted = JsonPath::parse(R"(**["user.password"])");
  CHECK(dotted.matches(ConcretePath{PathStep::of_key("a"), PathStep::of_key("user.password")}));
  CHECK_FALSE(dotted.matches(concrete("user.password")));
  CHECK(JsonPath::parse("**.password").has_wildcard());
  CHECK(JsonPath::parse("**.password").has_any_depth());
  CHECK_FALSE(JsonPath::parse("**.password").is_single_key());
  std::string error;
  CHECK_FALSE(JsonPath::try_parse("a***", &error));
  CHECK(error.find("'**'") != std::string::npos);
  CHECK_FALSE(JsonPath::try_parse("pass**", &error));
  CHECK_FALSE(JsonPath::try_parse("a.**b", &error));
  // A reported path never contains **, so it cannot be read back as a concrete one.
  CHECK_FALSE(parse_concrete_path("**.x").has_value());
  CHECK(JsonPath::parse("**").matches(ConcretePath{}));  // `**` alone reaches the root too
}
