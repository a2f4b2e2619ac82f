#include <doctest/doctest.h>
#include <openssl/evp.h>
#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <string>

#include "doppel/form.hpp"
#include "doppel/testing.hpp"
#include "gzip_text.hpp"
#include "pseudonymizer.hpp"

using namespace doppel;
using doppel::plugins::Pseudonymizer;
using doppel::testing::make_message;

namespace {

// Tests use a fixed key so that tokens can be written down; tokens of kKey were computed
// independently with Python: hmac.new(b"0123456789abcdef", value, hashlib.sha256).
const std::string kKey = "0123456789abcdef";

MessagePtr request(const std::string& body, const std::string& content_type = "application/json",
                   const std::string& target = "/login", const std::string& extra_headers = "") {
  std::string head = "POST " + target + " HTTP/1.1\r\nHost: a\r\nAuthorization: Bearer s3cret\r\n";
  if (!content_type.empty()) head += "Content-Type: " + content_type + "\r\n";
  head += extra_headers;
  if (extra_headers.find("Transfer-Encoding") == std::string::npos)
    head += "Content-Length: " + std::to_string(body.size()) + "\r\n";
  return make_message(Kind::request, head + "\r\n" + body, "0123456789abcdef01234567", 42);
}

// `options` with `key = kKey` added unless the test sets a key itself.
Value keyed(Value options) {
  auto& table = options.as_table();
  bool has_key = false;
  for (const auto& [name, value] : table) has_key = has_key || name == "key" || name == "key_file";
  if (!has_key) table.emplace_back("key", Value(kKey));
  return options;
}

struct Redactor {
  explicit Redactor(Value options) : h(testing::linked_plugin("redact"), keyed(std::move(options))) {}
  // The payload emitted for `m`, or "" when it was dropped.
  std::string run(MessagePtr m) {
    auto before = h.emitted().size();
    h.process(std::move(m));
    auto out = h.emitted();
    return out.size() == before ? std::string() : out.back()->payload;
  }
  testing::StageHarness h;
};

// A redactor without key or key_file: the process's random key.
struct RandomKeyRedactor {
  explicit RandomKeyRedactor(Value options) : h(testing::linked_plugin("redact"), options) {}
  std::string run(MessagePtr m) {
    h.process(std::move(m));
    return h.emitted().back()->payload;
  }
  testing::StageHarness h;
};

std::string body_of(const std::string& payload) { return payload.substr(payload.find("\r\n\r\n") + 4); }
std::string head_of(const std::string& payload) { return payload.substr(0, payload.find("\r\n\r\n") + 4); }

std::string token(const std::string& value, const std::string& key = kKey) { return Pseudonymizer(key).token(value); }

std::string sha256_hex_prefix(const std::string& value) {
  unsigned char digest[EVP_MAX_MD_SIZE];
  unsigned int length = 0;
  EVP_Digest(value.data(), value.size(), digest, &length, EVP_sha256(), nullptr);
  static const char* hex = "0123456789abcdef";
  std::string out;
  for (int i = 0; i < 6; ++i) {
    out.push_back(hex[digest[i] >> 4]);
    out.push_back(hex[digest[i] & 15]);
  }
  return out;
}

// A file in a fresh directory, removed with it.
struct TempFile {
  explicit TempFile(const std::string& content, std::filesystem::perms mode) {
    std::string pattern = (std::filesystem::temp_directory_path() / "redact-key-XXXXXX").string();
    dir = mkdtemp(pattern.data());
    path = (std::filesystem::path(dir) / "key").string();
    std::ofstream(path, std::ios::binary) << content;
    std::filesystem::permissions(path, mode);
  }
  ~TempFile() { std::filesystem::remove_all(dir); }
  std::string dir, path;
};

constexpr auto kOwnerOnly = std::filesystem::perms::owner_read | std::filesystem::perms::owner_write;

// What curl 7.88.1 sent for `curl -H 'Expect:' -F a=1 -F password=secret -F file=@x.txt
// 'http://127.0.0.1:43757/upload?pass%77ord=q1'`, captured byte for byte on loopback.
const std::string kCurlUpload =
    "POST /upload?pass%77ord=q1 HTTP/1.1\r\n"
    "Host: 127.0.0.1:43757\r\n"
    "User-Agent: curl/7.88.1\r\n"
    "Accept: */*\r\n"
    "Content-Length: 406\r\n"
    "Content-Type: multipart/form-data; boundary=------------------------8a8b361886b00f0a\r\n"
    "\r\n"
    "--------------------------8a8b361886b00f0a\r\n"
    "Content-Disposition: form-data; name=\"a\"\r\n"
    "\r\n"
    "1\r\n"
    "--------------------------8a8b361886b00f0a\r\n"
    "Content-Disposition: form-data; name=\"password\"\r\n"
    "\r\n"
    "secret\r\n"
    "--------------------------8a8b361886b00f0a\r\n"
    "Content-Disposition: form-data; name=\"file\"; filename=\"x.txt\"\r\n"
    "Content-Type: text/plain\r\n"
    "\r\n"
    "line one\n"
    "file-secret-content\n"
    "\r\n"
    "--------------------------8a8b361886b00f0a--\r\n";

// curl -H 'Expect:' -F 'operations={"query":"mutation","variables":{"password":"pw-in-json"}};type=application/json'
//      -F 'user[password]=hunter2' -F 'user[name]=ann' http://127.0.0.1:36361/graphql
const std::string kCurlGraphql =
    "POST /graphql HTTP/1.1\r\n"
    "Host: 127.0.0.1:36361\r\n"
    "User-Agent: curl/7.88.1\r\n"
    "Accept: */*\r\n"
    "Content-Length: 447\r\n"
    "Content-Type: multipart/form-data; boundary=------------------------ec778f1954e33d1a\r\n"
    "\r\n"
    "--------------------------ec778f1954e33d1a\r\n"
    "Content-Disposition: form-data; name=\"operations\"\r\n"
    "Content-Type: application/json\r\n"
    "\r\n"
    "{\"query\":\"mutation\",\"variables\":{\"password\":\"pw-in-json\"}}\r\n"
    "--------------------------ec778f1954e33d1a\r\n"
    "Content-Disposition: form-data; name=\"user[password]\"\r\n"
    "\r\n"
    "hunter2\r\n"
    "--------------------------ec778f1954e33d1a\r\n"
    "Content-Disposition: form-data; name=\"user[name]\"\r\n"
    "\r\n"
    "ann\r\n"
    "--------------------------ec778f1954e33d1a--\r\n";

// `text` with the first occurrence of `from` replaced by `to`.
std::string replaced(std::string text, const std::string& from, const std::string& to) {
  auto at = text.find(from);
  REQUIRE(at != std::string::npos);
  return text.replace(at, from.size(), to);
}

}  // namespace

