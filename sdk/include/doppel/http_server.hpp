#pragma once
// A small HTTP/1.1 server (Boost.Beast) for what doppel serves while it runs: the runtime's
// /metrics, the report's live view. GET and HEAD on a fixed set of paths, one request per
// connection, answered by a handler given the query string. Built to stay up however it is
// used: a request must arrive whole within a deadline and fit in a few KiB, the connections
// held at once are capped (the oldest still waiting for its request makes room for a new one),
// and running out of descriptors pauses accepting briefly instead of ending it. Everything it
// refuses is counted and logged, rate-limited.
//
// The server runs on the caller's io_context, from whichever threads run it. Asio finds its
// services by type name, so a context created in a plugin (doppel/io_threads.hpp) serves
// sockets opened here in libdoppel-sdk.
#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>

#include "doppel/listen_address.hpp"

namespace doppel {

class HttpServer {
 public:
  struct Limits {
    // The whole request (line and headers) must arrive within this; the response must be
    // taken within it too. Prometheus sends a scrape in one packet.
    std::chrono::milliseconds request_timeout{10'000};
    std::size_t max_request_bytes = 8 * 1024;  // larger: 431 and close
    std::size_t max_connections = 64;          // held at once
    // After an accept failure (EMFILE, ENFILE, ...): wait this long before accepting again.
    std::chrono::milliseconds accept_backoff{100};
  };

  // What the server answered, refused or cut short since it started.
  struct Counts {
    std::uint64_t accepted = 0;
    std::uint64_t served = 0;           // answered 200
    std::uint64_t timed_out = 0;        // request (or response) not through within request_timeout
    std::uint64_t rejected = 0;         // answered 4xx: too large, malformed, wrong method, path or query
    std::uint64_t evicted = 0;          // closed while waiting for its request, to make room
    std::uint64_t accept_failures = 0;  // accept() errors, e.g. out of file descriptors
    std::uint64_t handler_failures = 0;  // a handler threw: answered 500
  };

  struct Request {
    bool head = false;       // HEAD: the body is made (its length is sent) but not sent
    std::string_view path;   // the target up to '?': one of the routes' paths
    std::string_view query;  // after '?', still percent-encoded (doppel/form.hpp parse_form); "" if none
  };

  struct Response {
    unsigned status = 200;  // a 4xx counts as rejected
    std::string body;
    std::string content_type = "text/plain; charset=utf-8";
  };

  // Runs on one of the threads running the io_context, one request at a time: a slow handler
  // delays the other connections, never the caller's own work.
  using Handler = std::function<Response(const Request&)>;

  struct Route {
    std::string path;  // exact: "/metrics", "/api/summary"
    Handler handler;
  };

  struct Config {
    std::string what = "HTTP";    // what is served, in messages: "cannot serve WHAT on ADDRESS: ..."
    std::string logger = "http";  // the spdlog logger (a clone of the default one) for its warnings
    std::vector<Route> routes;    // any other path: 404 listing these
    Limits limits;
  };

  // Binds and listens now (throws std::runtime_error "cannot serve WHAT on ADDRESS: why" when it
  // cannot), then serves from the threads running `io`. Port 0 binds any free port
  // (local_endpoint() tells which).
  HttpServer(boost::asio::io_context& io, const ListenAddress& address, Config config);
  // Stops accepting and closes every connection. Call it once the threads running `io` have
  // stopped: the server's state is touched by them without a lock.
  ~HttpServer();
  HttpServer(const HttpServer&) = delete;
  HttpServer& operator=(const HttpServer&) = delete;

  boost::asio::ip::tcp::endpoint local_endpoint() const;
  Counts counts() const;

  struct State;  // shared with the connections, which may outlive the server in `io`'s queue

 private:
  std::shared_ptr<State> state_;
};

}  // namespace doppel
