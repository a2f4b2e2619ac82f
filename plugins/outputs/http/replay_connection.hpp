#pragma once
// One keep-alive connection to the target, doing one request at a time on its executor (a
// strand of its own when the output has several I/O threads):
// connect (TLS handshake) when needed, write the request, read the response until the
// framer says it is complete, then ask the output for the next job.
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/strand.hpp>

#include <chrono>
#include <memory>
#include <string>

#include "http_output.hpp"
#include "response_framer.hpp"

namespace doppel::plugins {

// The error reason (counted as failed.<reason>) of a failure to resolve, connect or shake hands.
std::string_view connect_failure_reason(const boost::system::error_code& ec);
// The peer closed or reset the connection.
bool is_peer_gone(const boost::system::error_code& ec);

// With session-aware replay, a session's HTTP/2 requests go out one at a time on an HTTP/2
// connection this one owns (`h2_`), so the target still sees each session on a connection of
// its own, in captured order.
class ReplayConnection : public std::enable_shared_from_this<ReplayConnection>, private H2StreamOwner {
 public:
  ReplayConnection(HttpOutput& output, boost::asio::io_context& io, bool own_strand);

  // Runs `job` on this connection; call through post(executor(), ...). `fresh`: not on the
  // connection as it is (another session's, or an idle pool one) but on a new one.
  void run(ReplayJob job, bool fresh = false);
  // Closes the socket and the HTTP/2 connection (the session it served ended).
  void close();
  // Stops whatever is pending (shutdown): cancels the timer and the resolver, closes.
  void abort();
  const boost::asio::any_io_executor& executor() const { return executor_; }

 private:
  enum class Phase { connect, exchange };
  void run_h1();
  void run_h2();
  void close_socket();
  void abort_h1();
  void h2_connected(H2Connection& connection) override;
  void h2_streams_done(H2Connection& connection, const std::vector<std::shared_ptr<ReplaySession>>& sessions) override;
  void h2_give_back(H2Connection& connection, std::vector<ReplayJob> jobs, bool no_h2) override;
  void h2_closed(H2Connection& connection) override;
  void connect();
  void on_connected();
  void send();
  void read();
  void on_read(const boost::system::error_code& ec, std::size_t n);
  void arm_timer(std::chrono::nanoseconds after);
  void start_timer();
  void fail(const boost::system::error_code& ec);
  // `detail`: meta.error when it says more than `reason` ("tls_verify: hostname mismatch").
  void finish_error(std::string_view reason, std::string_view detail = {});
  void finish();
  bool retry_on_fresh_connection(const boost::system::error_code& ec);

  template <class F>
  void with_stream(F&& f) {
    if (tls_) f(*tls_);
    else f(*socket_);
  }
  boost::asio::ip::tcp::socket& lowest_socket() { return tls_ ? tls_->next_layer() : *socket_; }

  HttpOutput& output_;
  boost::asio::io_context& io_;
  boost::asio::any_io_executor executor_;
  boost::asio::ip::tcp::resolver resolver_;
  boost::asio::steady_timer timer_;
  std::unique_ptr<boost::asio::ip::tcp::socket> socket_;
  std::unique_ptr<TlsStream> tls_;
  bool connected_ = false;
  std::uint64_t requests_on_connection_ = 0;
  std::chrono::steady_clock::time_point deadline_;  // of the operation in progress
  bool guarding_ = false;       // an operation in progress has a deadline
  bool timer_pending_ = false;  // timer_ has a wait outstanding
  bool timed_out_ = false;
  bool retried_ = false;
  Phase phase_ = Phase::connect;

  ReplayJob job_;
  std::chrono::steady_clock::time_point sent_at_;
  std::string read_buffer_;
  std::string response_;        // kept only with track_response
  std::size_t response_size_ = 0;  // bytes of the response so far
  ResponseFramer framer_;
  std::shared_ptr<H2Connection> h2_;
};

}  // namespace doppel::plugins
