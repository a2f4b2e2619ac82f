#include <doctest/doctest.h>

#include <algorithm>
#include <random>
#include <string>
#include <vector>

#include "doppel/json_text.hpp"
#include "doppel/testing.hpp"
#include "gzip_text.hpp"
#include "doppel/json_diff.hpp"
#include "ignored_edits.hpp"  // SDK-internal (sdk/src): the shortcut and the tape are pinned here
#include "json_tape.hpp"

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

// A random JSON text of objects, arrays and scalars, from a small pool of keys and values so
// that equal and look-alike values are frequent.
std::string random_json(std::mt19937& rng, int depth = 0) {
  static const char* const keys[] = {"a", "b", "id", "ts", "trace_id", "meta", "l", "x.y", "caf\u00e9"};
  static const char* const scalars[] = {"0", "-1", "1.0", "1", "2.5", "1e5", "18446744073709551615", "\"s\"", "\"t\"",
                                        "\"caf\u00e9\"", "\"tab\\tx\"", "true", "false", "null", "\"\""};
  auto pick = [&](std::size_t n) { return static_cast<std::size_t>(rng() % n); };
  std::size_t kind = depth > 3 ? 2 : pick(3);
  if (kind == 2) return scalars[pick(std::size(scalars))];
  std::string out(1, kind == 0 ? '{' : '[');
  std::size_t n = pick(5);
  for (std::size_t i = 0; i < n; ++i) {
    if (i) out += pick(2) ? ", " : ",";
    if (kind == 0) out += std::string("\"") + keys[pick(std::size(keys))] + "\":";
    out += random_json(rng, depth + 1);
  }
  out += kind == 0 ? '}' : ']';
  return out;
}

