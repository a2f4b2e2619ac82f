#include <doctest/doctest.h>

#include <string>

#include "doppel/testing.hpp"
#include "gzip_text.hpp"

using namespace doppel;
using doppel::testing::make_message;

namespace {

MessagePtr post(const std::string& body, const std::string& content_type = "application/json",
                const std::string& target = "/v2/robot/query", const std::string& extra_headers = "") {
  std::string head = "POST " + target + " HTTP/1.1\r\nHost: a\r\n";
  if (!content_type.empty()) head += "Content-Type: " + content_type + "\r\n";
  head += extra_headers;
  if (extra_headers.find("Transfer-Encoding") == std::string::npos)
    head += "Content-Length: " + std::to_string(body.size()) + "\r\n";
  return make_message(Kind::request, head + "\r\n" + body);
}
MessagePtr get(const std::string& target) {
  return make_message(Kind::request, "GET " + target + " HTTP/1.1\r\nHost: a\r\n\r\n");
}
std::string chunked(const std::string& body) {
  std::string out;
  std::size_t half = body.size() / 2;
  auto chunk = [&](std::string_view part) {
    char size[16];
    snprintf(size, sizeof size, "%zx", part.size());
    out += std::string(size) + "\r\n" + std::string(part) + "\r\n";
  };
  chunk(std::string_view(body).substr(0, half));
  chunk(std::string_view(body).substr(half));
  return out + "0\r\n\r\n";
}

struct Filter {
  explicit Filter(Value options) : h(testing::linked_plugin("json_field"), options) {}
  bool keeps(MessagePtr m) {
    auto before = h.emitted().size();
    h.process(std::move(m));
    return h.emitted().size() == before + 1;
  }
  testing::StageHarness h;
};

}  // namespace

TEST_CASE("in matches strings and numbers alike, from JSON, form and query") {
  Filter f(Value::table({{"field", "robot_id"}, {"in", Value::array({"664", 700})}}));
  CHECK(f.keeps(post(R"({"robot_id":664})")));
  CHECK(f.keeps(post(R"({"robot_id":"664"})")));
  CHECK(f.keeps(post(R"({"robot_id":700.0})")));
  CHECK(f.keeps(post(R"({"robot_id":"700"})")));
  CHECK_FALSE(f.keeps(post(R"({"robot_id":665})")));
  CHECK_FALSE(f.keeps(post(R"({"robot_id":"6645"})")));
  CHECK_FALSE(f.keeps(post(R"({"robot":{"robot_id":664}})")));  // exact path, not anywhere
  CHECK(f.keeps(post("robot_id=664&q=hello+world", "application/x-www-form-urlencoded")));
  CHECK(f.keeps(post("q=x&robot%5Fid=%36%364", "application/x-www-form-urlencoded; charset=UTF-8")));
  CHECK(f.keeps(post("robot_id=664", "")));  // no Content-Type: a form is recognised
  CHECK(f.keeps(get("/v2/robot/query?lang=en&robot_id=664")));
  CHECK_FALSE(f.keeps(get("/v2/robot/query?robot_id=665")));
  CHECK_FALSE(f.keeps(get("/v2/robot/query?robot_id_x=664")));
  CHECK(f.h.dropped("value_not_in_list") == 3);
  CHECK(f.h.dropped("field_missing") == 2);
}

