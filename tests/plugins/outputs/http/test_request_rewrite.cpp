#include <doctest/doctest.h>

#include "doppel/testing.hpp"
#include "request_rewrite.hpp"

using namespace doppel;
using namespace doppel::plugins;

TEST_CASE("target url: scheme, host, port, base path and the Host header it implies") {
  std::string error;
  auto t = parse_target_url("http://127.0.0.1:8080/base/", error);
  REQUIRE(t);
  CHECK_FALSE(t->tls);
  CHECK(t->host == "127.0.0.1");
  CHECK(t->port == 8080);
  CHECK(t->base_path == "/base");
  CHECK(t->host_header == "127.0.0.1:8080");

  auto s = parse_target_url("https://staging.example.com", error);
  REQUIRE(s);
  CHECK(s->tls);
  CHECK(s->port == 443);
  CHECK(s->base_path.empty());
  CHECK(s->host_header == "staging.example.com");

  auto v6 = parse_target_url("http://[::1]:81", error);
  REQUIRE(v6);
  CHECK(v6->host == "::1");
  CHECK(v6->host_header == "[::1]:81");

  CHECK_FALSE(parse_target_url("ftp://x", error));
  CHECK(error.find("expected http://") != std::string::npos);
  CHECK_FALSE(parse_target_url("http://x:99999", error));
  CHECK_FALSE(parse_target_url("http://x/a?b=1", error));
  CHECK_FALSE(parse_target_url("http://:80", error));
}

TEST_CASE("join rule: base path prefixed, absolute-form targets reduced to path and query") {
  CHECK(join_target("/base", "/a?b") == "/base/a?b");
  CHECK(join_target("", "/a?b") == "/a?b");
  CHECK(join_target("/base", "/") == "/base/");
  CHECK(join_target("/base", "*") == "/base");
  CHECK(join_target("", "*") == "*");
  CHECK(join_target("", "http://old.example.com/x/y?z=1") == "/x/y?z=1");
  CHECK(join_target("/v2", "http://old.example.com") == "/v2/");
}

TEST_CASE("prepare_request edits only the Host value and the target, byte for byte") {
  std::string error;
  auto target = *parse_target_url("http://10.0.0.5:17555/base", error);
  std::string captured = "POST /v2/robot/query?x=1 HTTP/1.1\r\nX-A:  keep  spacing \r\nHost: prod.example.com\r\n"
                         "Content-Length: 5\r\n\r\nhello";
  auto m = testing::make_message(Kind::request, captured);
  auto out = prepare_request(*m, target, false);
  REQUIRE(out);
  CHECK(out->bytes == "POST /base/v2/robot/query?x=1 HTTP/1.1\r\nX-A:  keep  spacing \r\nHost: 10.0.0.5:17555\r\n"
                      "Content-Length: 5\r\n\r\nhello");
  CHECK_FALSE(out->head);

  auto keep = prepare_request(*m, target, true);
  REQUIRE(keep);
  CHECK(keep->bytes.find("Host: prod.example.com\r\n") != std::string::npos);
  CHECK(keep->bytes.starts_with("POST /base/v2/robot/query?x=1 HTTP/1.1\r\n"));
}

TEST_CASE("prepare_request sends the captured bytes unchanged when nothing needs editing") {
  std::string error;
  auto target = *parse_target_url("http://127.0.0.1:8080", error);
  auto m = testing::make_message(Kind::request, "GET /a HTTP/1.1\r\nHost: 127.0.0.1:8080\r\n\r\n");
  auto out = prepare_request(*m, target, false);
  REQUIRE(out);
  CHECK(out->bytes.empty());
  auto orig = prepare_request(*m, target, true);
  REQUIRE(orig);
  CHECK(orig->bytes.empty());
}

TEST_CASE("prepare_request adds a Host header when the request has none, and notes HEAD and close") {
  std::string error;
  auto target = *parse_target_url("http://t", error);
  auto m = testing::make_message(Kind::request, "HEAD /a HTTP/1.0\r\nAccept: */*\r\n\r\n");
  auto out = prepare_request(*m, target, false);
  REQUIRE(out);
  CHECK(out->bytes == "HEAD /a HTTP/1.0\r\nHost: t\r\nAccept: */*\r\n\r\n");
  CHECK(out->head);
  CHECK(out->close);  // HTTP/1.0 without keep-alive

  auto c = testing::make_message(Kind::request, "GET / HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n");
  CHECK(prepare_request(*c, target, false)->close);
  CHECK_FALSE(prepare_request(*testing::make_message(Kind::request, "garbage"), target, false));
}