TEST_CASE("HMAC-SHA256 tokens: RFC 4231 vector, same key same token, another key another token") {
  // RFC 4231 test case 2: HMAC-SHA-256("Jefe", "what do ya want for nothing?") = 5bdcc146bf60754e...
  CHECK(Pseudonymizer("Jefe").token("what do ya want for nothing?") == "REDACTED-5bdcc146bf60");
  CHECK(token("abc") == "REDACTED-bcaa92843247");
  CHECK(token("hunter2") == "REDACTED-deda27db21d0");
  Pseudonymizer tokens(kKey);
  CHECK(tokens.token("abc") == tokens.token("abc"));  // the context is re-initialised per value
  CHECK(tokens.token("abc") != tokens.token("abd"));
  CHECK(token("abc", "fedcba9876543210") != token("abc"));
  // Not the unkeyed hash earlier versions wrote (sha256("abc") starts ba7816bf8f01).
  CHECK(sha256_hex_prefix("abc") == "ba7816bf8f01");
  for (std::string value : {"abc", "hunter2", "secret", ""})
    CHECK(token(value) != "REDACTED-" + sha256_hex_prefix(value));
  CHECK(token("").size() == std::string("REDACTED-").size() + Pseudonymizer::kHexDigits);
}

TEST_CASE("headers and JSON fields become tokens, the rest stays byte-identical") {
  Redactor r(Value::table({{"headers", Value::array({"authorization", "Cookie"})},
                           {"fields", Value::array({"password", "user.token", "cards[*].number"})}}));
  std::string body =
      R"({"user": {"name": "ann", "token": "t-1"},  "password":"hunter2", "cards":[{"number":"4111"},{"number":4111}], "note":"password"})";
  std::string out = r.run(request(body));
  REQUIRE_FALSE(out.empty());
  CHECK(out.find("s3cret") == std::string::npos);
  CHECK(out.find("hunter2") == std::string::npos);
  CHECK(out.find("t-1") == std::string::npos);
  CHECK(out.find("\r\nHost: a\r\nAuthorization: " + token("Bearer s3cret") + "\r\n") != std::string::npos);
  CHECK(HttpView::parse(out).ok());
  CHECK(HttpView::parse(out).header("Content-Type") == "application/json");
  std::string b = body_of(out);
  // Everything around the redacted values is as it was (spacing, order, the "note" value).
  CHECK(b.substr(0, 34) == R"({"user": {"name": "ann", "token": )");
  CHECK(b.find(R"(,  "password":")" + token("hunter2") + "\"") != std::string::npos);
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
  CHECK(body_of(b) == "{\"token\":\"REDACTED-bcaa92843247\"}");
  CHECK(body_of(a) != body_of(c));
  // The header and the JSON string with the same value get the same token.
  CHECK(a.find("X-Token: REDACTED-bcaa92843247\r\n") != std::string::npos);
  // JSON escapes are undone before hashing: "\u0061bc" is "abc".
  CHECK(body_of(r.run(request(R"({"token":"\u0061bc"})"))) == body_of(b));
}

