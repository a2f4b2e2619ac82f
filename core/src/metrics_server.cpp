#include "metrics_server.hpp"

namespace doppel::core {
namespace {

HttpServer::Config metrics_config(std::function<std::string()> render, MetricsServer::Limits limits) {
  HttpServer::Config config;
  config.what = "/metrics";
  config.logger = "metrics";
  config.limits = limits;
  config.routes.push_back({"/metrics", [render = std::move(render)](const HttpServer::Request&) {
                             return HttpServer::Response{200, render(), "text/plain; version=0.0.4"};
                           }});
  return config;
}

}  // namespace

MetricsServer::MetricsServer(boost::asio::io_context& io, const ListenAddress& address,
                             std::function<std::string()> render, Limits limits)
    : server_(io, address, metrics_config(std::move(render), limits)) {}

}  // namespace doppel::core
