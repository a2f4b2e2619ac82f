#include <doctest/doctest.h>

#include <string>

#include "doppel/testing.hpp"
#include "gzip_text.hpp"

using namespace doppel;
using doppel::testing::make_message;

namespace {

MessagePtr request(const std::string& body, const std::string& content_type = "application/json",
                   const std::string& target = "/login", const std::string& extra_headers = "") {
  std::string head = "POST " + target + " HTTP/1.1\r\nHost: a\r\nAuthorization: Bearer s3cret\r\n";
  if (!content_type.empty()) head += "Content-Type: " + content_type + "\r\n";
  head += extra_headers;
  if (extra_headers.find("Transfer-Encoding") == std::string::npos)
    head += "Content-Length: " + std::to_string(body.size()) + "\r\n";
  return make_message(Kind::request, head + "\r\n" + body, "0123456789abcdef01234567", 42);
}


struct Redactor {
  explicit Redactor(Value options) : h(testing::linked_plugin("redact"), options) {}
  // The payload emitted for `m`, or "" when it was dropped.
  std::string run(MessagePtr m) {
    auto before = h.emitted().size();
    h.process(std::move(m));
    auto out = h.emitted();
    return out.size() == before ? std::string() : out.back()->payload;
  }
  testing::StageHarness h;
};

// The token the filter writes for `value`: sha256("s3cret") starts with 0x1e4...
std::string body_of(const std::string& payload) { return payload.substr(payload.find("\r\n\r\n") + 4); }

}  // namespace