// `text` with its i-th scalar token (counting strings, numbers and literals, keys included)
// replaced by `with`.
std::string replace_token(const std::string& text, std::size_t i, const std::string& with) {
  std::size_t seen = 0;
  for (std::size_t p = 0; p < text.size();) {
    char c = text[p];
    std::size_t end = p;
    if (c == '"') {
      for (end = p + 1; text[end] != '"'; ++end)
        if (text[end] == '\\') ++end;
      ++end;
    } else if (c == '-' || (c >= '0' && c <= '9') || (c >= 'a' && c <= 'z')) {
      while (end < text.size() && std::string_view(",]} :").find(text[end]) == std::string_view::npos) ++end;
    } else {
      ++p;
      continue;
    }
    if (seen++ == i) return text.substr(0, p) + with + text.substr(end);
    p = end;
  }
  return text;
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

TEST_CASE("bodies that differ only in ignored scalars are equal without parsing the replay") {
  doppel::json::JsonDiffConfig config;
  config.ignore = json::JsonPathSet::parse({"meta.trace_id", "items[*].ts", "stamp"});
  // The original with its five scalars swapped for others.
  auto edited = [](const char* trace, const char* n, const char* ts0, const char* ts1, const char* stamp) {
    return std::string(R"({"meta":{"trace_id":)") + trace + R"(,"n":)" + n + R"(},"items":[{"ts":)" + ts0 +
           R"(,"v":"x"},{"ts":)" + ts1 + R"(,"v":"y"}],"stamp":)" + stamp + "}";
  };
  std::string a = edited(R"("a1")", "1", "17", R"("t")", "true");
  auto only_ignored = [&](const std::string& b) {
    return doppel::json::differs_only_at_ignored_scalars(a, b, config.ignore);
  };
  CHECK(only_ignored(edited(R"("b22")", "1", "17", R"("t")", "true")));
  CHECK(only_ignored(edited(R"("a1")", "1", "-4.25", "null", R"("no")")));
  CHECK(only_ignored(edited("7", "1", R"("17")", R"("t")", "false")));
  // Anything else is left to the walk: a value that is not ignored, a key, an escape, a
  // number simdjson might not take alike, a container, whitespace.
  CHECK_FALSE(only_ignored(edited(R"("a1")", "2", "17", R"("t")", "true")));
  std::string key = a;
  key.replace(key.find("trace_id"), 8, "trace_ie");
  CHECK_FALSE(only_ignored(key));
  CHECK_FALSE(only_ignored(edited(R"("a\u0031")", "1", "17", R"("t")", "true")));
  CHECK_FALSE(only_ignored(edited(R"("a1")", "1", "1e7", R"("t")", "true")));
  CHECK_FALSE(only_ignored(edited(R"("a1")", "1", "[17]", R"("t")", "true")));
  CHECK_FALSE(only_ignored(edited(R"("a1" )", "1", "17", R"("t")", "true")));
  // Through the comparator: the same verdicts as a full walk.
  auto c = comparator(Value::table({{"ignore", Value::array({"meta.trace_id"})}}));
  CHECK(diff(*c, R"({"meta":{"trace_id":"1"},"x":[1,2]})", R"({"meta":{"trace_id":"2"},"x":[1,2]})").empty());
  CHECK(summary(diff(*c, R"({"meta":{"trace_id":"1"},"x":[1,2]})", R"({"meta":{"trace_id":"2"},"x":[1,3]})")) ==
        "x[1] changed 2 3");
  CHECK(diff(*c, R"({"meta":{"trace_id":"1"},"x":[1,2],})", R"({"meta":{"trace_id":"2"},"x":[1,2],})").at(0).kind ==
        "invalid_json");
}

TEST_CASE("the shortcut for ignored scalars agrees with the full walk on random edits") {
  std::mt19937 rng(16888);
  doppel::json::JsonDiffConfig config;
  config.ignore = json::JsonPathSet::parse({"ts", "meta.*", "[*].ts", "l[1]", "a.b"});
  const char* const replacements[] = {"1", "-7", "2.25", "\"z\"", "\"ab cd\"", "true", "null", "1e3", "\"\\n\"", "[]"};
  std::size_t shortcut = 0, cases = 0;
  for (int round = 0; round < 3000; ++round) {
    std::string a = "{\"meta\":{\"trace_id\":\"x\"},\"ts\":1,\"l\":[1,2,3],\"a\":{\"b\":\"c\"},\"body\":" + random_json(rng) + "}";
    std::string b = a;
    for (std::size_t edits = 1 + rng() % 3; edits > 0; --edits)
      b = replace_token(b, rng() % 12, replacements[rng() % std::size(replacements)]);
    if (a == b) continue;
    ++cases;
    auto fast = doppel::json::json_diff(a, b, config);
    auto walked = doppel::json::json_diff_walk(a, b, config);
    CHECK_MESSAGE(summary(fast) == summary(walked), a << "\n" << b);
    if (doppel::json::differs_only_at_ignored_scalars(a, b, config.ignore)) {
      ++shortcut;
      CHECK_MESSAGE(walked.empty(), a << "\n" << b);
      CHECK(json::JsonDocument::parse(b).ok());
    }
  }
  CHECK(shortcut > 100);  // the shortcut is exercised, not just the walk
  CHECK(shortcut < cases);
}

namespace {

// The response bodies the benchmarks compare, in small: a trace id the comparator ignores, a list
// of records, and a count after it.
std::string records_body(const std::string& trace, const std::vector<std::string>& items, const std::string& count) {
  std::string out = R"({"meta":{"trace_id":")" + trace + R"("},"items":[)";
  for (std::size_t i = 0; i < items.size(); ++i) out += (i ? "," : "") + items[i];
  return out + R"(],"n":)" + count + "}";
}

// What scan_edits makes of two texts, the original parsed as the comparator parses it.
doppel::json::EditScan::Outcome scan_outcome(const std::string& a, const std::string& b,
                                             const json::JsonPathSet& ignore) {
  simdjson::dom::parser parser;
  simdjson::dom::element root;
  REQUIRE(parser.parse(a).get(root) == simdjson::SUCCESS);
  return doppel::json::scan_edits(a, doppel::json::structural_tokens(parser), b, ignore).outcome;
}

}  // namespace

TEST_CASE("bodies that differ in a few elements of a list: only those are parsed from the replay, same verdicts") {
  doppel::json::JsonDiffConfig config;
  config.ignore = json::JsonPathSet::parse({"meta.trace_id"});
  std::vector<std::string> items = {R"({"id":0,"v":1,"s":"a"})", R"({"id":1,"v":2,"s":"caf\u00e9"})",
                                    R"({"id":2,"v":3,"s":"c"})", R"({"id":3,"v":4,"s":"d","v":4})"};
  // A list long enough for its elements to be a small part of the body, as in the benchmarks.
  for (int i = 4; i < 16; ++i) items.push_back(R"({"id":)" + std::to_string(i) + R"(,"v":0,"s":"e"})");
  auto with = [&](std::initializer_list<std::pair<std::size_t, std::string>> changes) {
    auto copy = items;
    for (const auto& [i, item] : changes) copy[i] = item;
    return copy;
  };
  struct Case {
    std::vector<std::string> items;
    std::string count, expected;
    bool confined;  // the differences lie in elements of the list: the replay's elements alone are parsed
  };
  const std::vector<Case> cases = {
      {with({{1, R"({"id":1,"v":5,"s":"caf\u00e9"})"}}), "4", "items[1].v changed 2 5", true},
      // Written otherwise, equal: 2.0 and 2, raw UTF-8 and its escape, an escaped ASCII letter.
      {with({{1, "{\"id\":1,\"v\":2.0,\"s\":\"caf\xC3\xA9\"}"}}), "4", "", true},
      {with({{2, R"({"id":2,"v":3,"s":"\u0063"})"}}), "4", "", true},
      // A repeated key: the change to the first "v" is shadowed by the last one, a change to that is not.
      {with({{3, R"({"id":3,"v":9,"s":"d","v":4})"}}), "4", "", true},
      {with({{3, R"({"id":3,"v":4,"s":"d","v":5})"}}), "4", "items[3].v changed 4 5", true},
      // Another type from the element's first byte on: the innermost container there is the list.
      {with({{0, R"([{"id":0}])"}}), "4", R"(items[0] type {"id":0,"v":1,"s":"a"} [{"id":0}])", false},
      {with({{0, R"({"id":0,"v":1})"}}), "4", R"(items[0].s missing "a" )", true},
      {with({{0, R"({"id":0,"v":7,"s":"a"})"}, {2, R"({"id":2,"v":8,"s":"c"})"}}), "4",
       "items[0].v changed 1 7 | items[2].v changed 3 8", true},
      // A difference outside the list too: the whole replay is walked.
      {with({{1, R"({"id":1,"v":5,"s":"caf\u00e9"})"}}), "5", "items[1].v changed 2 5 | n changed 4 5", false},
  };
  std::string a = records_body("t1", items, "4");
  for (const Case& c : cases) {
    std::string b = records_body("t2", c.items, c.count);
    auto fast = doppel::json::json_diff(a, b, config);
    CHECK_MESSAGE(summary(fast) == summary(doppel::json::json_diff_walk(a, b, config)), b);
    CHECK_MESSAGE(summary(fast) == c.expected, b);
    CHECK_MESSAGE((scan_outcome(a, b, config.ignore) == doppel::json::EditScan::Outcome::confined) == c.confined, b);
  }
  // Two elements swapped: whether the list is a permutation takes the whole list, which is walked.
  std::string swapped = records_body("t2", with({{0, items[2]}, {2, items[0]}}), "4");
  CHECK(scan_outcome(a, swapped, config.ignore) == doppel::json::EditScan::Outcome::confined);
  auto order = doppel::json::json_diff(a, swapped, config);
  REQUIRE(order.size() == 1);
  CHECK(order[0].path == "items");
  CHECK(order[0].kind == "order");
  CHECK(summary(order) == summary(doppel::json::json_diff_walk(a, swapped, config)));
  // An element of the replay that does not parse: the whole replay is parsed, to tell why.
  std::string broken = records_body("t2", with({{1, R"({"id":1,"v":})"}}), "4");
  CHECK(scan_outcome(a, broken, config.ignore) == doppel::json::EditScan::Outcome::confined);
  auto invalid = doppel::json::json_diff(a, broken, config);
  REQUIRE(invalid.size() == 1);
  CHECK(invalid[0].kind == "invalid_json");
  CHECK(summary(invalid) == summary(doppel::json::json_diff_walk(a, broken, config)));
  // An element nested so deep below the list that the replay as a whole is too deep to parse.
  std::string deep_a = std::string(1020, '[') + R"([{"a":[1]},{"a":2}])" + std::string(1020, ']');
  std::string deep_b = std::string(1020, '[') + R"([{"a":[[1]]},{"a":2}])" + std::string(1020, ']');
  CHECK(json::JsonDocument::parse(deep_a).ok());
  CHECK_FALSE(json::JsonDocument::parse(deep_b).ok());
  auto too_deep = doppel::json::json_diff(deep_a, deep_b, config);
  REQUIRE(too_deep.size() == 1);
  CHECK(too_deep[0].kind == "invalid_json");
  CHECK(too_deep[0].replay.find("nested deeper than 1024 levels") != std::string::npos);
}

TEST_CASE("the text scan agrees with the full walk on lists edited at random") {
  std::mt19937 rng(17);
  std::vector<doppel::json::JsonDiffConfig> configs(3);
  configs[0].ignore = json::JsonPathSet::parse({"meta.trace_id", "items[*].ts"});
  configs[1].unordered = json::JsonPathSet::parse({"items[*].tags"});
  configs[1].max_differences = 3;
  configs[2].ignore = json::JsonPathSet::parse({"items[1]"});
  configs[2].tolerance = 0.5;
  auto item = [&](std::size_t id, bool alt) {
    std::string s = "{\"id\":" + std::to_string(id) + ",\"v\":" + (alt ? "1.0" : "1") + ",\"tags\":[\"x\",\"y\"]";
    if (rng() % 4 == 0) s += ",\"id\":" + std::to_string(id + 1);  // a repeated key
    if (rng() % 3 == 0) s += ",\"ts\":" + std::to_string(rng() % 100);
    return s + "}";
  };
  std::size_t confined = 0, cases = 0;
  for (int round = 0; round < 2000; ++round) {
    std::size_t n = 1 + rng() % 8;
    std::vector<std::string> a;
    for (std::size_t i = 0; i < n; ++i) a.push_back(item(i, false));
    auto b = a;
    for (std::size_t edits = rng() % 4; edits > 0; --edits) {
      std::size_t k = rng() % n;
      switch (rng() % 6) {
        case 0: b[k] = item(k, true); break;
        case 1: std::swap(b[k], b[rng() % n]); break;
        case 2: std::reverse(b.begin(), b.end()); break;
        case 3: b[k] = "[" + b[k] + "]"; break;
        case 4: b[k].insert(b[k].find(']'), ",\"\\u0078\""); break;
        default: b[k].insert(b[k].size() - 1, ",\"tags\":{}"); break;
      }
    }
    std::string ta = records_body("t", a, "0"), tb = records_body(rng() % 2 ? "u" : "t", b, "0");
    for (const auto& config : configs) {
      ++cases;
      confined += scan_outcome(ta, tb, config.ignore) == doppel::json::EditScan::Outcome::confined;
      CHECK_MESSAGE(summary(doppel::json::json_diff(ta, tb, config)) ==
                        summary(doppel::json::json_diff_walk(ta, tb, config)),
                    ta << "\n" << tb);
    }
  }
  CHECK(confined > 1000);  // the regions are exercised, not just the walk
  CHECK(confined < cases);
}

TEST_CASE("identical(): values written alike are told apart from values merely equal") {
  simdjson::dom::parser parser;
  simdjson::dom::document da, db;
  simdjson::dom::element root;
  // The same value at other tape positions and string offsets on each side.
  std::string a = R"([{"pad":"zzzz","q":[1]},{"a":[1,-2,"x",{"b":null,"c":true}],"d":2.5}])";
  std::string b = R"([{"a":[1,-2,"x",{"b":null,"c":true}],"d":2.5},{"a":[1,-2,"x",{"b":null,"c":false}],"d":2.5},)"
                  R"({"d":2.5,"a":[1,-2,"x",{"b":null,"c":true}]},{"a":[1.0,-2,"x",{"b":null,"c":true}],"d":2.5},)"
                  R"({"a":[1,-2,"y",{"b":null,"c":true}],"d":2.5},{"a":[1,-2,"x",{"b":null,"c":true}],"d":2.5,"e":0}])";
  REQUIRE(parser.parse_into_document(da, a.data(), a.size()).get(root) == simdjson::SUCCESS);
  REQUIRE(parser.parse_into_document(db, b.data(), b.size()).get(root) == simdjson::SUCCESS);
  doppel::json::JsonTape ta(da), tb(db);
  auto nth = [](const doppel::json::JsonTape& t, std::size_t i) {
    std::size_t e = doppel::json::JsonTape::first(doppel::json::JsonTape::kRoot);
    while (i-- > 0) e = t.next(e);
    return e;
  };
  std::size_t v = nth(ta, 1);
  CHECK(ta.identical(v, tb, nth(tb, 0)));
  CHECK_FALSE(ta.identical(v, tb, nth(tb, 1)));  // true and false
  CHECK_FALSE(ta.identical(v, tb, nth(tb, 2)));  // equal, keys in another order
  CHECK_FALSE(ta.identical(v, tb, nth(tb, 3)));  // equal, 1.0 for 1
  CHECK_FALSE(ta.identical(v, tb, nth(tb, 4)));  // a string of the same length
  CHECK_FALSE(ta.identical(v, tb, nth(tb, 5)));  // one more member
  CHECK_FALSE(ta.identical(nth(ta, 0), tb, nth(tb, 0)));
}

TEST_CASE("simdjson's structural index, which the text scan reads, holds what the scan expects") {
  simdjson::dom::parser parser;
  simdjson::dom::element root;
  std::string text = R"( {"a" : [1, -2.5e3,true ,"x\"y",{}], "b\u0041":null} )";
  REQUIRE(parser.parse(text).get(root) == simdjson::SUCCESS);
  // The offset of each bracket, comma and colon, and of the first byte of each string (keys
  // included), number and literal, in order; nothing for whitespace or inside strings.
  std::vector<std::uint32_t> expected = {1, 2, 6, 8, 9, 10, 12, 18, 19, 24, 25, 31, 32, 33, 34, 35, 37, 46, 47, 51};
  auto tokens = doppel::json::structural_tokens(parser);
  CHECK(std::vector<std::uint32_t>(tokens.begin(), tokens.end()) == expected);
  REQUIRE(parser.parse(std::string_view("\"abc\"")).get(root) == simdjson::SUCCESS);
  CHECK(doppel::json::structural_tokens(parser).size() == 1);
}