TEST_CASE("without a key: one random key per process, shared by every redact stage, unlike any given key") {
  std::string first = plugins::random_key(), second = plugins::random_key();
  CHECK(first.size() == 32);
  CHECK(first != second);
  CHECK(plugins::process_random_key() == plugins::process_random_key());
  CHECK(plugins::process_random_key() != first);

  auto options = [] { return Value::table({{"fields", Value::array({"token"})}}); };
  RandomKeyRedactor originals(options()), replays(options());
  std::string a = body_of(originals.run(request(R"({"token":"abc"})")));
  std::string b = body_of(replays.run(request(R"({"token":"abc"})")));
  // Two stages of one run agree: an original and its replay redacted by different stages still compare equal.
  CHECK(a == b);
  CHECK(a == "{\"token\":\"" + token("abc", plugins::process_random_key()) + "\"}");
  CHECK(a != "{\"token\":\"" + token("abc") + "\"}");
  CHECK(a != "{\"token\":\"REDACTED-" + sha256_hex_prefix("abc") + "\"}");
}

TEST_CASE("key_file: read at configuration, trailing newline dropped, refused when weak or exposed") {
  auto with_file = [](const std::string& path) {
    return Value::table({{"fields", Value::array({"token"})}, {"key_file", Value(path)}});
  };
  auto make = [](Value options) { testing::StageHarness h(testing::linked_plugin("redact"), options); };

  TempFile good(kKey + "\n", kOwnerOnly);
  Redactor from_file(with_file(good.path));
  // The same key as `key = kKey`: the newline an editor or `openssl rand -hex` adds is not part of it.
  CHECK(body_of(from_file.run(request(R"({"token":"abc"})"))) == "{\"token\":\"REDACTED-bcaa92843247\"}");
  TempFile crlf(kKey + "\r\n", kOwnerOnly);
  CHECK(body_of(Redactor(with_file(crlf.path)).run(request(R"({"token":"abc"})"))) ==
        "{\"token\":\"REDACTED-bcaa92843247\"}");

  // Group-readable (640) is accepted, with a warning logged at start.
  TempFile group_readable(kKey, kOwnerOnly | std::filesystem::perms::group_read);
  CHECK_NOTHROW(make(with_file(group_readable.path)));

  TempFile world_readable(kKey, kOwnerOnly | std::filesystem::perms::group_read | std::filesystem::perms::others_read);
  CHECK_THROWS_WITH_AS(make(with_file(world_readable.path)),
                       doctest::Contains("is accessible to every user (mode 0644): chmod 600"), ConfigError);
  TempFile group_writable(kKey, kOwnerOnly | std::filesystem::perms::group_write);
  CHECK_THROWS_WITH_AS(make(with_file(group_writable.path)), doctest::Contains("writable by its group"), ConfigError);
  TempFile short_key("fifteen bytes!!\n", kOwnerOnly);
  CHECK_THROWS_WITH_AS(make(with_file(short_key.path)),
                       doctest::Contains("holds 15 bytes; a key needs at least 16"), ConfigError);
  TempFile empty("", kOwnerOnly);
  CHECK_THROWS_WITH_AS(make(with_file(empty.path)), doctest::Contains("holds 0 bytes"), ConfigError);
  TempFile huge(std::string(5000, 'k'), kOwnerOnly);
  CHECK_THROWS_WITH_AS(make(with_file(huge.path)), doctest::Contains("larger than 4096 bytes"), ConfigError);
  CHECK_THROWS_WITH_AS(make(with_file(good.dir + "/missing")), doctest::Contains("cannot be opened"), ConfigError);
  CHECK_THROWS_WITH_AS(make(with_file(good.dir)), doctest::Contains("not a regular file"), ConfigError);

  CHECK_THROWS_WITH_AS(make(Value::table({{"fields", Value::array({"token"})}, {"key", "short"}})),
                       doctest::Contains("the key has 5 bytes; it needs at least 16"), ConfigError);
  CHECK_THROWS_WITH_AS(make(Value::table({{"fields", Value::array({"token"})}, {"key", Value(kKey)},
                                          {"key_file", Value(good.path)}})),
                       doctest::Contains("not both"), ConfigError);
}