TEST_CASE("headers and JSON fields become REDACTED-<sha256 prefix>, the rest stays byte-identical") {
  Redactor r(Value::table({{"headers", Value::array({"authorization", "Cookie"})},
                           {"fields", Value::array({"password", "user.token", "cards[*].number"})}}));
  std::string body =
      R"({"user": {"name": "ann", "token": "t-1"},  "password":"hunter2", "cards":[{"number":"4111"},{"number":4111}], "note":"password"})";
  std::string out = r.run(request(body));
  REQUIRE_FALSE(out.empty());
  CHECK(out.find("s3cret") == std::string::npos);
  CHECK(out.find("hunter2") == std::string::npos);
  CHECK(out.find("t-1") == std::string::npos);
  CHECK(out.find("Authorization: REDACTED-") != std::string::npos);
  CHECK(out.find("\r\nHost: a\r\nAuthorization: REDACTED-") != std::string::npos);
  CHECK(out.find("REDACTED-") != std::string::npos);
  CHECK(HttpView::parse(out).ok());
  CHECK(HttpView::parse(out).header("Content-Type") == "application/json");
  std::string b = body_of(out);
  // Everything around the redacted values is as it was (spacing, order, the "note" value).
  CHECK(b.substr(0, 34) == R"({"user": {"name": "ann", "token": )");
  CHECK(b.find(R"(,  "password":"REDACTED-)") != std::string::npos);
  CHECK(b.find(R"("note":"password"})") != std::string::npos);
  // A string "4111" and a number 4111 hash the same text, so they stay equal.
  auto first = b.find("\"number\":\"REDACTED-");
  auto second = b.find("\"number\":\"REDACTED-", first + 1);
  REQUIRE(second != std::string::npos);
  CHECK(b.substr(first, 31) == b.substr(second, 31));
  // Content-Length matches the new body.
  CHECK(out.find("Content-Length: " + std::to_string(b.size()) + "\r\n") != std::string::npos);
  CHECK(r.h.counter("redacted_values").value() == 5);
  // id, timestamp and kind are kept.
  auto m = r.h.emitted().back();
  CHECK(m->id == "0123456789abcdef01234567");
  CHECK(m->timestamp_ns == 42);
}

TEST_CASE("equal values stay equal, different values differ, across messages and places") {
  Redactor r(Value::table({{"headers", Value::array({"X-Token"})}, {"fields", Value::array({"token"})}}));
  std::string a = r.run(request(R"({"token":"abc"})", "application/json", "/x", "X-Token: abc\r\n"));
  std::string b = r.run(request(R"({"token":"abc"})"));
  std::string c = r.run(request(R"({"token":"abd"})"));
  CHECK(body_of(a) == body_of(b));
  CHECK(body_of(b) == "{\"token\":\"REDACTED-ba7816bf8f01\"}");  // sha256("abc") = ba7816bf8f01cfea...
  CHECK(body_of(a) != body_of(c));
  // The header and the JSON string with the same value get the same token.
  auto header_token = a.substr(a.find("X-Token: ") + 9, 21);
  CHECK(header_token.substr(0, 9) == "REDACTED-");
  CHECK(body_of(a) == "{\"token\":\"" + header_token + "\"}");
  // JSON escapes are undone before hashing: "\u0061bc" is "abc".
  CHECK(body_of(r.run(request(R"({"token":"\u0061bc"})"))) == body_of(b));
}

TEST_CASE("every duplicate of a key is redacted, and nested values become one token") {
  Redactor r(Value::table({{"fields", Value::array({"secret"})}}));
  std::string b = body_of(r.run(request(R"({"secret":"a","x":1,"secret":{"deep":["b"]}})")));
  CHECK(b.find("\"a\"") == std::string::npos);
  CHECK(b.find("deep") == std::string::npos);
  CHECK(b.find(",\"x\":1,") != std::string::npos);
}

TEST_CASE("the exact-path trap: items.id does not touch items.idempotency_key") {
  Redactor r(Value::table({{"fields", Value::array({"items.id"})}}));
  std::string b = body_of(r.run(request(R"({"items":{"id":"x","idempotency_key":"keep"}})")));
  CHECK(b.find("\"idempotency_key\":\"keep\"") != std::string::npos);
  CHECK(b.find("\"id\":\"REDACTED-") != std::string::npos);
}

TEST_CASE("form bodies and query strings are redacted by single-key fields") {
  Redactor r(Value::table({{"fields", Value::array({"password", "api_key"})}}));
  std::string out = r.run(request("user=ann&password=hunter%32&x=1", "application/x-www-form-urlencoded",
                                  "/login?api_key=k1&page=2"));
  CHECK(out.find("hunter") == std::string::npos);
  CHECK(out.find("k1") == std::string::npos);
  CHECK(out.find("POST /login?api_key=REDACTED-") == 0);
  CHECK(out.find("&page=2 HTTP/1.1") != std::string::npos);
  std::string b = body_of(out);
  CHECK(b.substr(0, 18) == "user=ann&password=");
  CHECK(b.substr(b.size() - 4) == "&x=1");
  CHECK(out.find("Content-Length: " + std::to_string(b.size()) + "\r\n") != std::string::npos);
  // Percent-decoded before hashing: hunter%32 hashes as hunter2, same as in JSON.
  Redactor j(Value::table({{"fields", Value::array({"password"})}}));
  CHECK(b.find(body_of(j.run(request(R"({"password":"hunter2"})"))).substr(13, 21)) != std::string::npos);
}

TEST_CASE("chunked and gzip bodies are decoded when a field must change, and the framing dropped") {
  Redactor r(Value::table({{"fields", Value::array({"password"})}}));
  std::string out = r.run(request(doppel::testing::gzip_text(R"({"password":"p","a":1})"), "application/json", "/login",
                                  "Content-Encoding: gzip\r\n"));
  CHECK(out.find("Content-Encoding") == std::string::npos);
  std::string b = body_of(out);
  CHECK(b.substr(0, 22) == "{\"password\":\"REDACTED-");
  CHECK(out.find("Content-Length: " + std::to_string(b.size()) + "\r\n") != std::string::npos);

  std::string chunked = "c\r\n{\"password\":\r\n6\r\n\"p\"}\r\n\r\n0\r\n\r\n";
  out = r.run(request(chunked, "application/json", "/login", "Transfer-Encoding: chunked\r\n"));
  CHECK(out.find("Transfer-Encoding") == std::string::npos);
  CHECK(body_of(out).find("{\"password\":\"REDACTED-") == 0);

  // Nothing to redact: the message passes untouched (same shared message, framing kept).
  auto untouched = request(doppel::testing::gzip_text(R"({"a":1})"), "application/json", "/login", "Content-Encoding: gzip\r\n");
  Redactor fields_only(Value::table({{"fields", Value::array({"password"})}}));
  fields_only.h.process(untouched);
  CHECK(fields_only.h.emitted().back() == untouched);
}

TEST_CASE("responses are redacted too, every Set-Cookie line") {
  Redactor r(Value::table({{"headers", Value::array({"Set-Cookie"})}, {"fields", Value::array({"session"})}}));
  std::string body = R"({"session":"abc"})";
  std::string payload = "HTTP/1.1 200 OK\r\nSet-Cookie: a=1\r\nSet-Cookie:  b=2 \r\nContent-Type: application/json\r\n"
                        "Content-Length: " + std::to_string(body.size()) + "\r\n\r\n" + body;
  std::string out = r.run(make_message(Kind::response, payload));
  CHECK(out.find("a=1") == std::string::npos);
  CHECK(out.find("b=2") == std::string::npos);
  CHECK(out.find("Set-Cookie: REDACTED-") != std::string::npos);
  CHECK(out.find("Set-Cookie:  REDACTED-") != std::string::npos);  // spacing kept
  CHECK(out.find("abc") == std::string::npos);
}

TEST_CASE("unreadable bodies are dropped with a reason by default, or passed when asked") {
  Redactor r(Value::table({{"fields", Value::array({"password"})}}));
  CHECK(r.run(request("{\"password\":\"oops")).empty());
  CHECK(r.run(request(std::string(100000, '[') + std::string(100000, ']'))).empty());
  CHECK(r.run(request("not gzip", "application/json", "/x", "Content-Encoding: gzip\r\n")).empty());
  CHECK(r.h.dropped("invalid_json") == 2);
  CHECK(r.h.dropped("undecodable_body") == 1);
  CHECK(r.run(make_message(Kind::request, "garbage")).empty());
  CHECK(r.h.dropped("unparseable_message") == 1);
  // Not JSON and not a form: nothing to redact there.
  CHECK_FALSE(r.run(request("<html>password</html>", "text/html")).empty());

  Redactor pass(Value::table({{"fields", Value::array({"password"})}, {"on_unreadable", "pass"}}));
  CHECK_FALSE(pass.run(request("{\"password\":\"oops")).empty());
  CHECK(pass.h.counter("unredacted_bodies").value() == 1);
}

TEST_CASE("a 50 MB body is redacted") {
  std::string body = "{\"pad\":[";
  while (body.size() < 50u * 1024 * 1024) body += "{\"password\":\"x\",\"v\":\"0123456789abcdef\"},";
  body += "{}]}";
  Redactor r(Value::table({{"fields", Value::array({"pad[*].password"})}}));
  std::string out = r.run(request(body));
  REQUIRE_FALSE(out.empty());
  CHECK(out.find("\"password\":\"x\"") == std::string::npos);
}

TEST_CASE("configuration errors") {
  auto make = [](Value v) { testing::StageHarness h(testing::linked_plugin("redact"), v); };
  CHECK_THROWS_WITH_AS(make(Value::table({})), doctest::Contains("at least one entry"), ConfigError);
  CHECK_THROWS_WITH_AS(make(Value::table({{"fields", Value::array({"a["})}})), doctest::Contains("invalid path"), ConfigError);
  CHECK_THROWS_AS(make(Value::table({{"fields", Value::array({"a"})}, {"on_unreadable", "ignore"}})), std::exception);
}