TEST_CASE("order: a permutation is told from a few changed elements, look-alike numbers included") {
  auto c = comparator();
  CHECK(summary(diff(*c, "[1.0, 2, 3]", "[1.0000000000001, 3, 2]")) == "[1] changed 2 3 | [2] changed 3 2");
  // Equal within the relative slack but hashed apart: still paired as the walk pairs them.
  CHECK(summary(diff(*c, R"([{"v":1.0,"k":"x"},{"w":1},{"v":1.0000000000001,"k":"x"}])",
                     R"([{"v":1.0000000000001,"k":"x"},{"v":1.0,"k":"x"},{"w":1}])")) ==
        R"($ order [{"v":1,"k":"x"},{"w":1},{"v":1.0000000000001,"k":"x"}] [{"v":1.0000000000001,"k":"x"},{"v":1,"k":"x"},{"w":1}])");
  CHECK(summary(diff(*c, R"({"l":[[1,2],[3,4]]})", R"({"l":[[2,1],[4,3]]})")) ==
        "l[0] order [1,2] [2,1] | l[1] order [3,4] [4,3]");
  CHECK(summary(diff(*c, R"({"a":[1,2,3],"a":[3,2,1]})", R"({"a":[2,1,3]})")) == "a order [3,2,1] [2,1,3]");
  CHECK(diff(*c, "[-0.0, 0]", "[0, -0.0]").empty());
}