TEST_CASE("**.password redacts at every depth and in arrays; password alone stays top-level") {
  const std::string body =
      R"({"password":"p0","user":{"password":"p1","profile":{"security":{"password":"p3"}}},)"
      R"("items":[{"password":"a0"},{"x":1},{"password":"a2"}],"grid":[[{"password":"g"}],[]],)"
      R"("password_hint":"keep","list":["password"]})";
  Redactor any_depth(Value::table({{"fields", Value::array({"**.password"})}}));
  std::string b = body_of(any_depth.run(request(body)));
  for (std::string secret : {"p0", "p1", "p3", "a0", "a2", "g"})  // quoted: a token's hex digits may spell "a2"
    CHECK_MESSAGE(b.find("\"" + secret + "\"") == std::string::npos, secret);
  CHECK(b.find(R"("password_hint":"keep")") != std::string::npos);
  CHECK(b.find(R"("list":["password"])") != std::string::npos);
  CHECK(b.find(R"("security":{"password":")" + token("p3") + "\"}") != std::string::npos);
  CHECK(b.find(R"("grid":[[{"password":")" + token("g") + "\"}],[]]") != std::string::npos);
  CHECK(any_depth.h.counter("redacted_values").value() == 6);

  Redactor exact(Value::table({{"fields", Value::array({"password"})}}));
  std::string e = body_of(exact.run(request(body)));
  CHECK(e.find("\"p0\"") == std::string::npos);
  for (std::string kept : {"p1", "p3", "a0", "a2", "g"})
    CHECK_MESSAGE(e.find("\"" + kept + "\"") != std::string::npos, kept);

  // A key with a dot, quoted, at any depth; the unquoted a.b is another path.
  Redactor dotted(Value::table({{"fields", Value::array({R"(**["x.y"])"})}}));
  std::string d = body_of(dotted.run(request(R"({"a":{"x.y":"s1","x":{"y":"keep"}},"x.y":"s2"})")));
  CHECK(d.find("\"s1\"") == std::string::npos);
  CHECK(d.find("\"s2\"") == std::string::npos);
  CHECK(d.find(R"("x":{"y":"keep"})") != std::string::npos);
}

