// The SDK's JsonWriter (sdk/include/doppel/json_writer.hpp), which verdicts are written with.
#include <doctest/doctest.h>
#include <simdjson.h>

#include <cmath>

#include "doppel/json_writer.hpp"

using namespace doppel;

TEST_CASE("json writer: nesting, commas, scalars") {
  JsonWriter w;
  w.begin_object();
  w.field("a", 1).field("b", "x").field("c", true).field("d", 1.5).key("e").null();
  w.key("list").begin_array().value(std::uint64_t{18446744073709551615ull}).value(std::int64_t{-3}).begin_object().end_object().end_array();
  w.end_object();
  CHECK(w.complete());
  CHECK(w.str() == R"({"a":1,"b":"x","c":true,"d":1.5,"e":null,"list":[18446744073709551615,-3,{}]})");
}

TEST_CASE("json writer: strings are valid JSON whatever bytes they hold") {
  std::string nasty = std::string("q\"\\\n\t\x01\x7f", 7) + "\xff\xfe" + "\xc3\xa9" + "\xe2\x80\xa8" + "\xed\xa0\x80" +
                      "\xf0\x9f\x90\xb5" + std::string(1, '\0');
  std::string json = json_quote(nasty);
  CHECK(json == "\"q\\\"\\\\\\n\\t\\u0001\\u007f\xEF\xBF\xBD\xEF\xBF\xBD\xc3\xa9\\u2028\xEF\xBF\xBD\xEF\xBF\xBD\xEF\xBF\xBD"
                "\xf0\x9f\x90\xb5\\u0000\"");
  simdjson::dom::parser parser;
  simdjson::dom::element e;
  CHECK(!parser.parse(json).get(e));
  CHECK(json_quote("</script>&", true) == "\"\\u003c/script\\u003e\\u0026\"");
}

TEST_CASE("json writer: NaN and infinities become null; misuse throws") {
  JsonWriter w;
  w.begin_array().value(std::nan("")).value(1e308 * 10).end_array();
  CHECK(w.str() == "[null,null]");
  JsonWriter bad;
  CHECK_THROWS_AS(bad.end_object(), std::logic_error);
  JsonWriter twice;
  twice.value(1);
  CHECK_THROWS_AS(twice.value(2), std::logic_error);
}

TEST_CASE("truncate_for_display cuts at a character boundary and says how much is missing") {
  CHECK(truncate_for_display("short", 10) == "short");
  CHECK(truncate_for_display("abcdef", 3) == "abc\xE2\x80\xA6(+3 bytes)");
  CHECK(truncate_for_display("a\xc3\xa9z", 2) == "a\xE2\x80\xA6(+3 bytes)");  // é is not split
}
