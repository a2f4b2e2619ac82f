#include <doctest/doctest.h>
#include <simdjson.h>
#include <unistd.h>
#include <zlib.h>

#include <filesystem>
#include <fstream>
#include <sstream>
#include <string>

#include "doppel/testing.hpp"
#include "protocol.hpp"

using namespace doppel;
using namespace doppel::plugins;
using doppel::testing::make_message;

namespace {

MessagePtr response(const std::string& body, Kind kind = Kind::response, const std::string& extra = "") {
  return make_message(kind, "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n" + extra +
                                "Content-Length: " + std::to_string(body.size()) + "\r\n\r\n" + body);
}

std::string gzip(const std::string& text) {
  z_stream z{};
  deflateInit2(&z, Z_DEFAULT_COMPRESSION, Z_DEFLATED, 16 + 15, 8, Z_DEFAULT_STRATEGY);
  std::string out(text.size() + 64, '\0');
  z.next_in = reinterpret_cast<Bytef*>(const_cast<char*>(text.data()));
  z.avail_in = static_cast<uInt>(text.size());
  z.next_out = reinterpret_cast<Bytef*>(out.data());
  z.avail_out = static_cast<uInt>(out.size());
  deflate(&z, Z_FINISH);
  out.resize(z.total_out);
  deflateEnd(&z);
  return out;
}

struct Encoded {
  std::string line;
  std::vector<std::string> spilled;
};

Encoded encode(const Exchange& ex, BodyEncoding encoding = {}, std::size_t body_limit = 1 << 20,
               const std::string& dir = "/tmp") {
  Encoded e;
  append_judgement(e.line, {7, "hints_py", &ex, encoding, body_limit, dir}, e.spilled);
  return e;
}

std::string field(simdjson::dom::element e, const char* a, const char* b = nullptr) {
  simdjson::dom::element v = e[a];
  if (b) v = v[b];
  std::string_view s;
  if (!v.get_string().get(s)) return std::string(s);
  return simdjson::minify(v);
}

}  // namespace

TEST_CASE("a judgement is one line of JSON with every side of the exchange") {
  auto request = make_message(Kind::request,
                              "POST /v2/robot/input_hint?x=1 HTTP/1.1\r\nHost: api\r\nContent-Length: 18\r\n\r\n"
                              "{\"robot_id\":\"664\"}",
                              "ex-1");
  Exchange ex(request, response("{\n  \"a\": [1, 2.50]\n}"), response("not json", Kind::replay), "input_hint");
  auto e = encode(ex);
  REQUIRE(e.line.back() == '\n');
  CHECK(e.line.find('\n') == e.line.size() - 1);
  simdjson::dom::parser parser;
  simdjson::dom::element doc = parser.parse(e.line);
  CHECK(field(doc, "id") == "7");
  CHECK(field(doc, "exchange") == "ex-1");
  CHECK(field(doc, "comparator") == "hints_py");
  CHECK(field(doc, "endpoint") == "input_hint");
  CHECK(field(doc, "against") == "replay");
  CHECK(field(doc, "request", "method") == "POST");
  CHECK(field(doc, "request", "target") == "/v2/robot/input_hint?x=1");
  CHECK(field(doc, "request", "path") == "/v2/robot/input_hint");
  CHECK(field(doc, "request", "headers") == R"([["Host","api"],["Content-Length","18"]])");
  CHECK(field(doc, "original", "status") == "200");
  CHECK(field(doc, "original", "body") == "{\n  \"a\": [1, 2.50]\n}");
  // Parsed JSON is the document as sent, minified: 2.50 keeps its digits.
  CHECK(e.line.find(R"("json":{"a":[1,2.50]})") != std::string::npos);
  CHECK(field(doc, "replay", "body") == "not json");
  CHECK(doc["replay"]["json"].error() == simdjson::NO_SUCH_FIELD);
  CHECK(e.spilled.empty());
}

