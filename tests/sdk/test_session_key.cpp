#include <doctest/doctest.h>

#include "doppel/session_key.hpp"

using namespace doppel;

namespace {
Message request(std::string payload, std::uint64_t connection_id = 0) {
  Message m(Kind::request, "id", 0, std::move(payload));
  m.meta.connection_id = connection_id;
  return m;
}
}  // namespace

TEST_CASE("session key specs parse and print back") {
  std::string error;
  auto connection = parse_session_key("connection", &error);
  REQUIRE(connection);
  CHECK(connection->source == SessionKeySpec::Source::connection);
  CHECK(connection->name.empty());
  auto header = parse_session_key("header:X-Session", &error);
  REQUIRE(header);
  CHECK(header->source == SessionKeySpec::Source::header);
  CHECK(header->name == "X-Session");
  auto cookie = parse_session_key("cookie:sid", &error);
  REQUIRE(cookie);
  CHECK(cookie->source == SessionKeySpec::Source::cookie);
  auto param = parse_session_key("param:user.id", &error);
  REQUIRE(param);
  CHECK(param->source == SessionKeySpec::Source::param);
  CHECK(param->name == "user.id");
  for (const char* text : {"connection", "header:X-Session", "cookie:sid", "param:user.id"})
    CHECK(to_string(*parse_session_key(text, nullptr)) == text);
}

TEST_CASE("session key specs: bad ones say why") {
  std::string error;
  CHECK_FALSE(parse_session_key("", &error));
  CHECK(error.find("expected \"connection\"") != std::string::npos);
  CHECK_FALSE(parse_session_key("ip", &error));
  CHECK(error.find("got \"ip\"") != std::string::npos);
  CHECK_FALSE(parse_session_key("Connection", &error));
  CHECK_FALSE(parse_session_key("header:", &error));
  CHECK(error.find("needs a name") != std::string::npos);
  CHECK_FALSE(parse_session_key("cookie", &error));
  CHECK(error.find("needs a name") != std::string::npos);
  CHECK_FALSE(parse_session_key("header:X Session", &error));
  CHECK(error.find("not a valid header name") != std::string::npos);
  CHECK_FALSE(parse_session_key("cookie:a=b", &error));
  CHECK_FALSE(parse_session_key("param:a&b", &error));
  CHECK_FALSE(parse_session_key("connection:x", nullptr));  // no crash without an error sink
}

TEST_CASE("session key of a request: connection") {
  auto spec = *parse_session_key("connection", nullptr);
  auto m = request("GET / HTTP/1.1\r\n\r\n", 17);
  CHECK(session_key_of(spec, m) == "17");
  m.meta.source = Endpoint{"10.0.0.1", 5555};
  CHECK(session_key_of(spec, m) == "17@10.0.0.1:5555");
  m.meta.source = Endpoint{"::1", 80};
  CHECK(session_key_of(spec, m) == "17@[::1]:80");
  CHECK_FALSE(session_key_of(spec, request("GET / HTTP/1.1\r\n\r\n", 0)));  // unknown (.gor)
  CHECK(session_key_of(spec, request("not http", 3)) == "3");  // the connection, whatever it carried
}

TEST_CASE("session key of a request: header") {
  auto spec = *parse_session_key("header:X-Session", nullptr);
  CHECK(session_key_of(spec, request("GET / HTTP/1.1\r\nx-session:  abc \r\n\r\n")) == "abc");
  CHECK(session_key_of(spec, request("GET / HTTP/1.1\r\nX-Session: a\r\nX-Session: b\r\n\r\n")) == "a");
  CHECK_FALSE(session_key_of(spec, request("GET / HTTP/1.1\r\nX-Other: a\r\n\r\n")));
  CHECK_FALSE(session_key_of(spec, request("GET / HTTP/1.1\r\nX-Session:   \r\n\r\n")));
  CHECK_FALSE(session_key_of(spec, request("HTTP/1.1 200 OK\r\nX-Session: a\r\n\r\n")));
  CHECK_FALSE(session_key_of(spec, request("garbage")));
}

TEST_CASE("session key of a request: cookie") {
  auto spec = *parse_session_key("cookie:sid", nullptr);
  CHECK(session_key_of(spec, request("GET / HTTP/1.1\r\nCookie: a=1; sid=xyz; b=2\r\n\r\n")) == "xyz");
  CHECK(session_key_of(spec, request("GET / HTTP/1.1\r\nCookie: a=1\r\ncookie: sid=\"q\"\r\n\r\n")) == "q");
  CHECK(session_key_of(spec, request("GET / HTTP/1.1\r\nCookie: sid=first; sid=second\r\n\r\n")) == "first");
  // Names are exact: a cookie whose name merely contains `sid` is another cookie.
  CHECK_FALSE(session_key_of(spec, request("GET / HTTP/1.1\r\nCookie: xsid=1; sidx=2; SID=3\r\n\r\n")));
  CHECK_FALSE(session_key_of(spec, request("GET / HTTP/1.1\r\nCookie: sid=\r\n\r\n")));
  CHECK_FALSE(session_key_of(spec, request("GET / HTTP/1.1\r\nX-Cookie: sid=1\r\n\r\n")));
  CHECK_FALSE(session_key_of(spec, request("GET / HTTP/1.1\r\nCookie: sid\r\n\r\n")));
}

TEST_CASE("session key of a request: query parameter") {
  auto spec = *parse_session_key("param:user", nullptr);
  CHECK(session_key_of(spec, request("GET /a?x=1&user=j%C3%B6rg+k HTTP/1.1\r\n\r\n")) == "j\xC3\xB6rg k");
  CHECK(session_key_of(spec, request("GET /a?user=1&user=2 HTTP/1.1\r\n\r\n")) == "1");
  CHECK(session_key_of(spec, request("GET http://old/a?user=7 HTTP/1.1\r\n\r\n")) == "7");
  CHECK_FALSE(session_key_of(spec, request("GET /a?username=1 HTTP/1.1\r\n\r\n")));
  CHECK_FALSE(session_key_of(spec, request("GET /a?user= HTTP/1.1\r\n\r\n")));
  CHECK_FALSE(session_key_of(spec, request("GET /a HTTP/1.1\r\n\r\n")));
  // The body is not the query: a form field does not key the session.
  CHECK_FALSE(session_key_of(spec, request("POST /a HTTP/1.1\r\nContent-Length: 6\r\n\r\nuser=1")));
}
