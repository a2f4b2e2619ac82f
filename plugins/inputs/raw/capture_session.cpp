#include "capture_session.hpp"

#include <algorithm>
#include <deque>

#include "doppel/http.hpp"
#include "doppel/message_pool.hpp"
#include "http_stream_parser.hpp"

namespace doppel::plugins::raw {

std::string_view drop_reason_name(DropReason reason) {
  switch (reason) {
    case DropReason::truncated: return "truncated";
    case DropReason::gap: return "gap";
    case DropReason::parse_error: return "parse_error";
    case DropReason::too_large: return "too_large";
    case DropReason::expired: return "expired";
    case DropReason::unfinished: return "unfinished";
    case DropReason::unmatched_response: return "unmatched_response";
    case DropReason::flow_table_full: return "flow_table_full";
  }
  return "unknown";
}

CaptureStats& CaptureStats::operator+=(const CaptureStats& o) {
  packets += o.packets;
  bytes += o.bytes;
  packets_not_tcp += o.packets_not_tcp;
  packets_fragment += o.packets_fragment;
  packets_truncated += o.packets_truncated;
  packets_malformed += o.packets_malformed;
  requests += o.requests;
  responses += o.responses;
  interim_responses += o.interim_responses;
  upgrades += o.upgrades;
  responses_missing += o.responses_missing;
  incomplete_emitted += o.incomplete_emitted;
  for (std::size_t i = 0; i < kDropReasonCount; ++i) dropped[i] += o.dropped[i];
  reassembly += o.reassembly;
  return *this;
}

namespace {

DropReason reason_from_text(std::string_view text) {
  if (text == "truncated") return DropReason::truncated;
  if (text == "gap") return DropReason::gap;
  if (text == "parse_error") return DropReason::parse_error;
  if (text == "expired") return DropReason::expired;
  return DropReason::unfinished;
}

// A request on its connection, from its first byte until both it and its response are done.
struct PendingRequest {
  std::string id;
  std::uint8_t method = 0;
  std::int64_t first_byte_ns = 0;
  std::int64_t last_byte_ns = 0;
  bool complete = false;
  bool answered = false;
  bool dropped = false;
  DropReason drop_reason = DropReason::unfinished;
};

}  // namespace

class CaptureSession::Impl : public StreamConsumer {
 public:
  Impl(CaptureConfig config, EmitShared emit, std::shared_ptr<ReassemblyBudget> budget)
      : config_(std::move(config)), emit_(std::move(emit)), reassembler_(config_.limits, *this, std::move(budget)) {}

  void on_open(TcpConnection& connection) override;
  void on_data(TcpConnection& connection, int direction, std::string_view bytes, std::int64_t ts) override;
  void on_hole(TcpConnection& connection, int direction, std::uint64_t length, HoleReason reason,
               std::int64_t ts) override;
  void on_end(TcpConnection& connection, int direction, std::int64_t ts) override;
  void on_close(TcpConnection& connection, CloseReason reason, std::int64_t ts) override;

  void drop(DropReason reason) { ++stats_.dropped[static_cast<std::size_t>(reason)]; }

  CaptureConfig config_;
  EmitShared emit_;
  CaptureStats stats_;
  MessagePool pool_;  // before the reassembler: it outlives the connections that build messages
  TcpReassembler reassembler_;
};

namespace {

// The HTTP side of one TCP connection: which endpoint is the client, a parser per direction,
// and the requests waiting for their responses.
class HttpConnection : public ConnectionState, public HttpMessageListener {
 public:
  HttpConnection(CaptureSession::Impl& session, TcpConnection& tcp) : session_(session), tcp_(tcp) {
    int client = tcp.client;
    if (client < 0 && !session.config_.server_ports.empty()) {
      auto& ports = session.config_.server_ports;
      if (std::find(ports.begin(), ports.end(), tcp.port[1]) != ports.end()) client = 0;
      else if (std::find(ports.begin(), ports.end(), tcp.port[0]) != ports.end()) client = 1;
    }
    if (client >= 0) assign_roles(client, tcp.client >= 0);
  }

  void data(int direction, std::string_view bytes, std::int64_t ts) {
    if (client_ < 0) {
      // Which side speaks first is not enough (pipelined captures start anywhere): look for a
      // status line or a request line.
      using Side = HttpStreamParser::Side;
      if (find_message_start(Side::response, bytes) != std::string_view::npos) assign_roles(1 - direction, false);
      else if (find_message_start(Side::request, bytes) != std::string_view::npos) assign_roles(direction, false);
      else return;
    }
    parser_for(direction).feed(bytes, ts);
  }