TEST_CASE("the tape the comparator reads is simdjson's DOM, shown exactly as json::display shows it") {
  simdjson::dom::parser parser;
  simdjson::dom::document doc;
  std::string text = R"({"a":[1,-2,18446744073709551615,2.5,"s\u00e9\n",true,false,null,{}],"b":{"c":"\u2028"}})";
  simdjson::dom::element root;
  REQUIRE(parser.parse_into_document(doc, text.data(), text.size()).get(root) == simdjson::SUCCESS);
  doppel::json::JsonTape t(doc);
  std::size_t r = doppel::json::JsonTape::kRoot;
  REQUIRE(t.type(r) == '{');
  CHECK(t.count(r) == 2);
  std::size_t key = doppel::json::JsonTape::first(r);
  CHECK(t.string(key) == "a");
  std::size_t array = key + 1;
  REQUIRE(t.type(array) == '[');
  CHECK(t.count(array) == 9);
  std::string types;
  std::size_t e = doppel::json::JsonTape::first(array);
  for (; e != t.end(array); e = t.next(e)) types += t.type(e);
  CHECK(types == "llud\"tfn{");
  std::size_t first = doppel::json::JsonTape::first(array);
  CHECK(t.int64(first) == 1);
  CHECK(t.int64(t.next(first)) == -2);
  CHECK(t.uint64(t.next(t.next(first))) == 18446744073709551615ULL);
  CHECK(t.real(t.next(t.next(t.next(first)))) == 2.5);
  CHECK(t.string(t.next(t.next(t.next(t.next(first))))) == "s\xC3\xA9\n");
  std::size_t b = t.next(array);
  CHECK(t.string(b) == "b");
  CHECK(t.next(b + 1) == t.end(r));
  for (std::size_t limit : {0, 1, 5, 16, 20, 200}) {
    CHECK(doppel::json::display(t, r, limit) == json::display(root, limit));
    CHECK(doppel::json::display(t, array, limit) == json::display(root["a"].value(), limit));
    CHECK(doppel::json::display(t, b + 1, limit) == json::display(root["b"].value(), limit));
  }
}
