// The SDK's HttpServer beyond what /metrics uses (tests/core/test_metrics_server.cpp covers the
// limits): routes given their query string, handlers' 4xx counted as refusals, a handler that
// throws answered 500 and counted, port 0, and the address port 0 is allowed for.
#include <doctest/doctest.h>

#include <optional>
#include <stdexcept>
#include <thread>

#include "doppel/http_server.hpp"
#include "doppel/io_threads.hpp"
#include "http_test_client.hpp"

using namespace doppel;
using doppel::testing::http_body;
using doppel::testing::http_get;

TEST_CASE("http server: routes answer with their handler, given the query string still encoded") {
  IoThreads io(1);
  HttpServer::Config config;
  config.what = "the test routes";
  config.routes = {
      {"/echo", [](const HttpServer::Request& r) {
         return HttpServer::Response{200, std::string(r.path) + "|" + std::string(r.query) + (r.head ? "|head" : ""),
                                     "text/x-echo"};
       }},
      {"/refuse", [](const HttpServer::Request&) { return HttpServer::Response{400, "no\n"}; }},
      {"/broken", [](const HttpServer::Request&) -> HttpServer::Response { throw std::logic_error("bug"); }},
  };
  std::optional<HttpServer> server(std::in_place, io.context(), ListenAddress{"127.0.0.1", 0, "127.0.0.1:0"},
                                   std::move(config));
  std::uint16_t port = server->local_endpoint().port();
  REQUIRE(port != 0);

  std::string echo = http_get(port, "/echo?a=%5B1%5D&b");
  CHECK(echo.starts_with("HTTP/1.1 200 OK\r\n"));
  CHECK(echo.find("Content-Type: text/x-echo\r\n") != std::string::npos);
  CHECK(http_body(echo) == "/echo|a=%5B1%5D&b");
  CHECK(http_body(http_get(port, "/echo")) == "/echo|");
  CHECK(http_get(port, "/refuse").starts_with("HTTP/1.1 400 Bad Request\r\n"));
  std::string broken = http_get(port, "/broken");
  CHECK(broken.starts_with("HTTP/1.1 500 Internal Server Error\r\n"));
  CHECK(http_body(broken) == "internal error; see the log\n");
  std::string missing = http_get(port, "/nothing");
  CHECK(missing.starts_with("HTTP/1.1 404 Not Found\r\n"));
  CHECK(http_body(missing) == "not found; served here: /echo, /refuse, /broken\n");

  testing::Client head(port);
  head.send("HEAD /echo?x HTTP/1.1\r\n\r\n");
  std::string answer = head.read_all();
  CHECK(answer.find("Content-Length: 12\r\n") != std::string::npos);  // "/echo|x|head", not sent
  CHECK(answer.ends_with("\r\n\r\n"));

  io.stop();
  auto counts = server->counts();
  CHECK(counts.served == 3);
  CHECK(counts.rejected == 2);  // the handler's 400 and the unknown path
  CHECK(counts.handler_failures == 1);
  server.reset();
}

TEST_CASE("http server: an address in use is refused naming what was to be served") {
  IoThreads io(1);
  HttpServer first(io.context(), ListenAddress{"127.0.0.1", 0, "127.0.0.1:0"}, HttpServer::Config{});
  std::uint16_t port = first.local_endpoint().port();
  std::string text = "127.0.0.1:" + std::to_string(port);
  HttpServer::Config config;
  config.what = "the live report";
  const std::string expected = "cannot serve the live report on " + text + ": Address already in use";
  CHECK_THROWS_WITH_AS(HttpServer(io.context(), ListenAddress{"127.0.0.1", port, text}, std::move(config)),
                       expected.c_str(), std::runtime_error);
  io.stop();
}

TEST_CASE("listen addresses: port 0 (any free port) only where the caller allows it") {
  CHECK(parse_listen_address("127.0.0.1:0", true).port == 0);
  CHECK(parse_listen_address("[::1]:0", true).host == "::1");
  CHECK_THROWS_WITH_AS(parse_listen_address("127.0.0.1:0"),
                       "invalid address \"127.0.0.1:0\": the port must be a number from 1 to 65535, not \"0\"",
                       std::invalid_argument);
  CHECK_THROWS_WITH_AS(parse_listen_address("127.0.0.1:65536", true),
                       "invalid address \"127.0.0.1:65536\": the port must be a number from 0 (any free port) to "
                       "65535, not \"65536\"",
                       std::invalid_argument);
}