TEST_CASE("multipart/form-data from curl: named parts replaced whole, boundaries and part headers byte for byte") {
  Redactor r(Value::table({{"fields", Value::array({"password", "file"})}}));
  std::string out = r.run(make_message(Kind::request, kCurlUpload));
  std::string expected_body =
      replaced(body_of(kCurlUpload), "\r\n\r\nsecret\r\n", "\r\n\r\n" + token("secret") + "\r\n");
  expected_body = replaced(expected_body, "line one\nfile-secret-content\n", token("line one\nfile-secret-content\n"));
  CHECK(body_of(out) == expected_body);
  // The head changes in Content-Length alone (the query's pass%77ord is `password` decoded: see below).
  std::string expected_head =
      replaced(head_of(kCurlUpload), "Content-Length: 406", "Content-Length: " + std::to_string(expected_body.size()));
  expected_head = replaced(expected_head, "pass%77ord=q1", "pass%77ord=" + token("q1"));
  CHECK(head_of(out) == expected_head);
  CHECK(r.h.counter("redacted_values").value() == 3);
  // The result is still a multipart body a server reads: the same parts, names and file name.
  MultipartBody parts = parse_multipart(body_of(out), "------------------------8a8b361886b00f0a");
  REQUIRE(parts.error.empty());
  REQUIRE(parts.parts.size() == 3);
  CHECK(parts.parts[2].filename == "x.txt");

  // `**.password` names the part too; an unnamed field stays.
  Redactor any_depth(Value::table({{"fields", Value::array({"**.password"})}}));
  std::string b = body_of(any_depth.run(make_message(Kind::request, kCurlUpload)));
  CHECK(b.find("secret\r\n") == std::string::npos);
  CHECK(b.find("file-secret-content") != std::string::npos);
  CHECK(b.find("name=\"a\"\r\n\r\n1\r\n") != std::string::npos);
}

TEST_CASE("multipart: JSON parts are looked into, bracketed names read as paths") {
  Redactor r(Value::table({{"fields", Value::array({"**.password"})}}));
  std::string out = r.run(make_message(Kind::request, kCurlGraphql));
  std::string expected_body =
      replaced(replaced(body_of(kCurlGraphql), "\"pw-in-json\"", "\"" + token("pw-in-json") + "\""),
               "\r\n\r\nhunter2\r\n", "\r\n\r\n" + token("hunter2") + "\r\n");
  CHECK(body_of(out) == expected_body);
  CHECK(out.find("Content-Length: " + std::to_string(expected_body.size()) + "\r\n") != std::string::npos);
  CHECK(body_of(out).find("name=\"user[name]\"\r\n\r\nann\r\n") != std::string::npos);

  // Exact paths: `user.password` names user[password]; `operations.variables.password` the JSON inside.
  Redactor exact(Value::table({{"fields", Value::array({"user.password", "operations.variables.password"})}}));
  CHECK(body_of(exact.run(make_message(Kind::request, kCurlGraphql))) == expected_body);
  // `password` alone is the top level: neither user[password] nor the JSON's nested key.
  Redactor top(Value::table({{"fields", Value::array({"password"})}}));
  std::string untouched = top.run(make_message(Kind::request, kCurlGraphql));
  CHECK(untouched == kCurlGraphql);
}

