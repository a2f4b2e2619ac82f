#pragma once
// Serves /metrics (Prometheus text) from the runtime's I/O context, on the SDK's HttpServer:
// its limits, counts and hardening (doppel/http_server.hpp) apply as they are.
#include <functional>
#include <string>

#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>

#include "doppel/http_server.hpp"

namespace doppel::core {

class MetricsServer {
 public:
  using Limits = HttpServer::Limits;
  using Counts = HttpServer::Counts;

  // Binds and listens now (throws std::runtime_error "cannot serve /metrics on ADDRESS: why"),
  // then serves what `render` returns at /metrics from the threads running `io`.
  MetricsServer(boost::asio::io_context& io, const ListenAddress& address, std::function<std::string()> render,
                Limits limits = {});
  // Call it once the threads running `io` have stopped (as ~HttpServer).
  ~MetricsServer() = default;
  MetricsServer(const MetricsServer&) = delete;
  MetricsServer& operator=(const MetricsServer&) = delete;

  boost::asio::ip::tcp::endpoint local_endpoint() const { return server_.local_endpoint(); }
  Counts counts() const { return server_.counts(); }

 private:
  HttpServer server_;
};

}  // namespace doppel::core
