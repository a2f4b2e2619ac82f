#include <doctest/doctest.h>

#include "doppel/http.hpp"
#include "doppel/http2.hpp"

using namespace doppel;

namespace {
h2::StreamMessage grpc_request() {
  h2::StreamMessage m;
  m.headers = {{":method", "POST"},
               {":scheme", "http"},
               {":path", "/pkg.Greeter/SayHello"},
               {":authority", "localhost:50051"},
               {"content-type", "application/grpc"},
               {"te", "trailers"},
               {"user-agent", "grpc-python/1.51.1"}};
  m.body = std::string("\0\0\0\0\x07\x0a\x05world", 12);
  return m;
}

std::string form(const h2::StreamMessage& m, bool answers_head = false) {
  std::string error;
  auto out = h2::to_http1(m, error, answers_head);
  REQUIRE_MESSAGE(out, error);
  return *out;
}

std::string refusal(const h2::StreamMessage& m) {
  std::string error;
  auto out = h2::to_http1(m, error);
  CHECK(!out);
  return error;
}
}  // namespace

TEST_CASE("an h2 request becomes its HTTP/1.1 form: host from :authority, fields in order, length added") {
  std::string out = form(grpc_request());
  CHECK(out == std::string("POST /pkg.Greeter/SayHello HTTP/1.1\r\n"
                           "host: localhost:50051\r\n"
                           "content-type: application/grpc\r\n"
                           "te: trailers\r\n"
                           "user-agent: grpc-python/1.51.1\r\n"
                           "content-length: 12\r\n\r\n") +
                   std::string("\0\0\0\0\x07\x0a\x05world", 12));
  HttpView view = HttpView::parse(out);
  CHECK(view.ok());
  CHECK(view.path() == "/pkg.Greeter/SayHello");
  CHECK(decode_body(view).bytes.size() == 12);
}

TEST_CASE("a response with trailers is chunked, the trailers follow, and they round-trip") {
  h2::StreamMessage m;
  m.headers = {{":status", "200"}, {"content-type", "application/grpc"}, {"content-length", "5"}};
  m.body = std::string("\0\0\0\0\0", 5);
  m.trailers = {{"grpc-status", "0"}, {"grpc-message", "ok%20done"}};
  std::string out = form(m);
  CHECK(out == std::string("HTTP/1.1 200 OK\r\ncontent-type: application/grpc\r\ntransfer-encoding: chunked\r\n\r\n"
                           "5\r\n") +
                   std::string(5, '\0') + "\r\n0\r\ngrpc-status: 0\r\ngrpc-message: ok%20done\r\n\r\n");
  HttpView view = HttpView::parse(out);
  FramedBody body = unframe_body(view);
  CHECK(body.error.empty());
  CHECK(body.bytes == m.body);
  REQUIRE(body.trailers.size() == 2);
  CHECK(body.trailers[0].name == "grpc-status");
  CHECK(body.trailers[1].value == "ok%20done");
}

TEST_CASE("responses: bodiless statuses get no length, others always say where the body ends") {
  h2::StreamMessage m;
  m.headers = {{":status", "204"}};
  CHECK(form(m) == "HTTP/1.1 204 No Content\r\n\r\n");
  m.headers = {{":status", "200"}, {"grpc-status", "12"}};  // a gRPC trailers-only response
  CHECK(form(m) == "HTTP/1.1 200 OK\r\ngrpc-status: 12\r\ncontent-length: 0\r\n\r\n");
  m.headers = {{":status", "599"}};
  CHECK(form(m) == "HTTP/1.1 599 \r\ncontent-length: 0\r\n\r\n");
  // A HEAD answer's content-length describes the body a GET would have had.
  m.headers = {{":status", "200"}, {"content-length", "1234"}};
  CHECK(form(m, true) == "HTTP/1.1 200 OK\r\ncontent-length: 1234\r\n\r\n");
  CHECK(refusal(m) == "content-length differs from the DATA received");
}

TEST_CASE("split cookie fields are joined where the first one was (RFC 9113 8.2.3)") {
  h2::StreamMessage m;
  m.headers = {{":method", "GET"}, {":scheme", "https"}, {":path", "/"}, {":authority", "a"},
               {"cookie", "a=1"},  {"accept", "*/*"},    {"cookie", "b=2"}};
  CHECK(form(m) == "GET / HTTP/1.1\r\nhost: a\r\ncookie: a=1; b=2\r\naccept: */*\r\n\r\n");
}