TEST_CASE("bodies: decoded, base64 when not UTF-8 or when asked, by file above the limit") {
  std::string json = R"({"k":"v"})";
  auto gz = response(gzip(json), Kind::response, "Content-Encoding: gzip\r\n");
  auto binary = response(std::string("\xff\xfe\x00\x01", 4), Kind::replay);
  simdjson::dom::parser parser;
  {
    auto e = encode(Exchange(nullptr, gz, binary));
    simdjson::dom::element doc = parser.parse(e.line);
    CHECK(field(doc, "request") == "null");
    CHECK(field(doc, "original", "body") == json);
    CHECK(field(doc, "replay", "body_base64") == "//4AAQ==");
  }
  {
    auto e = encode(Exchange(nullptr, gz, binary), BodyEncoding{true, false});
    simdjson::dom::element doc = parser.parse(e.line);
    CHECK(field(doc, "original", "body_base64") == "eyJrIjoidiJ9");
    CHECK(doc["original"]["json"].error() == simdjson::NO_SUCH_FIELD);
  }
  {
    auto dir = std::filesystem::temp_directory_path() / ("doppel-protocol-" + std::to_string(::getpid()));
    std::filesystem::create_directories(dir);
    std::string big(5000, 'x');
    auto e = encode(Exchange(nullptr, response(big), response("{}", Kind::replay)), {}, 1024, dir.string());
    simdjson::dom::element doc = parser.parse(e.line);
    REQUIRE(e.spilled.size() == 1);
    CHECK(field(doc, "original", "body_file") == e.spilled[0]);
    CHECK(field(doc, "original", "body_size") == "5000");
    CHECK(doc["original"]["body"].error() == simdjson::NO_SUCH_FIELD);
    std::ifstream in(e.spilled[0], std::ios::binary);
    std::stringstream content;
    content << in.rdbuf();
    CHECK(content.str() == big);
    CHECK((std::filesystem::status(e.spilled[0]).permissions() & std::filesystem::perms::others_read) ==
          std::filesystem::perms::none);
    std::filesystem::remove_all(dir);
  }
}

TEST_CASE("a baseline judgement says so") {
  Exchange ex(nullptr, response("{}"), response("{}", Kind::replay), "", true);
  simdjson::dom::parser parser;
  simdjson::dom::element doc = parser.parse(encode(ex).line);
  CHECK(field(doc, "against") == "baseline");
}

TEST_CASE("answers, hellos and garbage") {
  using Type = ProgramLine::Type;
  auto ok = parse_program_line(R"({"id": 42, "ok": true})");
  CHECK(ok.type == Type::answer);
  CHECK(ok.id == 42);
  CHECK(ok.judgement.differences.empty());
  CHECK(ok.judgement.error.empty());

  auto quoted_id = parse_program_line(R"({"id":"42","ok":true})" "\r");
  CHECK(quoted_id.type == Type::answer);
  CHECK(quoted_id.id == 42);

  auto differs = parse_program_line(
      R"({"id":1,"ok":false,"differences":[{"path":"results.hint_list","kind":"empty","original":[1,2],"replay":[],"message":"no hints"},"words only",{"path":"x"}]})");
  REQUIRE(differs.judgement.differences.size() == 3);
  const auto& d = differs.judgement.differences[0];
  CHECK(d.path == "results.hint_list");
  CHECK(d.kind == "empty");
  CHECK(d.original == "[1,2]");
  CHECK(d.replay == "[]");
  CHECK(d.message == "no hints");
  CHECK(differs.judgement.differences[1].message == "words only");
  CHECK(differs.judgement.differences[2].kind == "changed");

  auto not_ok = parse_program_line(R"({"id":1,"ok":false})");
  REQUIRE(not_ok.judgement.differences.size() == 1);
  CHECK(not_ok.judgement.differences[0].kind == "failed");

  auto error = parse_program_line(R"({"id":3,"error":"KeyError: 'results'"})");
  CHECK(error.type == Type::answer);
  CHECK(error.judgement.error == "the check failed: KeyError: 'results'");
  CHECK(error.problem.empty());

  auto malformed = parse_program_line(R"({"id":3,"ok":"yes"})");
  CHECK(malformed.type == Type::answer);
  CHECK(!malformed.problem.empty());
  CHECK(!malformed.judgement.error.empty());
  CHECK(!parse_program_line(R"({"id":3,"differences":{}})").problem.empty());
  CHECK(!parse_program_line(R"({"id":3})").problem.empty());

  auto hello = parse_program_line(R"({"hello":{"protocol":1,"body":"base64","json":false}})");
  CHECK(hello.type == Type::hello);
  CHECK(hello.encoding.base64);
  CHECK(!hello.encoding.json);
  CHECK(parse_program_line(R"({"hello":{"protocol":2}})").type == Type::garbage);
  CHECK(parse_program_line(R"({"hello":{"body":"hex"}})").type == Type::garbage);

  for (const char* junk : {"", "hello world", "[1,2]", R"({"ok":true})", R"({"id":-1,"ok":true})",
                           R"({"id":"12a","ok":true})", R"({"id":1.5,"ok":true})", "{\"id\":1,"})
    CHECK_MESSAGE(parse_program_line(junk).type == Type::garbage, junk);
}
