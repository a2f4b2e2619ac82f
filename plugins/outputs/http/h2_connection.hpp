#pragma once
// One HTTP/2 connection to the target (h2c with prior knowledge, or h2 over TLS chosen by
// ALPN) carrying many requests at once, one stream each. libnghttp2 does the framing, HPACK
// and flow control; this class moves its bytes over the socket, holds back requests beyond
// the target's SETTINGS_MAX_CONCURRENT_STREAMS, times streams out, and turns each answer into
// its HTTP/1.1 form (doppel/http2.hpp) for the `replay` message.
#include <nghttp2/nghttp2.h>

#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/ssl/stream.hpp>
#include <boost/asio/steady_timer.hpp>

#include <atomic>
#include <chrono>
#include <deque>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "http_output.hpp"

namespace doppel::plugins {

class H2Connection : public std::enable_shared_from_this<H2Connection> {
 public:
  // `max_streams`: streams at once at most, before the target's own limit is known.
  H2Connection(HttpOutput& output, boost::asio::any_io_executor executor, H2StreamOwner& owner,
               std::size_t max_streams);
  ~H2Connection();
  H2Connection(const H2Connection&) = delete;
  H2Connection& operator=(const H2Connection&) = delete;

  // Sends `job` (job.h2 set) as a new stream; connects first when needed. On the executor.
  void submit(ReplayJob job);
  // Closes the connection; streams still open end as `reset` (gone with the connection).
  void close();
  // Shutdown: every stream still open ends as `shutdown`.
  void abort();
  const boost::asio::any_io_executor& executor() const { return executor_; }

  // Read from any thread by the pool.
  // Takes new streams (not closed, no GOAWAY received).
  bool usable() const { return usable_; }
  // Streams it carries at once: max_streams, or fewer when the target said so.
  std::size_t stream_limit() const { return stream_limit_; }

 private:
  struct Stream {
    ReplayJob job;
    std::int32_t id = 0;
    std::size_t body_offset = 0;                      // of the request body sent so far
    std::chrono::steady_clock::time_point submitted;  // its deadline is `timeout` later
    std::chrono::steady_clock::time_point sent_at;    // HEADERS written: latency counts from here
    bool sent = false;
    h2::StreamMessage response;
    bool final_headers = false;  // a non-1xx :status arrived; HEADERS after it are trailers
    bool ended = false;          // END_STREAM arrived
    bool not_sent = false;       // libnghttp2 could not send HEADERS (GOAWAY came first)
    std::size_t size = 0;        // response bytes (fields and DATA) so far
    std::string reason;          // set when doppel ended it (timeout, response_too_large)
    std::uint32_t close_code = 0;
  };
  enum class State { idle, connecting, preface, open, closed };

  void connect();
  void on_transport_ready();
  void read();
  void on_read(const boost::system::error_code& ec, std::size_t n);
  // Submits held-back requests while the target's stream limit allows.
  void start_streams();
  void submit_stream(std::unique_ptr<Stream> stream);
  void schedule_write();
  void write();
  void arm_timer();
  void on_timer();
  // After a batch of libnghttp2 work: reports ended streams, hands back what must go elsewhere,
  // closes when the session is over.
  void deliver();
  // Reports the streams in ended_, or collects in `back` those the target never processed.
  void settle(std::vector<ReplayJob>& back);
  void finish_stream(std::unique_ptr<Stream> stream);
  // The connection failed. Before it was up (`!established`): every request ends with `reason`
  // (or is handed back as no_h2). Once up: open streams end with `reason`, held-back ones are
  // handed back to go out elsewhere.
  void fail(std::string_view reason, std::string_view detail = {});
  void not_h2(std::string_view evidence);
  void report(const Stream& stream, std::string_view reason, std::string_view detail);
  std::int64_t latency_of(const Stream& stream) const;

  static int on_header(nghttp2_session*, const nghttp2_frame* frame, const std::uint8_t* name, std::size_t namelen,
                       const std::uint8_t* value, std::size_t valuelen, std::uint8_t flags, void* user);
  static int on_frame_recv(nghttp2_session*, const nghttp2_frame* frame, void* user);
  static int on_data_chunk_recv(nghttp2_session*, std::uint8_t flags, std::int32_t stream_id,
                                const std::uint8_t* data, std::size_t len, void* user);
  static int on_stream_close(nghttp2_session*, std::int32_t stream_id, std::uint32_t error_code, void* user);
  static int on_frame_send(nghttp2_session*, const nghttp2_frame* frame, void* user);
  static int on_frame_not_send(nghttp2_session*, const nghttp2_frame* frame, int error, void* user);
  static ssize_t read_body(nghttp2_session*, std::int32_t stream_id, std::uint8_t* buf, std::size_t length,
                           std::uint32_t* flags, nghttp2_data_source* source, void* user);

  template <class F>
  void with_stream(F&& f) {
    if (tls_) f(*tls_);
    else f(*socket_);
  }
  boost::asio::ip::tcp::socket& lowest_socket() { return tls_ ? tls_->next_layer() : *socket_; }

  HttpOutput& output_;
  boost::asio::any_io_executor executor_;
  H2StreamOwner& owner_;
  const std::size_t max_streams_;
  boost::asio::ip::tcp::resolver resolver_;
  boost::asio::steady_timer timer_;
  std::unique_ptr<boost::asio::ip::tcp::socket> socket_;
  std::unique_ptr<TlsStream> tls_;
  nghttp2_session* session_ = nullptr;
  State state_ = State::idle;
  std::atomic<bool> usable_{true};
  std::atomic<std::size_t> stream_limit_;
  bool draining_ = false;  // GOAWAY received: no new streams
  bool timed_out_ = false;
  bool timer_pending_ = false;
  bool writing_ = false;
  bool write_scheduled_ = false;
  bool delivering_ = false;
  bool told_connected_ = false;
  std::string fail_reason_, fail_detail_;  // meta.error of the streams a connection failure ends
  std::size_t received_ = 0;
  std::uint64_t answered_ = 0;  // streams that ended with a response
  bool goaway_processed_some_ = false;  // a GOAWAY said streams up to a nonzero id were processed  // bytes from the target; 0 at EOF means it closed on the preface
  std::chrono::steady_clock::time_point connect_deadline_;
  std::deque<std::unique_ptr<Stream>> held_;            // not submitted yet (connecting, or at the limit)
  std::map<std::int32_t, std::unique_ptr<Stream>> open_;  // submitted, by stream id (= submission order)
  std::vector<std::unique_ptr<Stream>> ended_;          // closed by libnghttp2, not reported yet
  std::vector<nghttp2_nv> nva_;  // reused for each request's header fields
  std::string read_buffer_;
  std::string write_buffer_;
};

}  // namespace doppel::plugins