  void hole(int direction, std::uint64_t length, HoleReason reason, std::int64_t ts) {
    if (client_ < 0) return;
    parser_for(direction).hole(length, reason == HoleReason::truncated ? "truncated" : "gap", ts);
  }

  void end(int direction, std::int64_t ts) {
    if (client_ < 0) return;
    parser_for(direction).end(ts, "unfinished");
  }

  void close(CloseReason reason, std::int64_t ts) {
    if (client_ < 0) return;
    std::string_view cut = reason == CloseReason::expired ? "expired" : "unfinished";
    requests_->end(ts, cut);
    responses_->end(ts, cut);
    if (session_.config_.track_response)
      for (auto& p : pending_)
        if (!p.answered && !p.dropped) ++session_.stats_.responses_missing;
  }

  // HttpMessageListener
  void on_message_begin(HttpStreamParser& parser, std::int64_t ts) override {
    if (parser.side() != HttpStreamParser::Side::request) return;
    if (!in_response_ && pending_.size() >= session_.config_.max_pending_requests) {
      if (session_.config_.track_response && !pending_.front().answered) ++session_.stats_.responses_missing;
      pending_.pop_front();
      ++front_number_;
    }
    PendingRequest p;
    p.id = new_message_id();
    p.first_byte_ns = ts;
    pending_.push_back(std::move(p));
    current_number_ = front_number_ + pending_.size() - 1;
  }

  int on_headers(HttpStreamParser& parser, int status, std::uint8_t method) override {
    if (parser.side() == HttpStreamParser::Side::request) {
      if (PendingRequest* p = current_request()) p->method = method;
      return 0;
    }
    if (status / 100 == 1) return 0;
    PendingRequest* p = first_unanswered();
    if (p == nullptr) return 0;
    if (p->method == HTTP_HEAD) return 1;
    if (p->method == HTTP_CONNECT && status / 100 == 2) return 2;
    return 0;
  }

  void on_message(HttpStreamParser& parser, ParsedMessage&& message) override {
    if (parser.side() == HttpStreamParser::Side::request) on_request(std::move(message));
    else on_response(std::move(message));
    if (!in_response_) release_finished();
  }

  void on_unreported_skip(HttpStreamParser& parser, std::uint64_t) override {
    if (parser.side() != HttpStreamParser::Side::request) return;
    // Bytes of a request we never saw whole: its response is coming and must not be taken
    // for the answer to the next request.
    PendingRequest p;
    p.complete = true;
    p.dropped = true;
    p.drop_reason = DropReason::unmatched_response;
    pending_.push_back(std::move(p));
  }

  void on_upgrade(HttpStreamParser& parser) override {
    // A request asked to switch: the request parser holds its bytes until the answer.
    // A response switched: handled in on_response, which saw the status.
    if (session_.config_.responses_seen || parser.side() != HttpStreamParser::Side::request) return;
    // No answer will be seen: take the switch as made (what servers mostly answer); holding
    // the connection's bytes for an answer would only cost memory.
    ++session_.stats_.upgrades;
    requests_->stop();
    responses_->stop();
  }

 private:
  void assign_roles(int client, bool in_sync) {
    client_ = client;
    bool keep_responses = session_.config_.track_response;
    std::size_t max = session_.config_.max_message_size;
    requests_ = std::make_unique<HttpStreamParser>(HttpStreamParser::Side::request, *this, in_sync, true, max);
    responses_ =
        std::make_unique<HttpStreamParser>(HttpStreamParser::Side::response, *this, in_sync, keep_responses, max);
    client_endpoint_ = {tcp_.address[client].to_string(), tcp_.port[client]};
    server_endpoint_ = {tcp_.address[1 - client].to_string(), tcp_.port[1 - client]};
  }

  // Forgets requests done with (complete and answered), and the oldest beyond the bound.
  void release_finished() {
    while (!pending_.empty() && pending_.front().complete && pending_.front().answered) {
      pending_.pop_front();
      ++front_number_;
    }
    while (pending_.size() > session_.config_.max_pending_requests) {
      if (session_.config_.track_response && !pending_.front().answered) ++session_.stats_.responses_missing;
      pending_.pop_front();
      ++front_number_;
    }
  }