TEST_CASE("multipart bodies that cannot be read follow on_unreadable, counted") {
  Redactor r(Value::table({{"fields", Value::array({"password"})}}));
  std::string body = body_of(kCurlUpload);
  // No boundary parameter.
  CHECK(r.run(request(body, "multipart/form-data")).empty());
  // Truncated before the closing delimiter (a capture cut short).
  const std::string type = "multipart/form-data; boundary=------------------------8a8b361886b00f0a";
  CHECK(r.run(request(body.substr(0, body.size() - 60), type)).empty());
  // A boundary the body does not use.
  CHECK(r.run(request(body, "multipart/form-data; boundary=other")).empty());
  CHECK(r.h.dropped("invalid_multipart") == 3);
  // A JSON part that does not parse may hold a listed field.
  Redactor json_part(Value::table({{"fields", Value::array({"**.password"})}}));
  std::string broken = replaced(kCurlGraphql, "\"pw-in-json\"}}", "\"pw-in-json\"}}}");
  broken = replaced(broken, "Content-Length: 447", "Content-Length: 448");
  CHECK(json_part.run(make_message(Kind::request, broken)).empty());
  CHECK(json_part.h.dropped("invalid_json") == 1);

  Redactor pass(Value::table({{"fields", Value::array({"password"})}, {"on_unreadable", "pass"}}));
  CHECK(body_of(pass.run(request(body, "multipart/form-data"))) == body);
  CHECK(pass.h.counter("unredacted_bodies").value() == 1);

  // Labelled multipart, but the body is JSON: redacted as JSON rather than called unreadable.
  CHECK(body_of(r.run(request(R"({"password":"abc"})", "multipart/form-data; boundary=x"))) ==
        "{\"password\":\"REDACTED-bcaa92843247\"}");
}

TEST_CASE("a chunked multipart body is decoded, redacted and sent with Content-Length") {
  std::string body = body_of(kCurlUpload);
  std::string chunked;
  for (std::size_t at = 0; at < body.size(); at += 100) {
    std::string piece = body.substr(at, 100);
    char size[16];
    std::snprintf(size, sizeof size, "%zx", piece.size());
    chunked += std::string(size) + "\r\n" + piece + "\r\n";
  }
  chunked += "0\r\n\r\n";
  Redactor r(Value::table({{"fields", Value::array({"password"})}}));
  std::string out = r.run(request(chunked, "multipart/form-data; boundary=------------------------8a8b361886b00f0a",
                                  "/upload", "Transfer-Encoding: chunked\r\n"));
  CHECK(out.find("Transfer-Encoding") == std::string::npos);
  std::string b = body_of(out);
  CHECK(b == replaced(body, "\r\n\r\nsecret\r\n", "\r\n\r\n" + token("secret") + "\r\n"));
  CHECK(out.find("Content-Length: " + std::to_string(b.size()) + "\r\n") != std::string::npos);
}

TEST_CASE("folded header values are replaced whole, continuation lines included") {
  Redactor r(Value::table({{"headers", Value::array({"Authorization", "x-api-key"})}}));
  std::string payload =
      "GET /a HTTP/1.1\r\n"
      "Host: a\r\n"
      "Authorization: Bearer\r\n"
      " part-two-secret\r\n"
      "\tpart-three-secret  \r\n"
      "X-Other: keep\r\n"
      "x-API-KEY:k1\r\n"
      "X-Api-Key:  k2\r\n"
      "  folded-k2\r\n"
      "\r\n";
  std::string out = r.run(make_message(Kind::request, payload));
  CHECK(out ==
        "GET /a HTTP/1.1\r\n"
        "Host: a\r\n"
        "Authorization: " + token("Bearer part-two-secret part-three-secret") + "  \r\n"
        "X-Other: keep\r\n"
        "x-API-KEY:" + token("k1") + "\r\n"
        "X-Api-Key:  " + token("k2 folded-k2") + "\r\n"
        "\r\n");
  CHECK(HttpView::parse(out).ok());
  CHECK(r.h.counter("redacted_values").value() == 3);
  // Unfolded, a value gets the token it gets on one line.
  const std::string unfolded = "Bearer part-two-secret part-three-secret";
  std::string one_line = r.run(make_message(Kind::request, "GET /a HTTP/1.1\r\nAuthorization: " + unfolded + "\r\n\r\n"));
  CHECK(one_line == "GET /a HTTP/1.1\r\nAuthorization: " + token(unfolded) + "\r\n\r\n");
  // A folded header that is not listed keeps its continuation lines.
  std::string kept = "GET /a HTTP/1.1\r\nX-Long: a\r\n b\r\nAuthorization: x\r\n\r\n";
  CHECK(r.run(make_message(Kind::request, kept)) ==
        "GET /a HTTP/1.1\r\nX-Long: a\r\n b\r\nAuthorization: " + token("x") + "\r\n\r\n");
}