TEST_CASE("nested and wildcard paths; the items.id vs items.idempotency_key trap") {
  Filter f(Value::table({{"field", "items[*].id"}, {"in", Value::array({"7"})}}));
  CHECK(f.keeps(post(R"({"items":[{"id":1},{"id":7}]})")));
  CHECK_FALSE(f.keeps(post(R"({"items":[{"id":1},{"idempotency_key":7}]})")));
  CHECK_FALSE(f.keeps(post(R"({"items":{"id":7}})")));  // [*] needs an array

  Filter trap(Value::table({{"field", "items.id"}, {"exists", true}}));
  CHECK_FALSE(trap.keeps(post(R"({"items":{"idempotency_key":"abc"}})")));
  CHECK(trap.keeps(post(R"({"items":{"id":null}})")));
  CHECK(trap.h.dropped("field_missing") == 1);

  Filter nested(Value::table({{"field", "$.a[\"x.y\"][1]"}, {"in", Value::array({"b"})}}));
  CHECK(nested.keeps(post(R"({"a":{"x.y":["a","b"]}})")));
  CHECK_FALSE(nested.keeps(post(R"({"a":{"x":{"y":["a","b"]}}})")));
}

TEST_CASE("not_in, matches and exists") {
  Filter deny(Value::table({{"field", "robot_id"}, {"not_in", Value::array({"test", 0})}}));
  CHECK(deny.keeps(post(R"({"robot_id":664})")));
  CHECK_FALSE(deny.keeps(post(R"({"robot_id":"test"})")));
  CHECK_FALSE(deny.keeps(post(R"({"robot_id":0})")));
  CHECK_FALSE(deny.keeps(get("/x?robot_id=test")));
  CHECK(deny.keeps(post(R"({"other":1})")));  // absent is not listed
  CHECK(deny.h.dropped("value_in_not_in_list") == 3);

  Filter re(Value::table({{"field", "user.email"}, {"matches", "@example\\.com$"}}));
  CHECK(re.keeps(post(R"({"user":{"email":"a@example.com"}})")));
  CHECK_FALSE(re.keeps(post(R"({"user":{"email":"a@example.org"}})")));
  CHECK_FALSE(re.keeps(post(R"({"user":{"email":["a@example.com"]}})")));  // containers never match
  CHECK_FALSE(re.keeps(post(R"({"user":{}})")));
  CHECK(re.h.dropped("value_not_matching") == 2);
  CHECK(re.h.dropped("field_missing") == 1);

  Filter num_re(Value::table({{"field", "n"}, {"matches", "^6[0-9]{2}$"}}));
  CHECK(num_re.keeps(post(R"({"n":664})")));
  CHECK(num_re.keeps(post(R"({"n":664.0})")));

  Filter absent(Value::table({{"field", "debug"}, {"exists", false}}));
  CHECK(absent.keeps(post(R"({"x":1})")));
  CHECK_FALSE(absent.keeps(post(R"({"debug":false})")));
  CHECK_FALSE(absent.keeps(get("/?debug")));
  CHECK(absent.h.dropped("field_present") == 2);

  Filter implied(Value::table({{"field", "robot_id"}}));  // no condition: exists = true
  CHECK(implied.keeps(post(R"({"robot_id":""})")));
  CHECK_FALSE(implied.keeps(post(R"({})")));
}

TEST_CASE("gzip and chunked bodies are decoded before looking") {
  Filter f(Value::table({{"field", "robot_id"}, {"in", Value::array({"664"})}}));
  CHECK(f.keeps(post(doppel::testing::gzip_text(R"({"robot_id":664})"), "application/json", "/q", "Content-Encoding: gzip\r\n")));
  CHECK_FALSE(f.keeps(post(doppel::testing::gzip_text(R"({"robot_id":1})"), "application/json", "/q", "Content-Encoding: gzip\r\n")));
  CHECK(f.keeps(post(chunked(R"({"robot_id":"664","pad":"xxxxxxxxxxxxxxxx"})"), "application/json", "/q",
                     "Transfer-Encoding: chunked\r\n")));
  CHECK(f.keeps(post(chunked(doppel::testing::gzip_text("a=1&robot_id=664")), "application/x-www-form-urlencoded", "/q",
                     "Transfer-Encoding: chunked\r\nContent-Encoding: gzip\r\n")));
  CHECK_FALSE(f.keeps(post("not gzip at all", "application/json", "/q", "Content-Encoding: gzip\r\n")));
  CHECK(f.h.dropped("undecodable_body") == 1);
}