  HttpStreamParser& parser_for(int direction) { return direction == client_ ? *requests_ : *responses_; }

  PendingRequest* current_request() {
    if (current_number_ < front_number_ || current_number_ - front_number_ >= pending_.size()) return nullptr;
    return &pending_[current_number_ - front_number_];
  }
  PendingRequest* first_unanswered() {
    for (auto& p : pending_)
      if (!p.answered) return &p;
    return nullptr;
  }

  // Why a message cannot be emitted as it is, or nullopt when it can.
  std::optional<DropReason> refusal(const ParsedMessage& m) const {
    if (m.too_large) return DropReason::too_large;
    if (m.incomplete_reason.empty()) return std::nullopt;
    DropReason reason = reason_from_text(m.incomplete_reason);
    if (reason == DropReason::parse_error || !session_.config_.allow_incomplete) return reason;
    return std::nullopt;
  }

  std::shared_ptr<Message> make_message(Kind kind, std::string_view id, ParsedMessage& m) {
    auto out = session_.pool_.take();  // its strings are empty, and may have room
    out->kind = kind;
    out->id.append(id);  // append, not assign: no check for overlap, only a copy into the room
    out->timestamp_ns = m.first_byte_ns;
    // Into the room the recycled message has; a larger gathered payload is taken over instead.
    if (m.in_place.data() == nullptr && m.bytes.size() > out->payload.capacity()) out->payload.swap(m.bytes);
    else out->payload.append(m.wire());
    bool request = kind == Kind::request;
    out->meta.source = request ? client_endpoint_ : server_endpoint_;
    out->meta.destination = request ? server_endpoint_ : client_endpoint_;
    out->meta.connection_id = tcp_.id;
    out->meta.incomplete = !m.incomplete_reason.empty();
    if (out->meta.incomplete) ++session_.stats_.incomplete_emitted;
    return out;
  }

  void on_request(ParsedMessage&& m) {
    PendingRequest* p = current_request();
    current_number_ = ~std::uint64_t{0};
    if (auto reason = refusal(m)) {
      session_.drop(*reason);
      if (p != nullptr) {
        p->complete = true;
        p->dropped = true;  // its response, if one comes, goes with it
        p->drop_reason = *reason;
      }
      return;
    }
    std::string fresh_id;  // a request whose start was never reported has no pending entry
    if (p == nullptr) fresh_id = new_message_id();
    std::string_view id = p == nullptr ? std::string_view(fresh_id) : std::string_view(p->id);
    if (p != nullptr) {
      p->complete = true;
      p->last_byte_ns = m.last_byte_ns;
      if (!session_.config_.responses_seen) p->answered = true;  // nothing to wait for
    }
    auto out = make_message(Kind::request, id, m);
    if (!session_.config_.realip_header.empty())
      out->payload = http_set_header(out->payload, session_.config_.realip_header, client_endpoint_.address);
    ++session_.stats_.requests;
    session_.emit_(std::move(out));
  }

  void on_response(ParsedMessage&& m) {
    bool interim = m.status / 100 == 1 && m.status != 101;
    if (interim && m.incomplete_reason.empty() && !m.too_large) {
      ++session_.stats_.interim_responses;  // 100 Continue & co: the final response follows
      return;
    }
    PendingRequest* p = first_unanswered();
    // Mid-stream, a response may belong to a request sent before the capture saw anything.
    if (p == nullptr || m.first_byte_ns < p->first_byte_ns) {
      session_.drop(DropReason::unmatched_response);
      return;
    }
    p->answered = true;
    // Stopping or resuming the request parser below re-enters on_message: `p` must not be
    // released under us (it was, a use-after-free made visible once the id is moved out).
    struct Release {
      HttpConnection& c;
      bool outer;
      ~Release() {
        c.in_response_ = !outer;
        if (outer) c.release_finished();
      }
    } release{*this, !in_response_};
    in_response_ = true;
    bool switched = m.status == 101 || (p->method == HTTP_CONNECT && m.status / 100 == 2);
    if (switched && m.incomplete_reason.empty()) {
      ++session_.stats_.upgrades;
      requests_->stop();
      responses_->stop();
    } else if (requests_->state() == HttpStreamParser::State::upgraded) {
      requests_->resume_after_refused_upgrade(m.last_byte_ns);
    }
    if (p->dropped) {
      session_.drop(p->drop_reason);
      return;
    }
    if (!session_.config_.track_response) return;
    if (auto reason = refusal(m)) {
      session_.drop(*reason);
      return;
    }
    auto out = make_message(Kind::response, p->id, m);
    out->latency_ns = p->complete ? std::max<std::int64_t>(0, m.first_byte_ns - p->last_byte_ns) : 0;
    ++session_.stats_.responses;
    session_.emit_(std::move(out));
  }