TEST_CASE("malformed streams are refused with the reason, never guessed") {
  auto with = [](std::vector<h2::Field> headers) {
    h2::StreamMessage m;
    m.headers = std::move(headers);
    return m;
  };
  CHECK(refusal(with({{":method", "GET"}, {":path", "/"}})) == "malformed request pseudo-headers");
  CHECK(refusal(with({{":method", "GET"}, {":scheme", "http"}, {":path", "/"}, {":method", "GET"}})) ==
        "repeated pseudo-header :method");
  CHECK(refusal(with({{":status", "200"}, {"x", "1"}, {":path", "/"}})) == "pseudo-header :path after a regular field");
  CHECK(refusal(with({{":status", "200"}, {"X-Upper", "1"}})) == "invalid header field");
  CHECK(refusal(with({{":status", "200"}, {"x", "a\r\nInjected: 1"}})) == "invalid header field");
  CHECK(refusal(with({{":status", "200"}, {"connection", "close"}})) == "connection-specific header field connection");
  CHECK(refusal(with({{":status", "2000"}})) == "malformed :status");
  CHECK(refusal(with({{":status", "200"}, {":method", "GET"}})) == "both :method and :status");
  CHECK(refusal(with({{"x", "1"}})) == "neither :method nor :status");
  CHECK(refusal(with({{":protocol", "websocket"}})) == "unsupported pseudo-header :protocol");
  CHECK(refusal(with({{":method", "GET"}, {":scheme", "http"}, {":path", "/a b"}})) == "invalid :path");
  auto bad_trailer = with({{":status", "200"}});
  bad_trailer.trailers = {{":status", "200"}};
  CHECK(refusal(bad_trailer) == "pseudo-header in trailers");
}

TEST_CASE("an HTTP/1.1 request becomes h2 fields: pseudo-headers, no connection fields, body and trailers") {
  std::string payload =
      "POST /pkg.Greeter/SayHello HTTP/1.1\r\nHost: localhost:50051\r\nConnection: keep-alive\r\n"
      "Content-Type: application/grpc\r\nTE: trailers\r\nTransfer-Encoding: chunked\r\n\r\n"
      "3\r\nabc\r\n2\r\nde\r\n0\r\nX-Checksum: 9\r\n\r\n";
  std::string error;
  auto m = h2::request_from_http1(payload, "http", error);
  REQUIRE_MESSAGE(m, error);
  REQUIRE(m->headers.size() == 6);
  CHECK(m->headers[0].name == ":method");
  CHECK(m->headers[0].value == "POST");
  CHECK(m->headers[1].value == "http");
  CHECK(m->headers[2].name == ":authority");
  CHECK(m->headers[2].value == "localhost:50051");
  CHECK(m->headers[3].value == "/pkg.Greeter/SayHello");
  CHECK(m->headers[4].name == "content-type");
  CHECK(m->headers[5].name == "te");
  CHECK(m->body == "abcde");
  REQUIRE(m->trailers.size() == 1);
  CHECK(m->trailers[0].name == "x-checksum");

  // The captured h2 form goes back to the same fields.
  auto again = h2::request_from_http1(form(grpc_request()), "http", error);
  REQUIRE_MESSAGE(again, error);
  CHECK(again->body == grpc_request().body);
  CHECK(again->headers[2].value == "localhost:50051");

  // absolute-form, and a body shorter than its content-length
  auto proxy = h2::request_from_http1("GET http://example.com:8080/x?y=1 HTTP/1.1\r\n\r\n", "http", error);
  REQUIRE(proxy);
  CHECK(proxy->headers[2].value == "example.com:8080");
  CHECK(proxy->headers[3].value == "/x?y=1");
  CHECK(!h2::request_from_http1("POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 10\r\n\r\nabc", "http", error));
  CHECK(error == "body shorter than Content-Length");
  CHECK(!h2::request_from_http1("HTTP/1.1 200 OK\r\n\r\n", "http", error));
}