TEST_CASE("bad bodies are counted drops with a reason, never a crash") {
  Filter f(Value::table({{"field", "robot_id"}, {"in", Value::array({"664"})}}));
  CHECK_FALSE(f.keeps(post("{\"robot_id\":664")));     // truncated JSON
  CHECK_FALSE(f.keeps(post("<html>hi</html>")));       // HTML labelled as JSON
  CHECK_FALSE(f.keeps(post(std::string(100000, '[') + std::string(100000, ']'))));  // 100k levels
  CHECK(f.h.dropped("invalid_json") == 3);
  CHECK(f.keeps(post("{\"robot_id\":", "application/json", "/q?robot_id=664")));  // found in the query
  CHECK_FALSE(f.keeps(post("", "application/json")));  // blank body: simply missing
  CHECK(f.h.dropped("field_missing") == 1);
  CHECK_FALSE(f.keeps(make_message(Kind::request, "garbage")));
  CHECK(f.h.dropped("unparseable_request") == 1);

  Filter deny(Value::table({{"field", "robot_id"}, {"not_in", Value::array({"1"})}}));
  CHECK_FALSE(deny.keeps(post("{oops")));  // cannot tell: not passed as "absent"
  CHECK(deny.h.dropped("invalid_json") == 1);
}

TEST_CASE("duplicate keys: the last one decides, as Python, JavaScript and Go read it") {
  Filter f(Value::table({{"field", "robot_id"}, {"in", Value::array({"664"})}}));
  CHECK(f.keeps(post(R"({"robot_id":1,"robot_id":664})")));
  CHECK_FALSE(f.keeps(post(R"({"robot_id":664,"robot_id":1})")));
  // Repeated query keys: any value counts.
  CHECK(f.keeps(get("/q?robot_id=1&robot_id=664")));
}

TEST_CASE("a 50 MB JSON body is handled") {
  std::string body = "{\"pad\":[";
  while (body.size() < 50u * 1024 * 1024) body += "\"0123456789abcdef0123456789abcdef\",";
  body += "0],\"robot_id\":664}";
  Filter f(Value::table({{"field", "robot_id"}, {"in", Value::array({"664"})}}));
  CHECK(f.keeps(post(body)));
}

TEST_CASE("sources restrict where the field is looked up; multi-key paths never read forms") {
  Filter json_only(Value::table({{"field", "robot_id"}, {"in", Value::array({"664"})}, {"sources", "json"}}));
  CHECK_FALSE(json_only.keeps(get("/q?robot_id=664")));
  CHECK(json_only.keeps(post(R"({"robot_id":664})")));
  Filter nested(Value::table({{"field", "a.b"}, {"in", Value::array({"1"})}}));
  CHECK_FALSE(nested.keeps(get("/q?a.b=1")));
}

TEST_CASE("configuration errors name the problem") {
  auto make = [](Value v) { testing::StageHarness h(testing::linked_plugin("json_field"), v); };
  CHECK_THROWS_WITH_AS(make(Value::table({{"field", "items[0"}})), doctest::Contains("invalid path \"items[0\": expected ']' at 7"), ConfigError);
  CHECK_THROWS_WITH_AS(make(Value::table({{"field", "a"}, {"sources", "xml"}})), doctest::Contains("unknown source \"xml\""), ConfigError);
  CHECK_THROWS_WITH_AS(make(Value::table({{"field", "a"}, {"exists", false}, {"in", Value::array({"1"})}})),
                       doctest::Contains("contradicts"), ConfigError);
  CHECK_THROWS_WITH_AS(make(Value::table({{"field", "a"}, {"matches", "("}})), doctest::Contains("invalid pattern"), ConfigError);
  CHECK_THROWS_AS(make(Value::table({{"in", Value::array({"1"})}})), std::runtime_error);  // field is required
}
