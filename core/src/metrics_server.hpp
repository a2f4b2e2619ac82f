#pragma once
// Serves /metrics over HTTP/1.1 (Boost.Beast) from the runtime's I/O context. Built to stay
// up however it is used: a request must arrive whole within a deadline and fit in a few KiB,
// the connections held at once are capped (the oldest still waiting for its request makes
// room for a new one), and running out of descriptors pauses accepting briefly instead of
// ending it. Everything it refuses is counted and logged, rate-limited.
#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>

#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>

#include "pipeline_file.hpp"

namespace doppel::core {

class MetricsServer {
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

  // What the server refused or cut short since it started.
  struct Counts {
    std::uint64_t accepted = 0, served = 0;
    std::uint64_t timed_out = 0;        // request (or response) not through within request_timeout
    std::uint64_t rejected = 0;         // answered 4xx: too large, malformed, wrong method or path
    std::uint64_t evicted = 0;          // closed while waiting for its request, to make room
    std::uint64_t accept_failures = 0;  // accept() errors, e.g. out of file descriptors
  };

  // Binds and listens now (throws std::runtime_error naming the address when it cannot),
  // then serves what `render` returns at /metrics from the threads running `io`.
  MetricsServer(boost::asio::io_context& io, const ListenAddress& address, std::function<std::string()> render,
                Limits limits);
  MetricsServer(boost::asio::io_context& io, const ListenAddress& address, std::function<std::string()> render)
      : MetricsServer(io, address, std::move(render), Limits{}) {}
  // Stops accepting and closes every connection. Call it once the threads running `io` have
  // stopped: the server's state is touched by them without a lock.
  ~MetricsServer();
  MetricsServer(const MetricsServer&) = delete;
  MetricsServer& operator=(const MetricsServer&) = delete;

  boost::asio::ip::tcp::endpoint local_endpoint() const;
  Counts counts() const;

  struct State;  // shared with the connections, which may outlive the server in `io`'s queue

 private:
  std::shared_ptr<State> state_;
};

}  // namespace doppel::core
