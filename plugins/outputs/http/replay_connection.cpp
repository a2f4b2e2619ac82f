#include "replay_connection.hpp"

#include <boost/asio/connect.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/ssl/error.hpp>
#include <boost/asio/write.hpp>

#include "h2_connection.hpp"

namespace doppel::plugins {

namespace asio = boost::asio;
using boost::asio::ip::tcp;

namespace {
constexpr std::size_t kReadChunk = 64 * 1024;

bool is_ssl_error(const boost::system::error_code& ec) {
  return ec.category() == asio::error::get_ssl_category() || ec == asio::ssl::error::stream_truncated;
}
}  // namespace

bool is_peer_gone(const boost::system::error_code& ec) {
  return ec == asio::error::eof || ec == asio::error::connection_reset || ec == asio::error::broken_pipe ||
         ec == asio::error::connection_aborted || ec == asio::ssl::error::stream_truncated;
}

std::string_view connect_failure_reason(const boost::system::error_code& ec) {
  if (is_ssl_error(ec) && ec != asio::ssl::error::stream_truncated) return "tls";
  if (ec == asio::error::connection_refused) return "refused";
  if (ec == asio::error::host_not_found || ec == asio::error::host_not_found_try_again || ec == asio::error::no_data ||
      ec.category() == asio::error::get_netdb_category() || ec.category() == asio::error::get_addrinfo_category())
    return "dns";
  if (is_peer_gone(ec)) return "tls";  // closed during the handshake
  return "connect";
}

ReplayConnection::ReplayConnection(HttpOutput& output, asio::io_context& io, bool own_strand)
    : output_(output),
      io_(io),
      // With one I/O thread a strand only adds a lock and a hand-off per operation.
      executor_(own_strand ? asio::any_io_executor(asio::make_strand(io)) : asio::any_io_executor(io.get_executor())),
      resolver_(executor_),
      timer_(executor_) {
  read_buffer_.resize(kReadChunk);
}

void ReplayConnection::run(ReplayJob job, bool fresh) {
  job_ = std::move(job);
  retried_ = false;
  if (fresh) close();
  if (output_.use_h2(job_)) run_h2();
  else run_h1();
}

void ReplayConnection::run_h1() {
  if (connected_) send();
  else connect();
}

void ReplayConnection::run_h2() {
  if (!h2_ || !h2_->usable()) {
    if (h2_) h2_->close();
    // One stream at a time: the session machinery sends the next request after this answer.
    H2StreamOwner& owner = *this;
    h2_ = std::make_shared<H2Connection>(output_, executor_, owner, 1);
    if (job_.session) {
      if (job_.session->ever_connected) output_.session_reconnected();
      job_.session->ever_connected = true;
    }
  }
  auto h2 = h2_;  // the call may replace h2_
  h2->submit(std::move(job_));
  job_ = {};
}

void ReplayConnection::close() {
  close_socket();
  if (auto h2 = std::move(h2_)) h2->close();
}

void ReplayConnection::close_socket() {
  boost::system::error_code ignored;
  if (tls_) tls_->next_layer().close(ignored);
  if (socket_) socket_->close(ignored);
  connected_ = false;
  requests_on_connection_ = 0;
}

void ReplayConnection::abort() {
  abort_h1();
  if (auto h2 = std::move(h2_)) h2->abort();
}

void ReplayConnection::abort_h1() {
  guarding_ = false;
  timer_.cancel();
  resolver_.cancel();
  close_socket();
}

// Reconnects of a session are counted when its HTTP/2 connection is made (run_h2).
void ReplayConnection::h2_connected(H2Connection&) {}

void ReplayConnection::h2_streams_done(H2Connection&, const std::vector<std::shared_ptr<ReplaySession>>& sessions) {
  // One stream at a time on a session's connection: one entry.
  for (const auto& session : sessions) output_.job_done(shared_from_this(), session);
}

void ReplayConnection::h2_give_back(H2Connection& connection, std::vector<ReplayJob> jobs, bool no_h2) {
  for (ReplayJob& job : jobs) {
    job_ = std::move(job);
    retried_ = false;
    if (no_h2) {
      run_h1();  // the target speaks HTTP/1.1 only: this connection carries it so
    } else {
      // Not processed (GOAWAY, refused): again on a new HTTP/2 connection.
      if (h2_.get() == &connection) h2_.reset();
      run_h2();
    }
  }
}

void ReplayConnection::h2_closed(H2Connection& connection) {
  if (h2_.get() == &connection) h2_.reset();
}

// One timer per connection, re-armed only when it fires: a request moves the deadline
// forward without a timer operation of its own (a cancel and a wait per request cost as much
// as the request itself on loopback).
void ReplayConnection::arm_timer(std::chrono::nanoseconds after) {
  timed_out_ = false;
  guarding_ = true;
  deadline_ = std::chrono::steady_clock::now() + after;
  if (!timer_pending_) start_timer();
  else if (deadline_ < timer_.expiry()) timer_.cancel();  // earlier deadline: the handler restarts it
}

void ReplayConnection::start_timer() {
  timer_pending_ = true;
  timer_.expires_at(deadline_);
  timer_.async_wait([self = shared_from_this()](const boost::system::error_code& ec) {
    self->timer_pending_ = false;
    if (!self->guarding_) return;
    if (ec || std::chrono::steady_clock::now() < self->deadline_) return self->start_timer();
    // Closing the socket makes the pending operation complete with an error, reported as timeout.
    self->guarding_ = false;
    self->timed_out_ = true;
    self->resolver_.cancel();
    self->close_socket();
  });
}

void ReplayConnection::connect() {
  close_socket();
  phase_ = Phase::connect;
  const HttpOutputConfig& config = output_.config();
  tls_.reset();
  socket_.reset();
  if (config.target.tls) {
    tls_ = make_target_stream(executor_, config.tls, config.target.host);
  } else {
    socket_ = std::make_unique<tcp::socket>(executor_);
  }
  arm_timer(config.connect_timeout);
  resolver_.async_resolve(
      config.target.host, std::to_string(config.target.port),
      [self = shared_from_this()](const boost::system::error_code& ec, const tcp::resolver::results_type& results) {
        if (ec) return self->fail(ec);
        asio::async_connect(self->lowest_socket(), results,
                            [self](const boost::system::error_code& ec2, const tcp::endpoint&) {
                              if (ec2) return self->fail(ec2);
                              boost::system::error_code ignored;
                              self->lowest_socket().set_option(tcp::no_delay(true), ignored);
                              if (!self->tls_) return self->on_connected();
                              self->tls_->async_handshake(asio::ssl::stream_base::client,
                                                          [self](const boost::system::error_code& ec3) {
                                                            if (ec3) return self->fail(ec3);
                                                            self->on_connected();
                                                          });
                            });
      });
}

void ReplayConnection::on_connected() {
  connected_ = true;
  if (job_.session) {
    if (job_.session->ever_connected) output_.session_reconnected();
    job_.session->ever_connected = true;
  }
  requests_on_connection_ = 0;
  send();
}

void ReplayConnection::send() {
  phase_ = Phase::exchange;
  arm_timer(output_.config().timeout);
  response_.clear();
  response_size_ = 0;
  framer_.reset(job_.outgoing.head);
  sent_at_ = std::chrono::steady_clock::now();
  std::string_view bytes = job_.bytes();
  with_stream([&](auto& stream) {
    asio::async_write(stream, asio::buffer(bytes.data(), bytes.size()),
                      [self = shared_from_this()](const boost::system::error_code& ec, std::size_t) {
                        if (ec) return self->fail(ec);
                        self->read();
                      });
  });
}

void ReplayConnection::read() {
  with_stream([&](auto& stream) {
    stream.async_read_some(asio::buffer(read_buffer_.data(), read_buffer_.size()),
                           [self = shared_from_this()](const boost::system::error_code& ec, std::size_t n) {
                             self->on_read(ec, n);
                           });
  });
}

void ReplayConnection::on_read(const boost::system::error_code& ec, std::size_t n) {
  if (ec) {
    if (!timed_out_ && is_peer_gone(ec) && framer_.started()) {
      // A close-delimited body ends here; anything else was cut short.
      if (framer_.finish() == ResponseFramer::State::complete) return finish();
    }
    return fail(ec);
  }
  std::size_t used = 0;
  auto state = framer_.feed(std::string_view(read_buffer_.data(), n), used);
  // Untracked responses are only framed: nobody will read their bytes.
  if (output_.config().track_response) response_.append(read_buffer_.data(), used);
  response_size_ += used;
  if (state == ResponseFramer::State::error) return finish_error("bad_response");
  if (response_size_ > output_.config().max_response_size) return finish_error("response_too_large");
  if (state == ResponseFramer::State::need_more) return read();
  if (framer_.interim_end() > 0 && !response_.empty()) response_.erase(0, framer_.interim_end());
  if (used < n) {
    // Bytes after the response nobody asked for: the connection can no longer be trusted.
    close_socket();
  }
  finish();
}

bool ReplayConnection::retry_on_fresh_connection(const boost::system::error_code& ec) {
  // A kept-alive connection the target closed while idle: the request never reached it.
  if (phase_ != Phase::exchange || requests_on_connection_ == 0 || timed_out_ || retried_ ||
      response_size_ > 0 || !is_peer_gone(ec) || output_.stopping())
    return false;
  retried_ = true;
  connect();
  return true;
}

void ReplayConnection::fail(const boost::system::error_code& ec) {
  if (retry_on_fresh_connection(ec)) return;
  std::string_view reason;
  if (output_.stopping() && !timed_out_) reason = "shutdown";
  else if (timed_out_) reason = "timeout";
  else if (phase_ == Phase::connect) {
    if (tls_) {
      if (auto rejected = certificate_rejection(*tls_)) return finish_error("tls_verify", "tls_verify: " + *rejected);
    }
    reason = connect_failure_reason(ec);
  }
  else if (is_ssl_error(ec) && ec != asio::ssl::error::stream_truncated) reason = "tls";
  else reason = "reset";
  finish_error(reason);
}

void ReplayConnection::finish_error(std::string_view reason, std::string_view detail) {
  std::int64_t latency = phase_ == Phase::exchange
                             ? std::chrono::duration_cast<std::chrono::nanoseconds>(
                                   std::chrono::steady_clock::now() - sent_at_).count()
                             : 0;
  abort_h1();
  response_.clear();
  output_.report_error(job_, reason, latency, detail);
  auto session = std::move(job_.session);
  job_ = {};
  output_.job_done(shared_from_this(), session);
}

void ReplayConnection::finish() {
  auto latency =
      std::chrono::duration_cast<std::chrono::nanoseconds>(std::chrono::steady_clock::now() - sent_at_).count();
  guarding_ = false;  // the timer lapses when it next fires
  ++requests_on_connection_;
  if (!framer_.keep_alive() || job_.outgoing.close) close_socket();
  output_.report_response(job_, std::move(response_), latency);
  response_ = std::string();
  auto session = std::move(job_.session);
  job_ = {};
  output_.job_done(shared_from_this(), session);
}

}  // namespace doppel::plugins
