#include "h2_connection.hpp"

#include <boost/asio/connect.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/write.hpp>

#include <cstring>

#include "replay_connection.hpp"

namespace doppel::plugins {

namespace asio = boost::asio;
using boost::asio::ip::tcp;
using Clock = std::chrono::steady_clock;

namespace {
constexpr std::size_t kReadChunk = 64 * 1024;
// Bytes gathered from libnghttp2 into one socket write: many small frames per system call.
constexpr std::size_t kWriteBatch = 256 * 1024;
// A replay reads whole responses as fast as it can: large windows keep the target from
// waiting for WINDOW_UPDATE on big bodies.
constexpr std::int32_t kStreamWindow = (1 << 24) - 1;
constexpr std::int32_t kConnectionWindow = (1 << 30) - 1;
// Unprocessed requests (GOAWAY, REFUSED_STREAM) go out again; a request refused this many
// times by connections that answered nothing at all ends as an error (a target that refuses
// everything must not keep it circling). A connection that answered some made progress.
constexpr int kMaxAttempts = 3;

void fill_name_values(std::vector<nghttp2_nv>& nva, const std::vector<h2::Field>& fields) {
  nva.clear();
  for (const h2::Field& f : fields)
    nva.push_back({reinterpret_cast<std::uint8_t*>(const_cast<char*>(f.name.data())),
                   reinterpret_cast<std::uint8_t*>(const_cast<char*>(f.value.data())), f.name.size(), f.value.size(),
                   NGHTTP2_NV_FLAG_NONE});
}

// The first bytes an HTTP/1.x server answers the preface with ("HTTP/1.1 400 ...").
bool looks_like_http1(std::string_view data) {
  std::string_view prefix = "HTTP/";
  std::size_t n = std::min(data.size(), prefix.size());
  return n > 0 && data.substr(0, n) == prefix.substr(0, n);
}
}  // namespace

H2Connection::H2Connection(HttpOutput& output, asio::any_io_executor executor, H2StreamOwner& owner,
                           std::size_t max_streams)
    : output_(output),
      executor_(std::move(executor)),
      owner_(owner),
      max_streams_(std::max<std::size_t>(1, max_streams)),
      resolver_(executor_),
      timer_(executor_),
      stream_limit_(max_streams_) {
  nghttp2_session_callbacks* callbacks = nullptr;
  nghttp2_session_callbacks_new(&callbacks);
  nghttp2_session_callbacks_set_on_header_callback(callbacks, &H2Connection::on_header);
  nghttp2_session_callbacks_set_on_frame_recv_callback(callbacks, &H2Connection::on_frame_recv);
  nghttp2_session_callbacks_set_on_data_chunk_recv_callback(callbacks, &H2Connection::on_data_chunk_recv);
  nghttp2_session_callbacks_set_on_stream_close_callback(callbacks, &H2Connection::on_stream_close);
  nghttp2_session_callbacks_set_on_frame_send_callback(callbacks, &H2Connection::on_frame_send);
  nghttp2_session_callbacks_set_on_frame_not_send_callback(callbacks, &H2Connection::on_frame_not_send);
  nghttp2_option* option = nullptr;
  nghttp2_option_new(&option);
  // Responses are checked by h2::to_http1, with the rules (and the words) capture uses, so a
  // malformed one ends as bad_response with its reason rather than as an anonymous reset.
  nghttp2_option_set_no_http_messaging(option, 1);
  nghttp2_session_client_new2(&session_, callbacks, this, option);
  nghttp2_option_del(option);
  nghttp2_session_callbacks_del(callbacks);
  const nghttp2_settings_entry settings[] = {
      {NGHTTP2_SETTINGS_ENABLE_PUSH, 0},  // a replay has no use for pushed responses
      {NGHTTP2_SETTINGS_INITIAL_WINDOW_SIZE, static_cast<std::uint32_t>(kStreamWindow)},
  };
  nghttp2_submit_settings(session_, NGHTTP2_FLAG_NONE, settings, std::size(settings));
  nghttp2_session_set_local_window_size(session_, NGHTTP2_FLAG_NONE, 0, kConnectionWindow);
  read_buffer_.resize(kReadChunk);
}

H2Connection::~H2Connection() { nghttp2_session_del(session_); }

void H2Connection::submit(ReplayJob job) {
  if (state_ == State::closed || draining_) {
    // Handed to us while we closed or drained: it never reached the target.
    std::vector<ReplayJob> back;
    back.push_back(std::move(job));
    owner_.h2_give_back(*this, std::move(back), false);
    return;
  }
  auto stream = std::make_unique<Stream>();
  stream->job = std::move(job);
  stream->submitted = Clock::now();
  held_.push_back(std::move(stream));
  if (state_ == State::idle) return connect();
  if (state_ == State::open) {
    start_streams();
    schedule_write();
  }
}

void H2Connection::connect() {
  state_ = State::connecting;
  const HttpOutputConfig& config = output_.config();
  if (config.target.tls) {
    tls_ = make_target_stream(executor_, config.tls, config.target.host);
    // ALPN: the target says whether it speaks HTTP/2 (RFC 9113 3.2).
    static const unsigned char kAlpn[] = "\x02h2\x08http/1.1";
    SSL_set_alpn_protos(tls_->native_handle(), kAlpn, sizeof kAlpn - 1);
  } else {
    socket_ = std::make_unique<tcp::socket>(executor_);
  }
  connect_deadline_ = Clock::now() + config.connect_timeout;
  arm_timer();
  resolver_.async_resolve(
      config.target.host, std::to_string(config.target.port),
      [self = shared_from_this()](const boost::system::error_code& ec, const tcp::resolver::results_type& results) {
        if (self->state_ == State::closed) return;
        if (ec) return self->fail(connect_failure_reason(ec));
        asio::async_connect(self->lowest_socket(), results, [self](const boost::system::error_code& ec2, const tcp::endpoint&) {
          if (self->state_ == State::closed) return;
          if (ec2) return self->fail(connect_failure_reason(ec2));
          boost::system::error_code ignored;
          self->lowest_socket().set_option(tcp::no_delay(true), ignored);
          if (!self->tls_) return self->on_transport_ready();
          self->tls_->async_handshake(asio::ssl::stream_base::client, [self](const boost::system::error_code& ec3) {
            if (self->state_ == State::closed) return;
            if (ec3) {
              if (auto rejected = certificate_rejection(*self->tls_))
                return self->fail("tls_verify", "tls_verify: " + *rejected);
              return self->fail(connect_failure_reason(ec3));
            }
            self->on_transport_ready();
          });
        });
      });
}

void H2Connection::on_transport_ready() {
  if (tls_) {
    const unsigned char* alpn = nullptr;
    unsigned int alpn_size = 0;
    SSL_get0_alpn_selected(tls_->native_handle(), &alpn, &alpn_size);
    std::string_view chosen(reinterpret_cast<const char*>(alpn), alpn_size);
    if (chosen != "h2") {
      return not_h2(chosen.empty() ? "chose no protocol in ALPN (TLS)" : "chose " + std::string(chosen) + " in ALPN");
    }
    // ALPN settled it: requests may follow the preface without waiting for the SETTINGS.
    state_ = State::open;
    deliver();  // tells the owner, starts the held requests
    if (state_ != State::open) return;
  } else {
    // h2c with prior knowledge: only the target's SETTINGS shows that it speaks HTTP/2, and an
    // HTTP/1.1 server must not receive requests in a protocol it cannot read.
    state_ = State::preface;
  }
  read();
  schedule_write();
}

void H2Connection::read() {
  with_stream([&](auto& stream) {
    stream.async_read_some(asio::buffer(read_buffer_.data(), read_buffer_.size()),
                           [self = shared_from_this()](const boost::system::error_code& ec, std::size_t n) {
                             self->on_read(ec, n);
                           });
  });
}

void H2Connection::on_read(const boost::system::error_code& ec, std::size_t n) {
  if (state_ == State::closed) return;
  if (ec) {
    if (state_ == State::preface && received_ == 0 && is_peer_gone(ec))
      return not_h2("closed the connection on the HTTP/2 preface");
    return fail("reset", "reset: connection lost (" + ec.message() + ")");
  }
  std::string_view data(read_buffer_.data(), n);
  if (state_ == State::preface && received_ == 0 && looks_like_http1(data))
    return not_h2("answered the HTTP/2 preface as an HTTP/1.x server");
  received_ += n;
  ssize_t used = nghttp2_session_mem_recv(session_, reinterpret_cast<const std::uint8_t*>(data.data()), n);
  if (used < 0) {
    if (state_ == State::preface) return not_h2("answered the HTTP/2 preface with something other than SETTINGS");
    return fail("bad_response", std::string("bad_response: ") + nghttp2_strerror(static_cast<int>(used)));
  }
  deliver();
  if (state_ == State::closed) return;
  schedule_write();
  read();
}

void H2Connection::start_streams() {
  while (!held_.empty() && !draining_ && state_ == State::open && open_.size() < stream_limit_) {
    auto stream = std::move(held_.front());
    held_.pop_front();
    submit_stream(std::move(stream));
  }
  arm_timer();
}

void H2Connection::submit_stream(std::unique_ptr<Stream> stream) {
  const h2::StreamMessage& request = *stream->job.h2;
  fill_name_values(nva_, request.headers);  // libnghttp2 copies them
  nghttp2_data_provider provider{};
  provider.source.ptr = stream.get();
  provider.read_callback = &H2Connection::read_body;
  const bool has_data = !request.body.empty() || !request.trailers.empty();
  std::int32_t id = nghttp2_submit_request(session_, nullptr, nva_.data(), nva_.size(), has_data ? &provider : nullptr,
                                           stream.get());
  if (id < 0) {
    if (id == NGHTTP2_ERR_STREAM_ID_NOT_AVAILABLE) {
      // Stream ids used up (2^31 requests): this connection is done, the request goes elsewhere.
      draining_ = true;
      usable_ = false;
      stream->not_sent = true;
      stream->close_code = NGHTTP2_REFUSED_STREAM;
    } else {
      stream->reason = "bad_request";
    }
    ended_.push_back(std::move(stream));
    return;
  }
  stream->id = id;
  stream->submitted = Clock::now();
  open_.emplace(id, std::move(stream));
}

ssize_t H2Connection::read_body(nghttp2_session* session, std::int32_t stream_id, std::uint8_t* buf,
                                std::size_t length, std::uint32_t* flags, nghttp2_data_source* source, void*) {
  auto* stream = static_cast<Stream*>(source->ptr);
  const h2::StreamMessage& request = *stream->job.h2;
  std::size_t n = std::min(length, request.body.size() - stream->body_offset);
  if (n > 0) std::memcpy(buf, request.body.data() + stream->body_offset, n);
  stream->body_offset += n;
  if (stream->body_offset == request.body.size()) {
    *flags |= NGHTTP2_DATA_FLAG_EOF;
    if (!request.trailers.empty()) {
      // The trailers' HEADERS frame ends the stream instead of the last DATA.
      *flags |= NGHTTP2_DATA_FLAG_NO_END_STREAM;
      std::vector<nghttp2_nv> nva;
      fill_name_values(nva, request.trailers);
      if (nghttp2_submit_trailer(session, stream_id, nva.data(), nva.size()) != 0)
        return NGHTTP2_ERR_TEMPORAL_CALLBACK_FAILURE;  // resets the stream
    }
  }
  return static_cast<ssize_t>(n);
}

int H2Connection::on_header(nghttp2_session* session, const nghttp2_frame* frame, const std::uint8_t* name,
                            std::size_t namelen, const std::uint8_t* value, std::size_t valuelen, std::uint8_t,
                            void* user) {
  auto* self = static_cast<H2Connection*>(user);
  if (frame->hd.type != NGHTTP2_HEADERS) return 0;
  auto it = self->open_.find(frame->hd.stream_id);
  if (it == self->open_.end()) return 0;
  Stream& stream = *it->second;
  if (!stream.reason.empty()) return 0;
  stream.size += namelen + valuelen + 4;
  if (stream.size > self->output_.config().max_response_size) {
    stream.reason = "response_too_large";
    nghttp2_submit_rst_stream(session, NGHTTP2_FLAG_NONE, frame->hd.stream_id, NGHTTP2_CANCEL);
    return 0;
  }
  // Untracked responses are not converted: only :status is kept, to tell 1xx from the final one.
  if (!self->output_.config().track_response &&
      (stream.final_headers || std::string_view(reinterpret_cast<const char*>(name), namelen) != ":status"))
    return 0;
  auto& fields = stream.final_headers ? stream.response.trailers : stream.response.headers;
  fields.push_back({std::string(reinterpret_cast<const char*>(name), namelen),
                    std::string(reinterpret_cast<const char*>(value), valuelen)});
  return 0;
}

int H2Connection::on_frame_recv(nghttp2_session* session, const nghttp2_frame* frame, void* user) {
  auto* self = static_cast<H2Connection*>(user);
  switch (frame->hd.type) {
    case NGHTTP2_SETTINGS: {
      if (frame->hd.flags & NGHTTP2_FLAG_ACK) return 0;
      auto peer = nghttp2_session_get_remote_settings(session, NGHTTP2_SETTINGS_MAX_CONCURRENT_STREAMS);
      self->stream_limit_ = std::max<std::size_t>(1, std::min<std::size_t>(self->max_streams_, peer));
      if (self->state_ == State::preface) self->state_ = State::open;  // deliver() tells the owner
      return 0;
    }
    case NGHTTP2_GOAWAY:
      // Streams above last_stream_id were not processed; libnghttp2 closes them with
      // REFUSED_STREAM and deliver() hands them back to go out on another connection.
      self->draining_ = true;
      self->usable_ = false;
      if (frame->goaway.last_stream_id > 0) self->goaway_processed_some_ = true;
      return 0;
    case NGHTTP2_HEADERS:
    case NGHTTP2_DATA: {
      auto it = self->open_.find(frame->hd.stream_id);
      if (it == self->open_.end()) return 0;
      Stream& stream = *it->second;
      if (frame->hd.type == NGHTTP2_HEADERS && !stream.final_headers) {
        auto& fields = stream.response.headers;
        // An interim 1xx response is dropped, as HTTP/1.1 replay drops it; the final one follows.
        if (!fields.empty() && fields.front().name == ":status" && fields.front().value.starts_with('1'))
          fields.clear();
        else
          stream.final_headers = true;
      }
      if (frame->hd.flags & NGHTTP2_FLAG_END_STREAM) stream.ended = true;
      return 0;
    }
    default:
      return 0;
  }
}

int H2Connection::on_data_chunk_recv(nghttp2_session* session, std::uint8_t, std::int32_t stream_id,
                                     const std::uint8_t* data, std::size_t len, void* user) {
  auto* self = static_cast<H2Connection*>(user);
  auto it = self->open_.find(stream_id);
  if (it == self->open_.end()) return 0;
  Stream& stream = *it->second;
  if (!stream.reason.empty()) return 0;
  stream.size += len;
  if (stream.size > self->output_.config().max_response_size) {
    stream.reason = "response_too_large";
    nghttp2_submit_rst_stream(session, NGHTTP2_FLAG_NONE, stream_id, NGHTTP2_CANCEL);
    return 0;
  }
  // Untracked responses are only counted: nobody will read their bytes.
  if (self->output_.config().track_response) stream.response.body.append(reinterpret_cast<const char*>(data), len);
  return 0;
}

int H2Connection::on_stream_close(nghttp2_session*, std::int32_t stream_id, std::uint32_t error_code, void* user) {
  auto* self = static_cast<H2Connection*>(user);
  auto it = self->open_.find(stream_id);
  if (it == self->open_.end()) return 0;
  it->second->close_code = error_code;
  self->ended_.push_back(std::move(it->second));
  self->open_.erase(it);
  return 0;
}

int H2Connection::on_frame_send(nghttp2_session*, const nghttp2_frame* frame, void* user) {
  auto* self = static_cast<H2Connection*>(user);
  if (frame->hd.type != NGHTTP2_HEADERS || frame->headers.cat != NGHTTP2_HCAT_REQUEST) return 0;
  auto it = self->open_.find(frame->hd.stream_id);
  if (it == self->open_.end()) return 0;
  it->second->sent = true;
  it->second->sent_at = Clock::now();
  return 0;
}

int H2Connection::on_frame_not_send(nghttp2_session*, const nghttp2_frame* frame, int, void* user) {
  auto* self = static_cast<H2Connection*>(user);
  if (frame->hd.type != NGHTTP2_HEADERS || frame->headers.cat != NGHTTP2_HCAT_REQUEST) return 0;
  auto it = self->open_.find(frame->hd.stream_id);
  if (it == self->open_.end()) return 0;
  // Not sent (a GOAWAY came first): the target never saw it, so it may go out elsewhere.
  it->second->not_sent = true;
  it->second->close_code = NGHTTP2_REFUSED_STREAM;
  self->ended_.push_back(std::move(it->second));
  self->open_.erase(it);
  return 0;
}

void H2Connection::schedule_write() {
  if (write_scheduled_ || writing_ || state_ == State::closed || state_ == State::connecting ||
      state_ == State::idle)
    return;
  // Deferred so that the requests handed over in one go leave in one write.
  write_scheduled_ = true;
  asio::post(executor_, [self = shared_from_this()] {
    self->write_scheduled_ = false;
    self->write();
  });
}

void H2Connection::write() {
  if (writing_ || state_ == State::closed) return;
  write_buffer_.clear();
  while (write_buffer_.size() < kWriteBatch) {
    const std::uint8_t* data = nullptr;
    ssize_t n = nghttp2_session_mem_send(session_, &data);
    if (n < 0) return fail("reset", std::string("reset: ") + nghttp2_strerror(static_cast<int>(n)));
    if (n == 0) break;
    write_buffer_.append(reinterpret_cast<const char*>(data), static_cast<std::size_t>(n));
  }
  // Sending may end streams (a timed-out stream's RST_STREAM, a body that failed).
  deliver();
  if (state_ == State::closed || write_buffer_.empty()) return;
  writing_ = true;
  with_stream([&](auto& stream) {
    asio::async_write(stream, asio::buffer(write_buffer_),
                      [self = shared_from_this()](const boost::system::error_code& ec, std::size_t) {
                        self->writing_ = false;
                        if (self->state_ == State::closed) return;
                        if (ec) return self->fail("reset", "reset: connection lost (" + ec.message() + ")");
                        self->write();
                      });
  });
}

void H2Connection::arm_timer() {
  std::optional<Clock::time_point> next;
  if (state_ == State::connecting || state_ == State::preface) {
    next = connect_deadline_;
  } else if (state_ == State::open) {
    for (auto& [id, stream] : open_) {
      if (!stream->reason.empty()) continue;
      next = stream->submitted + output_.config().timeout;
      break;  // stream ids follow submission order: the first is the oldest
    }
  }
  if (!next) return;
  if (timer_pending_) {
    if (*next < timer_.expiry()) timer_.cancel();  // the handler re-arms for the earlier deadline
    return;
  }
  timer_pending_ = true;
  timer_.expires_at(*next);
  timer_.async_wait([self = shared_from_this()](const boost::system::error_code&) {
    self->timer_pending_ = false;
    self->on_timer();
  });
}

void H2Connection::on_timer() {
  if (state_ == State::closed) return;
  auto now = Clock::now();
  if (state_ == State::connecting || state_ == State::preface) {
    if (now < connect_deadline_) return arm_timer();
    timed_out_ = true;
    return fail("timeout", state_ == State::preface ? "timeout: no HTTP/2 SETTINGS within connect_timeout"
                                                    : "timeout: no connection within connect_timeout");
  }
  for (auto& [id, stream] : open_) {
    if (!stream->reason.empty()) continue;
    if (now < stream->submitted + output_.config().timeout) break;
    stream->reason = "timeout";
    // The target may still answer; the stream is cancelled so the connection serves the others.
    nghttp2_submit_rst_stream(session_, NGHTTP2_FLAG_NONE, id, NGHTTP2_CANCEL);
  }
  schedule_write();
  arm_timer();
}

std::int64_t H2Connection::latency_of(const Stream& stream) const {
  if (!stream.sent) return 0;
  return std::chrono::duration_cast<std::chrono::nanoseconds>(Clock::now() - stream.sent_at).count();
}

void H2Connection::report(const Stream& stream, std::string_view reason, std::string_view detail) {
  output_.report_error(stream.job, reason, latency_of(stream), detail, static_cast<std::uint32_t>(stream.id));
}

void H2Connection::finish_stream(std::unique_ptr<Stream> stream) {
  const auto id = static_cast<std::uint32_t>(stream->id);
  if (stream->reason.empty() && stream->close_code == NGHTTP2_NO_ERROR && stream->ended) ++answered_;
  if (!stream->reason.empty()) {
    // A connection failure's own words ("reset: connection lost (...)") go with its streams.
    report(*stream, stream->reason, state_ == State::closed && stream->reason == fail_reason_ ? std::string_view(fail_detail_) : std::string_view{});
  } else if (stream->close_code != NGHTTP2_NO_ERROR || !stream->ended) {
    report(*stream, "stream_reset", std::string("reset: ") + nghttp2_http2_strerror(stream->close_code));
  } else if (!output_.config().track_response) {
    output_.report_response(stream->job, std::string(), latency_of(*stream), id);
  } else {
    std::string error;
    auto http1 = h2::to_http1(stream->response, error, stream->job.outgoing.head);
    if (!http1) report(*stream, "bad_response", "bad_response: " + error);
    else output_.report_response(stream->job, std::move(*http1), latency_of(*stream), id);
  }
}

void H2Connection::settle(std::vector<ReplayJob>& back) {
  std::vector<std::shared_ptr<ReplaySession>> done;
  while (!ended_.empty()) {
    auto batch = std::move(ended_);
    ended_.clear();
    done.clear();
    for (auto& stream : batch) {
      bool unprocessed = stream->reason.empty() && stream->close_code == NGHTTP2_REFUSED_STREAM &&
                         (stream->not_sent || stream->response.headers.empty());
      if (unprocessed && stream->job.h2_attempts + 1 < kMaxAttempts && !output_.stopping()) {
        // GOAWAY may arrive before the DATA of the streams it names as processed.
        if (answered_ == 0 && !goaway_processed_some_) ++stream->job.h2_attempts;
        back.push_back(std::move(stream->job));
      } else {
        done.push_back(stream->job.session);
        finish_stream(std::move(stream));
      }
    }
    // One call per batch: the pool takes its lock once for all the streams a read ended. The
    // owner may submit its next requests at once: ended_ may grow.
    if (!done.empty()) owner_.h2_streams_done(*this, done);
  }
}

void H2Connection::deliver() {
  if (delivering_) return;  // an owner callback led back here: the outer loop goes on
  delivering_ = true;
  if (state_ == State::open && !told_connected_) {
    told_connected_ = true;
    owner_.h2_connected(*this);
  }
  for (;;) {
    std::vector<ReplayJob> back;
    settle(back);
    if (draining_)
      for (auto& stream : held_) back.push_back(std::move(stream->job));
    if (draining_) held_.clear();
    if (back.empty()) break;
    owner_.h2_give_back(*this, std::move(back), false);
  }
  delivering_ = false;
  if (state_ == State::closed) return;
  start_streams();
  bool over = nghttp2_session_want_read(session_) == 0 && nghttp2_session_want_write(session_) == 0;
  if ((draining_ && open_.empty() && held_.empty()) || over) fail("reset", "reset: connection closed");
}

void H2Connection::not_h2(std::string_view evidence) {
  std::string what = "the target " + std::string(evidence);
  if (output_.config().protocol == ReplayProtocol::h2) return fail("no_h2", "no_h2: " + what);
  output_.target_speaks_h1_only(what);
  state_ = State::closed;
  usable_ = false;
  boost::system::error_code ignored;
  timer_.cancel();
  resolver_.cancel();
  lowest_socket().close(ignored);
  std::vector<ReplayJob> back;
  for (auto& stream : held_) back.push_back(std::move(stream->job));
  for (auto& [id, stream] : open_) back.push_back(std::move(stream->job));
  held_.clear();
  open_.clear();
  if (!back.empty()) owner_.h2_give_back(*this, std::move(back), true);
  owner_.h2_closed(*this);
}

void H2Connection::close() { fail("reset", "reset: connection closed"); }

void H2Connection::abort() { fail("shutdown"); }

void H2Connection::fail(std::string_view reason, std::string_view detail) {
  if (state_ == State::closed) return;
  const bool established = state_ == State::open;
  state_ = State::closed;
  usable_ = false;
  boost::system::error_code ignored;
  timer_.cancel();
  resolver_.cancel();
  if (socket_ || tls_) lowest_socket().close(ignored);
  const bool shutdown = output_.stopping() && !timed_out_;
  const std::string why = shutdown ? "shutdown" : std::string(reason);
  std::vector<ReplayJob> back;
  // Whatever never reached the target goes out again elsewhere once the connection was up;
  // before that, the next connection would most likely fail the same way.
  // A connection that answered nothing counts as an attempt, so a target that takes connections
  // and drops them cannot keep requests circling.
  auto unsent = [&](Stream& stream) {
    if (!established || shutdown || stream.sent || !stream.reason.empty()) return false;
    if (answered_ == 0 && ++stream.job.h2_attempts >= kMaxAttempts) return false;
    return true;
  };
  for (auto& [id, stream] : open_) {
    if (unsent(*stream)) {
      back.push_back(std::move(stream->job));
      continue;
    }
    if (stream->reason.empty()) stream->reason = why;
    ended_.push_back(std::move(stream));
  }
  open_.clear();
  for (auto& stream : held_) {
    if (unsent(*stream)) {
      back.push_back(std::move(stream->job));
      continue;
    }
    stream->reason = why;
    ended_.push_back(std::move(stream));
  }
  held_.clear();
  fail_reason_ = why;
  fail_detail_ = detail;
  settle(back);  // streams that ended before the failure are reported as they ended
  if (!back.empty()) owner_.h2_give_back(*this, std::move(back), false);
  owner_.h2_closed(*this);
}

}  // namespace doppel::plugins