  CaptureSession::Impl& session_;
  TcpConnection& tcp_;
  int client_ = -1;
  std::unique_ptr<HttpStreamParser> requests_, responses_;
  std::deque<PendingRequest> pending_;
  std::uint64_t front_number_ = 0;  // number of pending_.front() in the connection's requests
  std::uint64_t current_number_ = ~std::uint64_t{0};  // the request being parsed
  bool in_response_ = false;  // on_response runs: requests stay where they are
  Endpoint client_endpoint_, server_endpoint_;
};

HttpConnection& http_of(TcpConnection& c) { return static_cast<HttpConnection&>(*c.state); }

}  // namespace

void CaptureSession::Impl::on_open(TcpConnection& connection) {
  connection.state = std::make_unique<HttpConnection>(*this, connection);
}
void CaptureSession::Impl::on_data(TcpConnection& connection, int direction, std::string_view bytes,
                                   std::int64_t ts) {
  http_of(connection).data(direction, bytes, ts);
}
void CaptureSession::Impl::on_hole(TcpConnection& connection, int direction, std::uint64_t length,
                                   HoleReason reason, std::int64_t ts) {
  http_of(connection).hole(direction, length, reason, ts);
}
void CaptureSession::Impl::on_end(TcpConnection& connection, int direction, std::int64_t ts) {
  http_of(connection).end(direction, ts);
}
void CaptureSession::Impl::on_close(TcpConnection& connection, CloseReason reason, std::int64_t ts) {
  http_of(connection).close(reason, ts);
}

CaptureSession::CaptureSession(CaptureConfig config, Emit emit)
    : impl_(std::make_unique<Impl>(std::move(config), [emit = std::move(emit)](std::shared_ptr<Message>&& m) {
        emit(std::move(*m));
      }, nullptr)) {}

CaptureSession::CaptureSession(CaptureConfig config, EmitShared emit, std::shared_ptr<ReassemblyBudget> budget)
    : impl_(std::make_unique<Impl>(std::move(config), std::move(emit), std::move(budget))) {}

CaptureSession::~CaptureSession() = default;

void CaptureSession::add_frame(int link_type, const std::uint8_t* data, std::size_t caplen, std::size_t wirelen,
                               std::int64_t ts) {
  TcpSegment segment;
  add_decoded(decode_packet(link_type, data, caplen, wirelen, segment), segment, wirelen, ts);
}

void CaptureSession::add_decoded(DecodeStatus status, const TcpSegment& segment, std::size_t wirelen,
                                 std::int64_t ts) {
  CaptureStats& s = impl_->stats_;
  ++s.packets;
  s.bytes += wirelen;
  switch (status) {
    case DecodeStatus::tcp: add_segment(segment, ts); return;
    case DecodeStatus::not_tcp: ++s.packets_not_tcp; return;
    case DecodeStatus::fragment: ++s.packets_fragment; return;
    case DecodeStatus::truncated: ++s.packets_truncated; return;
    case DecodeStatus::malformed:
    case DecodeStatus::unsupported_link: ++s.packets_malformed; return;
  }
}

void CaptureSession::add_segment(const TcpSegment& segment, std::int64_t ts) {
  std::uint64_t refused = impl_->reassembler_.stats().connections_refused;
  impl_->reassembler_.add(segment, ts);
  if (impl_->reassembler_.stats().connections_refused != refused) impl_->drop(DropReason::flow_table_full);
}

void CaptureSession::advance(std::int64_t now_ns) { impl_->reassembler_.advance(now_ns); }

void CaptureSession::finish(std::int64_t now_ns) { impl_->reassembler_.close_all(now_ns); }

CaptureStats CaptureSession::stats() const {
  CaptureStats s = impl_->stats_;
  s.reassembly = impl_->reassembler_.stats();
  return s;
}

std::size_t CaptureSession::connections() const { return impl_->reassembler_.connections(); }

}  // namespace doppel::plugins::raw