TEST_CASE("repeated headers, odd case, Cookie and Set-Cookie whole, LF-only lines") {
  Redactor r(Value::table({{"headers", Value::array({"cookie", "SET-COOKIE", "Authorization"})}}));
  std::string out = r.run(make_message(
      Kind::request, "GET / HTTP/1.1\r\nCOOKIE: a=1; session=s1\r\ncookie: b=2\r\nAUTHORIZATION : Basic eA==\r\n\r\n"));
  CHECK(out == "GET / HTTP/1.1\r\nCOOKIE: " + token("a=1; session=s1") + "\r\ncookie: " + token("b=2") +
                   "\r\nAUTHORIZATION : " + token("Basic eA==") + "\r\n\r\n");
  std::string lf = r.run(make_message(Kind::response, "HTTP/1.1 200 OK\nSet-Cookie: id=1\nset-cookie: id=2\n\n"));
  CHECK(lf == "HTTP/1.1 200 OK\nSet-Cookie: " + token("id=1") + "\nset-cookie: " + token("id=2") + "\n\n");
}

TEST_CASE("responses are redacted too, every Set-Cookie line") {
  Redactor r(Value::table({{"headers", Value::array({"Set-Cookie"})}, {"fields", Value::array({"session"})}}));
  std::string body = R"({"session":"abc"})";
  std::string payload = "HTTP/1.1 200 OK\r\nSet-Cookie: a=1\r\nSet-Cookie:  b=2 \r\nContent-Type: application/json\r\n"
                        "Content-Length: " + std::to_string(body.size()) + "\r\n\r\n" + body;
  std::string out = r.run(make_message(Kind::response, payload));
  CHECK(out.find("a=1") == std::string::npos);
  CHECK(out.find("b=2") == std::string::npos);
  CHECK(out.find("Set-Cookie: " + token("a=1") + "\r\n") != std::string::npos);
  CHECK(out.find("Set-Cookie:  " + token("b=2") + " \r\n") != std::string::npos);  // spacing kept
  CHECK(out.find("abc") == std::string::npos);
}

TEST_CASE("listed headers in chunked trailers are redacted, the framing kept") {
  Redactor r(Value::table({{"headers", Value::array({"X-Token"})}}));
  std::string payload =
      "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nTrailer: X-Token\r\n\r\n"
      "5\r\nhello\r\n0\r\nX-Token: t-secret\r\nX-Other: keep\r\n\r\n";
  std::string out = r.run(make_message(Kind::response, payload));
  CHECK(out == replaced(payload, "t-secret", token("t-secret")));
  CHECK(r.h.counter("redacted_values").value() == 1);
}

TEST_CASE("form bodies and query strings: percent-decoded names, **, bracketed names") {
  Redactor r(Value::table({{"fields", Value::array({"password", "api_key"})}}));
  std::string out = r.run(request("user=ann&password=hunter%32&x=1", "application/x-www-form-urlencoded",
                                  "/login?api_key=k1&page=2"));
  CHECK(out.find("hunter") == std::string::npos);
  CHECK(out.find("k1") == std::string::npos);
  CHECK(out.find("POST /login?api_key=" + token("k1") + "&page=2 HTTP/1.1") == 0);
  std::string b = body_of(out);
  // Percent-decoded before hashing: hunter%32 hashes as hunter2, as in JSON.
  CHECK(b == "user=ann&password=" + token("hunter2") + "&x=1");
  CHECK(out.find("Content-Length: " + std::to_string(b.size()) + "\r\n") != std::string::npos);

  // Names are matched decoded (pass%77ord is password; + is a space), their spelling kept.
  std::string q = r.run(request("", "", "/a?pass%77ord=q1&api%5Fkey=q2&b=pass%77ord&a+b=1&password"));
  CHECK(q.find("POST /a?pass%77ord=" + token("q1") + "&api%5Fkey=" + token("q2") + "&b=pass%77ord&a+b=1&password=" +
               token("") + " HTTP/1.1") == 0);

  // The query is replaced where the parser read it, even behind whitespace it skips (found by fuzzing:
  // an edit by the first space's position put a second target in the line, the old one behind it).
  CHECK(r.run(make_message(Kind::request, " \tGET /a?password=x HTTP/1.1\r\n\r\n")) ==
        " \tGET /a?password=" + token("x") + " HTTP/1.1\r\n\r\n");

  // ** and bracketed names apply to forms and queries as to JSON.
  Redactor any_depth(Value::table({{"fields", Value::array({"**.password"})}}));
  std::string f = any_depth.run(request("user%5Bpassword%5D=s1&password=s2&user[name]=ann&passwords=keep",
                                        "application/x-www-form-urlencoded", "/l?user[password]=s3&x[0][password]=s4"));
  for (std::string secret : {"s1", "s2", "s3", "s4"}) CHECK_MESSAGE(f.find("=" + secret) == std::string::npos, secret);
  CHECK(f.find("user[name]=ann&passwords=keep") != std::string::npos);
  Redactor exact(Value::table({{"fields", Value::array({"password"})}}));
  CHECK(body_of(exact.run(request("user[password]=s1", "application/x-www-form-urlencoded"))) == "user[password]=s1");
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

namespace {
std::string fifty_megabytes_of_passwords() {
  std::string body = "{\"pad\":[";
  while (body.size() < 50u * 1024 * 1024) body += "{\"password\":\"x\",\"v\":\"0123456789abcdef\"},";
  return body + "{}]}";
}
void check_redacts_all(const char* field) {
  Redactor r(Value::table({{"fields", Value::array({field})}}));
  std::string out = r.run(request(fifty_megabytes_of_passwords()));
  REQUIRE_FALSE(out.empty());
  CHECK(out.find("\"password\":\"x\"") == std::string::npos);
  CHECK(r.h.counter("redacted_values").value() > 1'000'000);
}
}  // namespace

TEST_CASE("a 50 MB body is redacted with an exact path") { check_redacts_all("pad[*].password"); }

TEST_CASE("a 50 MB body is redacted with **") { check_redacts_all("**.password"); }

TEST_CASE("configuration errors") {
  auto make = [](Value v) { testing::StageHarness h(testing::linked_plugin("redact"), v); };
  CHECK_THROWS_WITH_AS(make(Value::table({})), doctest::Contains("at least one entry"), ConfigError);
  CHECK_THROWS_WITH_AS(make(Value::table({{"fields", Value::array({"a["})}})), doctest::Contains("invalid path"), ConfigError);
  CHECK_THROWS_WITH_AS(make(Value::table({{"fields", Value::array({"**"})}})),
                       doctest::Contains("\"**\" would redact the whole body"), ConfigError);
  CHECK_THROWS_WITH_AS(make(Value::table({{"fields", Value::array({"$"})}})), doctest::Contains("whole body"),
                       ConfigError);
  CHECK_THROWS_AS(make(Value::table({{"fields", Value::array({"a"})}, {"on_unreadable", "ignore"}})), std::exception);
}
