#include "capture_session.hpp"

#include <algorithm>
#include <array>
#include <cstdlib>
#include <deque>
#include <map>
#include <optional>
#include <unordered_set>
#include <utility>

#include "doppel/http.hpp"
#include "doppel/http2.hpp"
#include "doppel/message_pool.hpp"
#include "http2_frame_parser.hpp"
#include "http_stream_parser.hpp"
#include "tls_key_source.hpp"

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
    case DropReason::ambiguous_response: return "ambiguous_response";
    case DropReason::ambiguous_framing: return "ambiguous_framing";
    case DropReason::budget_exceeded: return "budget_exceeded";
    case DropReason::stream_reset: return "stream_reset";
    case DropReason::malformed: return "malformed";
    case DropReason::pushed: return "pushed";
    case DropReason::decode_error: return "decode_error";
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
  early_responses += o.early_responses;
  incomplete_emitted += o.incomplete_emitted;
  for (std::size_t i = 0; i < kDropReasonCount; ++i) dropped[i] += o.dropped[i];
  h2 += o.h2;
  tls += o.tls;
  reassembly += o.reassembly;
  tables += o.tables;
  return *this;
}

CaptureTables& CaptureTables::operator+=(const CaptureTables& o) {
  connections += o.connections;
  pending_requests += o.pending_requests;
  h2_streams += o.h2_streams;
  tls_awaiting_keys += o.tls_awaiting_keys;
  return *this;
}

TlsStats& TlsStats::operator+=(const TlsStats& o) {
  connections += o.connections;
  decrypted += o.decrypted;
  resumed += o.resumed;
  midstream += o.midstream;
  for (std::size_t i = 0; i < kTlsFailureCount; ++i) failed[i] += o.failed[i];
  for (const auto& [name, count] : o.unsupported_ciphers) unsupported_ciphers[name] += count;
  return *this;
}

Http2Stats& Http2Stats::operator+=(const Http2Stats& o) {
  connections += o.connections;
  midstream += o.midstream;
  streams += o.streams;
  resets += o.resets;
  goaways += o.goaways;
  gaps += o.gaps;
  frame_errors += o.frame_errors;
  hpack_errors += o.hpack_errors;
  streams_abandoned += o.streams_abandoned;
  return *this;
}

namespace {

DropReason reason_from_text(std::string_view text) {
  if (text == "truncated") return DropReason::truncated;
  if (text == "gap") return DropReason::gap;
  if (text == "parse_error") return DropReason::parse_error;
  if (text == "expired") return DropReason::expired;
  if (text == "ambiguous_framing") return DropReason::ambiguous_framing;
  if (text == "budget_exceeded") return DropReason::budget_exceeded;
  if (text == "decode_error") return DropReason::decode_error;
  return DropReason::unfinished;
}

// What a connection's client or server had received of the other direction when it sent a
// message's first byte (its segment's acknowledgement number), kept raw and turned into a
// stream offset when needed: the other direction's sequence space may be learnt later.
struct Acknowledged {
  std::uint32_t ack = 0;
  bool known = false;
  std::optional<std::uint64_t> offset(const SequenceMap& other) const {
    if (!known || !other.known) return std::nullopt;
    return other.offset_of(ack);
  }
};

// An entry of a connection's request queue: a request from its first byte until it and its
// response are done with, or a `lost` marker where the request stream lost sync (a hole, junk,
// a mid-stream start): it stands for requests that may have been there, in unknown number.
struct PendingRequest {
  std::string id;
  bool lost = false;
  bool junk = false;  // lost: bytes that did not parse as a request (a server may answer them)
  std::uint8_t method = 0;
  std::uint64_t begin_offset = 0, end_offset = 0;
  Acknowledged acked;  // of the response direction, at the first byte
  std::int64_t first_byte_ns = 0;
  std::int64_t last_byte_ns = 0;
  std::uint64_t response_end = 0;  // answered: where its response ended (0 while it runs)
  bool h2c = false;  // asked to switch to HTTP/2 (Upgrade: h2c)
  bool complete = false;
  bool answered = false;
  bool dropped = false;
  DropReason drop_reason = DropReason::unfinished;
  std::shared_ptr<Message> early_response;  // answered before it was complete: emitted after it
  std::size_t early_response_cost = 0;      // what it is charged to the memory budget
};

// What the memory budget charges for one entry of a request queue: the entry and its id's
// characters (24, past std::string's inner room). Queues are charged kQueueBlock entries at a time.
constexpr std::size_t kQueueEntryBytes = sizeof(PendingRequest) + 32;
constexpr std::size_t kQueueBlock = 8;

// A message held by the session (an early response), as charged: its bytes and strings, the
// object and its control block.
std::size_t held_message_cost(const Message& m) {
  return sizeof(Message) + 64 + m.payload.capacity() + m.id.capacity() + m.meta.source.address.capacity() +
         m.meta.destination.address.capacity();
}

CaptureConfig with_state_cost(CaptureConfig config);

}  // namespace

namespace {
class HttpConnection;
}  // namespace

class CaptureSession::Impl : public StreamConsumer {
 public:
  Impl(CaptureConfig config, EmitShared emit, std::shared_ptr<ReassemblyBudget> budget)
      : config_(with_state_cost(std::move(config))),
        emit_(std::move(emit)),
        reassembler_(config_.limits, *this, std::move(budget)) {}

  void on_open(TcpConnection& connection) override;
  void on_data(TcpConnection& connection, int direction, std::string_view bytes, std::int64_t ts,
               const SegmentPosition& position) override;
  void on_hole(TcpConnection& connection, int direction, std::uint64_t length, HoleReason reason,
               std::int64_t ts) override;
  void on_end(TcpConnection& connection, int direction, std::int64_t ts) override;
  void on_close(TcpConnection& connection, CloseReason reason, std::int64_t ts) override;

  void drop(DropReason reason) { ++stats_.dropped[static_cast<std::size_t>(reason)]; }
  void advance(std::int64_t now_ns);

  CaptureConfig config_;
  EmitShared emit_;
  CaptureStats stats_;
  MessagePool pool_;  // before the reassembler: it outlives the connections that build messages
  // Connections whose TLS records wait for their secrets: time passing ends the wait (no_key).
  std::unordered_set<HttpConnection*> tls_waiting_;
  TcpReassembler reassembler_;
};

namespace {

// The HTTP/2 side of one TCP connection (prior knowledge, or after `Upgrade: h2c`): a frame
// parser per direction, and the streams they carry. Pairing is the stream id: a request's id is
// made when its HEADERS arrive, and the response on the same stream carries it. Each message is
// emitted when its END_STREAM is seen, in the HTTP/1.1 form h2::to_http1 builds; a response
// whole before its request (bidirectional streams) waits for it. Once a direction's bytes are
// lost (a gap) or refused (a frame or HPACK error), its HPACK state is unknown and no later
// header block can be trusted: the whole connection is given up, its open streams counted.
class Http2Exchange : public Http2FrameListener {
 public:
  Http2Exchange(CaptureSession::Impl& session, TcpConnection& tcp, MemoryAccount& memory, const Endpoint& client,
                const Endpoint& server, bool preface_pending, std::shared_ptr<const TlsMeta> tls)
      : session_(session),
        tcp_(tcp),
        memory_(memory),
        client_(client),
        server_(server),
        tls_(std::move(tls)),
        parsers_{{*this, 0, session.config_.max_message_size, &memory},
                 {*this, 1, session.config_.max_message_size, &memory}},
        preface_pending_(preface_pending) {}

  ~Http2Exchange() override {
    for (auto& [number, s] : streams_) release_stream(s);
  }

  // After h2c: stream 1 carries the response to the HTTP/1.1 upgrade request, already emitted
  // (or dropped) with `id`. `settings`: its HTTP2-Settings payload, in force from the 101 on.
  void adopt_upgrade(std::string id, bool head, std::int64_t request_last_ns, std::string_view settings,
                     std::optional<DropReason> dropped) {
    Stream& s = streams_[1];
    s.id = std::move(id);
    s.head = head;
    s.request.begun = s.request.done = true;
    s.request.last_ns = request_last_ns;
    s.request_emitted = !dropped;
    if (dropped) {
      s.request.dropped = true;
      s.request.reason = *dropped;
    }
    last_client_stream_ = 1;
    std::uint32_t table = 0, frame_size = 0;
    for (std::size_t i = 0; i + 6 <= settings.size(); i += 6) {
      auto at = [&](std::size_t k) { return static_cast<std::uint32_t>(static_cast<unsigned char>(settings[i + k])); };
      std::uint32_t setting = at(0) << 8 | at(1), value = at(2) << 24 | at(3) << 16 | at(4) << 8 | at(5);
      if (setting == 1) table = value == 0 ? 0xffffffffu : value;
      if (setting == 5 && value >= 16384 && value < (1u << 24)) frame_size = value;
    }
    parsers_[1].peer_settings(table, frame_size, true);
  }

  // `side`: 0 the client's bytes, 1 the server's.
  void data(int side, std::string_view bytes, std::int64_t ts) {
    if (stopped_) return;
    if (side == 0 && preface_pending_) {
      std::size_t n = std::min(bytes.size(), kHttp2Preface.size() - preface_matched_);
      if (bytes.substr(0, n) != kHttp2Preface.substr(preface_matched_, n)) {
        ++session_.stats_.h2.frame_errors;  // after h2c, the client must open with the preface
        give_up(DropReason::decode_error);
        return;
      }
      preface_matched_ += n;
      bytes.remove_prefix(n);
      if (preface_matched_ < kHttp2Preface.size()) return;
      preface_pending_ = false;
    }
    parsers_[side].feed(bytes, ts);
    check(parsers_[side]);
  }

  // The connection's bytes can no longer be had (its TLS stopped decrypting): what is open is
  // given up with `reason`.
  void abandon(DropReason reason) {
    if (stopped_) return;
    give_up(reason);
  }

  // Bytes of `side` will never be seen: its HPACK state is lost with them.
  void hole() {
    if (stopped_) return;
    ++session_.stats_.h2.gaps;
    give_up(DropReason::gap);
  }

  void close(CloseReason reason) {
    for (auto& parser : parsers_) check(parser);
    if (stopped_) return;
    give_up(reason == CloseReason::expired ? DropReason::expired : DropReason::unfinished);
  }

  // The memory budget evicts this connection: every body held goes, and so does a frame held
  // while it spans packets (the direction is then given up at its next bytes).
  std::size_t streams() const { return streams_.size(); }

  void shed() {
    for (auto& [number, s] : streams_) {
      for (Half* half : {&s.request, &s.response})
        if (half->charged != 0 && !half->dropped) drop_half(*half, DropReason::budget_exceeded);
      if (s.early) drop_early(s, DropReason::budget_exceeded);
    }
    for (auto& parser : parsers_) parser.shed();
  }

  // Http2FrameListener
  void on_headers(Http2FrameParser& parser, std::uint32_t number, std::vector<h2::Field>&& fields, bool end_stream,
                  bool too_large, std::int64_t ts) override {
    if (parser.side() == 0) client_headers(number, std::move(fields), end_stream, too_large, ts);
    else server_headers(number, std::move(fields), end_stream, too_large, ts);
  }

  void on_push_promise(Http2FrameParser&, std::uint32_t, std::uint32_t) override {
    // The promised request and its response (HEADERS and DATA on an even stream) are skipped.
    session_.drop(DropReason::pushed);
  }

  void on_data(Http2FrameParser& parser, std::uint32_t number, std::string_view bytes, bool end_stream,
               std::int64_t ts) override {
    if (number % 2 == 0) return;  // a pushed response's
    auto it = streams_.find(number);
    if (it == streams_.end()) return;  // a stream given up or never begun: counted then
    Stream& s = it->second;
    Half& half = parser.side() == 0 ? s.request : s.response;
    if (half.done) return;
    if (!half.begun) {
      // DATA before the stream's HEADERS (RFC 9113 8.1): not a message.
      if (parser.side() == 1 && !s.unmatched) drop_half(half, DropReason::malformed);
      half.begun = true;
    }
    half.last_ns = ts;
    append(half, bytes, parser.side() == 0 || session_.config_.track_response);
    if (end_stream) parser.side() == 0 ? finish_request(number) : finish_response(number);
  }

  void on_rst_stream(Http2FrameParser&, std::uint32_t number, std::uint32_t) override {
    ++session_.stats_.h2.resets;
    auto it = streams_.find(number);
    if (it == streams_.end()) return;
    Stream& s = it->second;
    if (s.request.begun && !s.request.done && !s.request.dropped) drop_half(s.request, DropReason::stream_reset);
    if (s.response.begun && !s.response.done && !s.response.dropped && session_.config_.track_response &&
        !s.unmatched)
      drop_half(s.response, DropReason::stream_reset);
    if (s.early) drop_early(s, DropReason::stream_reset);
    if (s.request_emitted && !s.response.begun && tracking_responses()) ++session_.stats_.responses_missing;
    release_stream(s);
    streams_.erase(it);
  }

  void on_settings(Http2FrameParser& parser, bool ack, std::uint32_t table, std::uint32_t frame_size) override {
    // One side's SETTINGS bind what the other side's encoder and framer may send.
    if (!ack) parsers_[1 - parser.side()].peer_settings(table, frame_size);
  }

  void on_goaway(Http2FrameParser&, std::uint32_t, std::uint32_t) override { ++session_.stats_.h2.goaways; }

 private:
  struct Half {
    h2::StreamMessage message;
    bool begun = false;    // its (final) header block seen
    bool done = false;     // END_STREAM seen
    bool dropped = false;  // counted; nothing more is kept
    DropReason reason = DropReason::unfinished;
    std::size_t size = 0;     // bytes of fields and DATA, against max_message_size
    std::size_t charged = 0;  // to the memory budget
    std::int64_t first_ns = 0, last_ns = 0;
  };
  struct Stream {
    std::string id;
    bool head = false;       // the request's method is HEAD: its response has no body
    bool unmatched = false;  // a response on a stream whose request was not seen
    bool request_emitted = false;
    Half request, response;
    std::shared_ptr<Message> early;  // the response, whole before its request
    std::size_t early_cost = 0;
  };

  bool tracking_responses() const { return session_.config_.track_response && session_.config_.responses_seen; }

  void check(Http2FrameParser& parser) {
    if (stopped_) return;
    switch (parser.error()) {
      case Http2Error::none:
        return;
      case Http2Error::frame:
        ++session_.stats_.h2.frame_errors;
        give_up(DropReason::decode_error);
        return;
      case Http2Error::hpack:
        ++session_.stats_.h2.hpack_errors;
        give_up(DropReason::decode_error);
        return;
      case Http2Error::memory:
        give_up(DropReason::budget_exceeded);
        return;
    }
  }

  static std::size_t field_bytes(const std::vector<h2::Field>& fields) {
    std::size_t n = 0;
    for (const auto& f : fields) n += f.name.size() + f.value.size() + 32;  // RFC 9113 6.5.2's overhead
    return n;
  }

  // Keeps header fields (`trailers`: after the body) in `half`, within its bounds.
  void keep_fields(Half& half, std::vector<h2::Field>&& fields, bool too_large, bool trailers) {
    if (half.dropped) return;
    if (too_large) return drop_half(half, DropReason::too_large);
    std::size_t n = field_bytes(fields);
    half.size += n;
    if (half.size > session_.config_.max_message_size) return drop_half(half, DropReason::too_large);
    if (!memory_.reserve(n)) {
      if (!half.dropped) drop_half(half, DropReason::budget_exceeded);  // unless shed() took it
      return;
    }
    half.charged += n;
    (trailers ? half.message.trailers : half.message.headers) = std::move(fields);
  }

  void append(Half& half, std::string_view bytes, bool keep) {
    if (half.dropped || !keep || bytes.empty()) return;
    half.size += bytes.size();
    if (half.size > session_.config_.max_message_size) return drop_half(half, DropReason::too_large);
    if (!memory_.reserve(bytes.size())) {
      if (!half.dropped) drop_half(half, DropReason::budget_exceeded);
      return;
    }
    half.charged += bytes.size();
    half.message.body.append(bytes);
  }

  void client_headers(std::uint32_t number, std::vector<h2::Field>&& fields, bool end_stream, bool too_large,
                      std::int64_t ts) {
    if (number % 2 == 0) {
      ++session_.stats_.h2.frame_errors;  // clients open odd streams only (RFC 9113 5.1.1)
      give_up(DropReason::decode_error);
      return;
    }
    auto it = streams_.find(number);
    if (it == streams_.end()) {
      if (number <= last_client_stream_) return;  // a stream already closed: nothing to pair
      last_client_stream_ = number;
      make_room();
      Stream& s = streams_[number];
      s.id = new_message_id();
      ++session_.stats_.h2.streams;
      s.request.begun = true;
      s.request.first_ns = s.request.last_ns = ts;
      for (const auto& f : fields)
        if (f.name == ":method") s.head = f.value == "HEAD";
      keep_fields(s.request, std::move(fields), too_large, false);
      if (end_stream) finish_request(number);
      return;
    }
    Stream& s = it->second;
    if (s.request.done) return;
    s.request.last_ns = ts;
    // A second header block: trailers, which must end the stream (RFC 9113 8.1).
    if (!end_stream) drop_half(s.request, DropReason::malformed);
    keep_fields(s.request, std::move(fields), too_large, true);
    if (end_stream) finish_request(number);
  }

  void server_headers(std::uint32_t number, std::vector<h2::Field>&& fields, bool end_stream, bool too_large,
                      std::int64_t ts) {
    if (number % 2 == 0) return;  // a pushed response: counted at its PUSH_PROMISE
    auto it = streams_.find(number);
    if (it == streams_.end()) {
      // A response to a request never seen on this connection. Counted once; its frames skipped.
      session_.drop(DropReason::unmatched_response);
      if (end_stream) return;
      Stream& s = streams_[number];
      s.unmatched = true;
      s.request.begun = s.request.done = true;
      s.response.begun = true;
      s.response.dropped = true;
      return;
    }
    Stream& s = it->second;
    Half& half = s.response;
    if (half.done) return;
    if (!half.begun) {
      int status = 0;
      for (const auto& f : fields)
        if (f.name == ":status" && f.value.size() == 3) status = std::atoi(f.value.c_str());
      if (status / 100 == 1 && status != 101 && !too_large) {
        // An interim response (100 Continue, 103 Early Hints): the final one follows.
        ++session_.stats_.interim_responses;
        if (end_stream) {
          drop_half(half, DropReason::malformed);  // RFC 9113 8.1: an interim response cannot end it
          finish_response(number);
        }
        return;
      }
      half.begun = true;
      half.first_ns = half.last_ns = ts;
      if (session_.config_.track_response) keep_fields(half, std::move(fields), too_large, false);
    } else {
      half.last_ns = ts;
      if (!end_stream && session_.config_.track_response) drop_half(half, DropReason::malformed);
      if (session_.config_.track_response) keep_fields(half, std::move(fields), too_large, true);
    }
    if (end_stream) finish_response(number);
  }

  // The bound on streams held per connection (max_pending_requests): the oldest goes, counted.
  void make_room() {
    while (streams_.size() >= session_.config_.max_pending_requests && !streams_.empty()) {
      Stream& s = streams_.begin()->second;
      abandon(s, DropReason::budget_exceeded);
      release_stream(s);
      streams_.erase(streams_.begin());
    }
  }

  std::shared_ptr<Message> build(Kind kind, const Stream& s, std::uint32_t number, std::string&& payload,
                                 std::int64_t ts) {
    auto out = session_.pool_.take();
    out->kind = kind;
    out->id.append(s.id);
    out->timestamp_ns = ts;
    out->payload = std::move(payload);
    bool request = kind == Kind::request;
    out->meta.source = request ? client_ : server_;
    out->meta.destination = request ? server_ : client_;
    out->meta.connection_id = tcp_.id;
    out->meta.proto = "h2";
    out->meta.stream_id = number;
    out->meta.tls = tls_;
    return out;
  }

  void finish_request(std::uint32_t number) {
    Stream& s = streams_[number];
    s.request.done = true;
    if (!s.request.dropped) {
      std::string error;
      std::optional<std::string> payload = h2::to_http1(s.request.message, error);
      if (!payload) {
        drop_half(s.request, DropReason::malformed);
      } else {
        auto out = build(Kind::request, s, number, std::move(*payload), s.request.first_ns);
        if (!session_.config_.realip_header.empty())
          out->payload = http_set_header(out->payload, session_.config_.realip_header, client_.address);
        ++session_.stats_.requests;
        s.request_emitted = true;
        session_.emit_(std::move(out));
      }
    }
    free_half(s.request);
    if (s.early) {
      if (s.request_emitted) {
        ++session_.stats_.responses;
        memory_.release(std::exchange(s.early_cost, 0));
        session_.emit_(std::move(s.early));
        s.early.reset();
      } else {
        drop_early(s, s.request.reason);  // the response goes with its request
      }
    }
    settle(number);
  }

  void finish_response(std::uint32_t number) {
    Stream& s = streams_[number];
    Half& half = s.response;
    half.done = true;
    if (s.unmatched || !session_.config_.track_response || half.dropped) {
      free_half(half);
      settle(number);
      return;
    }
    if (s.request.dropped && s.request.done) {
      drop_half(half, s.request.reason);  // the response goes with its request
      settle(number);
      return;
    }
    std::string error;
    std::optional<std::string> payload = h2::to_http1(half.message, error, s.head);
    free_half(half);
    if (!payload) {
      drop_half(half, DropReason::malformed);
      settle(number);
      return;
    }
    auto out = build(Kind::response, s, number, std::move(*payload), half.first_ns);
    if (!s.request.done) {
      // Whole before its request (a bidirectional stream answered early): it goes out after it.
      ++session_.stats_.early_responses;
      std::size_t cost = held_message_cost(*out);
      if (!memory_.reserve(cost)) {
        half.dropped = true;
        session_.drop(DropReason::budget_exceeded);
        return;
      }
      s.early = std::move(out);
      s.early_cost = cost;
      return;
    }
    out->latency_ns = std::max<std::int64_t>(0, half.first_ns - s.request.last_ns);
    ++session_.stats_.responses;
    session_.emit_(std::move(out));
    settle(number);
  }

  // A stream whose request and response are both done is forgotten.
  void settle(std::uint32_t number) {
    auto it = streams_.find(number);
    if (it == streams_.end()) return;
    Stream& s = it->second;
    bool response_done = s.response.done || !session_.config_.responses_seen;
    if (!s.request.done || !response_done || s.early) return;
    release_stream(s);
    streams_.erase(it);
  }

  void drop_half(Half& half, DropReason reason) {
    if (half.dropped) return;
    half.dropped = true;
    half.reason = reason;
    session_.drop(reason);
    free_half(half);
  }

  void drop_early(Stream& s, DropReason reason) {
    memory_.release(std::exchange(s.early_cost, 0));
    s.early.reset();
    session_.drop(reason);
  }

  void free_half(Half& half) {
    memory_.release(std::exchange(half.charged, 0));
    half.message = h2::StreamMessage{};
  }

  void release_stream(Stream& s) {
    free_half(s.request);
    free_half(s.response);
    if (s.early) {
      memory_.release(std::exchange(s.early_cost, 0));
      s.early.reset();
    }
  }

  // Counts what `s` leaves unfinished; true when it left something.
  bool abandon(Stream& s, DropReason reason) {
    bool left = false;
    if (s.request.begun && !s.request.done) {
      if (!s.request.dropped) drop_half(s.request, reason);
      left = true;
    }
    if (s.response.begun && !s.response.done && !s.unmatched) {
      if (!s.response.dropped && session_.config_.track_response) drop_half(s.response, reason);
      left = true;
    }
    if (s.early) {
      drop_early(s, reason);
      left = true;
    }
    if (s.request_emitted && !s.response.begun && tracking_responses()) {
      ++session_.stats_.responses_missing;
      left = true;
    }
    if (left) ++session_.stats_.h2.streams_abandoned;
    return left;
  }

  // Nothing more is decoded on this connection.
  void give_up(DropReason reason) {
    stopped_ = true;
    for (auto& [number, s] : streams_) {
      abandon(s, reason);
      release_stream(s);
    }
    streams_.clear();
  }

  CaptureSession::Impl& session_;
  TcpConnection& tcp_;
  MemoryAccount& memory_;
  const Endpoint& client_;
  const Endpoint& server_;
  std::shared_ptr<const TlsMeta> tls_;  // the messages' meta.tls: decrypted from TLS (h2 by ALPN)
  Http2FrameParser parsers_[2];
  bool preface_pending_;
  std::size_t preface_matched_ = 0;
  bool stopped_ = false;
  std::uint32_t last_client_stream_ = 0;
  std::map<std::uint32_t, Stream> streams_;  // ordered: the oldest stream goes first at the bound
};

// The HTTP side of one TCP connection: which endpoint is the client, a parser per direction,
// and the requests waiting for their responses.
//
// Pairing (docs/guide/capture.md, "How a response finds its request"): while the response
// stream is known to be in step with the request queue, the next response answers the next
// request, checked against the acknowledgement numbers (the server had received the request's
// first byte; the client had not received the response when it sent the request). Once a
// response follows a gap, junk or a mid-stream start, position proves nothing and the numbers
// must: the response answers request R only if the client had received exactly every response
// byte before it when it sent R, the server had received R and nothing after it when it began
// answering, and the connection never pipelined. Otherwise the response is counted
// (`ambiguous_response`) and skipped: a lost pair is better than a wrong one.
//
// TLS (docs/guide/tls.md): a connection whose client opens with a ClientHello goes through a
// TlsDecoder first; its application data then takes the path cleartext takes, from its start
// (HTTP/1.x, or HTTP/2 by its preface when ALPN chose h2). Acknowledgement numbers count
// ciphertext, not the plaintext the parsers see: they prove nothing there and are not used; a
// decrypted connection is in step from its start, and the decoding ends at the first byte lost.
class HttpConnection : public ConnectionState,
                       public HttpMessageListener,
                       public MemoryAccount,
                       public TlsDecoderListener {
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

  ~HttpConnection() override {
    session_.stats_.tables.pending_requests -= counted_pending_;
    session_.stats_.tables.h2_streams -= counted_streams_;
    if (tls_waiting_) session_.tls_waiting_.erase(this);
    // Every charge goes back while the connection is whole (the parsers' through release()).
    drop_held_ciphertext();
    tls_.reset();
    h2_.reset();
    release(h2_state_charged_);
    if (!server_first_.empty()) release(server_first_.size());
    requests_.reset();
    responses_.reset();
    for (auto& p : pending_) release(p.early_response_cost);
    session_.reassembler_.release(nullptr, (queue_room_ - kQueueBlock) * kQueueEntryBytes);
  }

  // MemoryAccount: the parsers' buffers are this connection's to evict.
  bool reserve(std::size_t bytes) override { return session_.reassembler_.reserve(&tcp_, bytes); }
  void release(std::size_t bytes) override { session_.reassembler_.release(&tcp_, bytes); }

  // Brings the session's table sizes (CaptureStats::tables) up to date with this connection's;
  // called after each call into it, so the hot path adds two numbers and keeps no walk over
  // all connections for the gauges.
  void count_tables() {
    std::size_t pending = pending_.size(), streams = h2_ ? h2_->streams() : 0;
    CaptureTables& tables = session_.stats_.tables;
    tables.pending_requests = tables.pending_requests + pending - counted_pending_;
    tables.h2_streams = tables.h2_streams + streams - counted_streams_;
    counted_pending_ = pending;
    counted_streams_ = streams;
  }

  // ConnectionState: evicted by the memory budget. Passive: nothing is emitted or paired here.
  void shed() override {
    if (tls_) {
      // Asked while the decoder itself reserves: it is told once it has returned.
      if (in_tls_) tls_shed_pending_ = true;
      else tls_->shed();
      drop_held_ciphertext();  // the decoder has given up: what waited to be fed is of no use
    }
    if (h2_) h2_->shed();
    if (!server_first_.empty()) {
      release(server_first_.size());
      std::string().swap(server_first_);
      server_first_lost_ = true;
    }
    if (requests_) requests_->shed();
    if (responses_) responses_->shed();
    for (auto& p : pending_)
      if (p.early_response) drop_early_response(p, DropReason::budget_exceeded);
    count_tables();
  }

  void data(int direction, std::string_view bytes, std::int64_t ts, const SegmentPosition& position) {
    if (tls_) {
      if (!tls_failed_) order_ciphertext(direction, bytes, ts, position);
      return;
    }
    if (tls_skipped_) return;
    if (!tls_probe_.empty()) {
      if (direction == tls_probe_direction_) {
        std::string held = std::move(tls_probe_);
        tls_probe_.clear();
        if (probe_tls(direction, held + std::string(bytes), tls_probe_ts_, tls_probe_position_)) return;
        tls_probe_ = std::move(held);
      }
      // Not TLS: what was held goes the HTTP way first, as it came.
      end_server_first();
      end_tls_probe();
    } else if (!ciphertext_held_[direction].empty()) {
      hold_ciphertext(direction, bytes, ts, position);  // a server's, still before its client's first bytes
      return;
    } else if (!plain_fed_ && !bytes_seen_[direction]) {
      if (probe_tls(direction, bytes, ts, position)) return;
      end_server_first();
    }
    bytes_seen_[direction] = true;
    plain_fed_ = true;
    plain_data(direction, bytes, ts, position);
  }

  // The connection's bytes as HTTP: as captured, or as decrypted from TLS.
  void plain_data(int direction, std::string_view bytes, std::int64_t ts, const SegmentPosition& position) {
    if (h2_) {
      h2_->data(direction == client_ ? 0 : 1, bytes, ts);
      return;
    }
    if (h2_skipped_) return;
    if (client_ < 0) {
      // Which side speaks first is not enough (pipelined captures start anywhere): look for a
      // status line or a request line.
      using Side = HttpStreamParser::Side;
      if (find_message_start(Side::response, bytes) != std::string_view::npos) assign_roles(1 - direction, false);
      else if (find_message_start(Side::request, bytes) != std::string_view::npos) assign_roles(direction, false);
      else {
        if (Http2FrameParser::looks_like_frames(bytes)) skip_midstream_h2();
        return;
      }
    }
    auto& recent = recent_[direction];
    bool first = recent_next_[direction] == 0;
    recent[recent_next_[direction]++ % recent.size()] = position;
    HttpStreamParser& parser = parser_for(direction);
    // One direction's SYN seen, not this one's (lost, or captured out of order): its bytes may
    // not begin at a message; find the first one and let pairing treat it as found by seeking.
    // Decrypted bytes begin where the application data does.
    if (first && !tcp_.start_seen[direction] && !tls_ && parser.state() == HttpStreamParser::State::parsing)
      parser.hole(0, "gap", ts);
    if (first) stream_start_[direction] = position.offset;
    if (preface_open_ && probe_preface(direction, bytes, ts, position.offset)) return;
    // HTTP/2 frames where no HTTP/1.x message was ever found: a connection whose HTTP/2 start
    // (and so its HPACK state) was not seen. Nothing of it can be decoded without guessing.
    if (!h1_seen_ && parser.state() == HttpStreamParser::State::seeking && Http2FrameParser::looks_like_frames(bytes)) {
      skip_midstream_h2();
      return;
    }
    parser.feed(bytes, ts, position.offset);
  }

  void hole(int direction, std::uint64_t length, HoleReason reason, std::int64_t ts) {
    if (tls_) {
      if (!tls_failed_) call_tls([&] { tls_->hole(direction == client_ ? 0 : 1); });
      return;
    }
    if (tls_skipped_) return;
    end_server_first();
    end_tls_probe();
    bytes_seen_[direction] = true;  // what follows a loss is no connection's first bytes
    if (h2_) {
      h2_->hole();
      return;
    }
    if (client_ < 0 || h2_skipped_) return;
    if (preface_open_) close_probe();
    std::string_view why = reason == HoleReason::truncated ? "truncated"
                           : reason == HoleReason::budget  ? "budget_exceeded"
                                                           : "gap";
    parser_for(direction).hole(length, why, ts);
  }

  void end(int direction, std::int64_t ts) {
    if (tls_) {
      if (tls_failed_) return;
      stream_ended_[direction] = true;
      release_ciphertext(false);  // segments that acknowledged its FIN
      // Records still held (for their key, or for the other direction) come first: the end
      // is applied after them.
      if (tls_->waiting() || !ciphertext_held_[direction].empty()) {
        pending_end_[direction] = ts;
        return;
      }
    }
    if (tls_skipped_) return;
    end_server_first();
    end_tls_probe();
    if (client_ < 0 || h2_ || h2_skipped_) return;  // HTTP/2: what is unfinished is counted at close
    if (preface_open_) close_probe();
    parser_for(direction).end(ts, "unfinished");
  }

  void close(CloseReason reason, std::int64_t ts) {
    if (tls_ && !tls_failed_) release_ciphertext(true);
    if (!tls_) end_server_first();
    if (tls_ && !tls_failed_ && tls_->waiting()) {
      // A last look for its key, in the log as it is now: a client logs its secrets during the
      // handshake, so a short connection closes well after its line was written.
      session_.config_.tls_keys->refresh(true);
      call_tls([&] { tls_->close(); });
    }
    if (tls_skipped_ || (tls_ && tls_failed_ && !tls_meta_)) return;
    end_tls_probe();
    if (h2_) h2_->close(reason);
    if (client_ < 0 || h2_skipped_) return;
    if (preface_open_) close_probe();
    std::string_view cut = reason == CloseReason::expired ? "expired" : "unfinished";
    requests_->end(ts, cut);
    responses_->end(ts, cut);
    if (session_.config_.track_response)
      for (auto& p : pending_)
        if (!p.lost && !p.answered && !p.dropped) ++session_.stats_.responses_missing;
  }

  // Time passed: a key awaited too long ends the wait.
  void advance_tls(std::int64_t now_ns) {
    if (tls_ && !tls_failed_) call_tls([&] { tls_->advance(now_ns); });
  }

  // TlsDecoderListener
  void on_keyed() override {
    ++session_.stats_.tls.decrypted;
    const TlsInfo& info = tls_->info();
    if (info.resumed) ++session_.stats_.tls.resumed;
    tls_meta_ = std::make_shared<const TlsMeta>(TlsMeta{info.version, info.cipher, info.sni, info.alpn});
  }

  void on_plaintext(int side, std::string_view bytes, std::int64_t ts) override {
    int direction = side == 0 ? client_ : 1 - client_;
    SegmentPosition position;  // no acknowledgement: it would count ciphertext
    position.offset = plain_offset_[direction];
    plain_offset_[direction] += bytes.size();
    plain_data(direction, bytes, ts, position);
  }

  void on_failure(TlsFailure failure) override {
    tls_failed_ = true;
    drop_held_ciphertext();
    auto& tls = session_.stats_.tls;
    ++tls.failed[static_cast<std::size_t>(failure)];
    if (failure == TlsFailure::unsupported_cipher) ++tls.unsupported_ciphers[tls_->info().cipher];
    if (!tls_meta_) return;  // nothing was decrypted: nothing is in progress
    // What was decrypted stands; what is in progress cannot end.
    DropReason reason = failure == TlsFailure::gap         ? DropReason::gap
                        : failure == TlsFailure::too_large ? DropReason::budget_exceeded
                                                           : DropReason::decode_error;
    if (h2_) {
      h2_->abandon(reason);
      return;
    }
    if (preface_open_) close_probe();
    if (requests_) requests_->stop(drop_reason_name(reason));
    if (responses_) responses_->stop(drop_reason_name(reason));
  }

  // HttpMessageListener
  void on_message_begin(HttpStreamParser& parser, std::int64_t ts) override {
    h1_seen_ = true;
    if (parser.side() == HttpStreamParser::Side::response) {
      begin_response(parser);
      return;
    }
    std::uint64_t begin = parser.message_begin();
    // Bytes passed over before it (seen, or lost in a hole) may have held requests. What their
    // sender had received when it sent the last of them tells whether it then waited.
    if (parser.message_resynchronised()) push_lost(false, begin > 0 ? acknowledged(client_, begin - 1) : Acknowledged{});
    if (pending_.size() >= session_.config_.max_pending_requests) retire_front();
    make_queue_room();
    PendingRequest p;
    p.id = new_message_id();
    p.first_byte_ns = ts;
    p.begin_offset = begin;
    p.acked = acknowledged(client_, begin);
    note_pipelining(p);
    pending_.push_back(std::move(p));
    current_number_ = front_number_ + pending_.size() - 1;
  }

  int on_headers(HttpStreamParser& parser, int status, std::uint8_t method) override {
    if (parser.side() == HttpStreamParser::Side::request) {
      if (PendingRequest* p = current_request()) p->method = method;
      return 0;
    }
    if (status / 100 == 1) return 0;
    PendingRequest* p = response_target();
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

  void on_unreported_skip(HttpStreamParser&, std::uint64_t) override {
    // Seeking passed over bytes of messages never reported; the message found next is marked
    // resynchronised, which is where the request queue records the loss (on_message_begin).
  }

  void on_budget_exceeded(HttpStreamParser&) override { session_.drop(DropReason::budget_exceeded); }

  void on_handed_over(HttpStreamParser& parser, std::string_view bytes, std::uint64_t, std::int64_t ts,
                      bool lost) override {
    if (!h2_) return;
    if (lost) h2_->hole();
    if (!bytes.empty()) h2_->data(parser.side() == HttpStreamParser::Side::request ? 0 : 1, bytes, ts);
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
  static constexpr std::uint64_t kNone = ~std::uint64_t{0};

  // A connection's first bytes in a direction: a ClientHello begins TLS (its sender is the
  // client); other TLS records, where the start was not seen, mean a TLS connection captured
  // from its middle. True when taken.
  bool probe_tls(int direction, std::string_view bytes, std::int64_t ts, const SegmentPosition& position) {
    bytes_seen_[direction] = true;
    bool client_side = client_ < 0 || direction == client_;
    auto hello = client_side ? TlsDecoder::detect_client_hello(bytes) : TlsDecoder::Detection::no;
    if (hello == TlsDecoder::Detection::yes) {
      start_tls(direction, bytes, ts, position);
      return true;
    }
    if (hello == TlsDecoder::Detection::maybe) {
      // Too few bytes to tell (a ClientHello's first ones split off): held until there are.
      if (tls_probe_.empty()) {
        tls_probe_ts_ = ts;
        tls_probe_position_ = position;
        tls_probe_direction_ = direction;
      }
      tls_probe_.assign(bytes);
      return true;
    }
    // A server's first TLS records captured before its client's ClientHello (the capture may
    // interleave the two directions late): held until the client's first bytes say what they are.
    if (!client_side && tcp_.start_seen[direction] && !bytes_seen_[client_] && TlsDecoder::looks_like_record(bytes)) {
      hold_ciphertext(direction, bytes, ts, position);
      return true;
    }
    // From a connection's seen start, what is no ClientHello is no TLS (junk, counted as HTTP).
    if (tcp_.start_seen[direction] || !TlsDecoder::looks_like_record(bytes)) return false;
    ++session_.stats_.tls.midstream;
    drop_held_ciphertext();
    skip_tls();
    return true;
  }

  // Bytes held by probe_tls that began no ClientHello: they go the HTTP way, as they came.
  void end_tls_probe() {
    if (tls_probe_.empty()) return;
    std::string held = std::move(tls_probe_);
    tls_probe_.clear();
    plain_fed_ = true;
    plain_data(tls_probe_direction_, held, tls_probe_ts_, tls_probe_position_);
  }

  void start_tls(int client, std::string_view bytes, std::int64_t ts, const SegmentPosition& position) {
    ++session_.stats_.tls.connections;
    if (!session_.config_.tls_keys) {
      ++session_.stats_.tls.failed[static_cast<std::size_t>(TlsFailure::no_key)];
      drop_held_ciphertext();
      skip_tls();
      return;
    }
    // The plaintext will begin at its stream's start: the parsers are in step from it.
    assign_roles(client, true);
    tls_ = std::make_unique<TlsDecoder>(session_.config_.tls_keys->keys(), *this, this, session_.config_.tls_limits);
    feed_ciphertext(client, bytes, ts, position);
    release_ciphertext(false);  // the server's first records, when they were captured before it
  }

  // Capture order is not always the order the peers sent in: the two directions of a loopback
  // or multi-queue capture interleave late. Decrypted bytes carry no acknowledgement numbers
  // for pairing to check order with, so the ciphertext is put in order before decryption: a
  // segment acknowledging bytes of the other direction not fed yet waits for them (and the
  // segments after it in its direction with it). Bounded: past kCiphertextHeldBound what waits
  // is fed in capture order.
  void order_ciphertext(int direction, std::string_view bytes, std::int64_t ts, const SegmentPosition& position) {
    if (!ciphertext_held_[direction].empty() || ahead_of_peer(direction, position)) {
      hold_ciphertext(direction, bytes, ts, position);
      if (ciphertext_held_bytes_ > kCiphertextHeldBound) release_ciphertext(true);
      return;
    }
    feed_ciphertext(direction, bytes, ts, position);
    release_ciphertext(false);
  }

  // Whether a segment of `direction` acknowledges bytes of the other direction not fed yet.
  bool ahead_of_peer(int direction, const SegmentPosition& position) const {
    int peer = 1 - direction;
    if (!position.has_ack || (stream_ended_[peer] && ciphertext_held_[peer].empty())) return false;
    auto acked = Acknowledged{position.ack, true}.offset(tcp_.sequence[peer]);
    return acked && *acked > ciphertext_fed_end_[peer];
  }

  void feed_ciphertext(int direction, std::string_view bytes, std::int64_t ts, const SegmentPosition& position) {
    ciphertext_fed_end_[direction] = std::max(ciphertext_fed_end_[direction], position.offset + bytes.size());
    if (!tls_failed_) call_tls([&] { tls_->data(direction == client_ ? 0 : 1, bytes, ts); });
  }

  void hold_ciphertext(int direction, std::string_view bytes, std::int64_t ts, const SegmentPosition& position) {
    if (!reserve(bytes.size())) {
      // No room to wait: what waits goes on in capture order, and so does this.
      release_ciphertext(true);
      if (tls_) feed_ciphertext(direction, bytes, ts, position);
      else plain_data(direction, bytes, ts, position);
      return;
    }
    ciphertext_held_bytes_ += bytes.size();
    ciphertext_held_[direction].push_back({std::string(bytes), ts, position, ciphertext_arrival_++});
  }

  // Feeds the held segments whose wait is over; `all`: every one, in capture order.
  void release_ciphertext(bool all) {
    for (bool progress = true; progress && !tls_failed_;) {
      progress = false;
      int next = -1;
      for (int d = 0; d < 2; ++d) {
        if (ciphertext_held_[d].empty() || (!all && ahead_of_peer(d, ciphertext_held_[d].front().position))) continue;
        if (next < 0 || ciphertext_held_[d].front().arrival < ciphertext_held_[next].front().arrival) next = d;
      }
      if (next < 0) break;
      HeldCiphertext held = std::move(ciphertext_held_[next].front());
      ciphertext_held_[next].pop_front();
      ciphertext_held_bytes_ -= held.bytes.size();
      release(held.bytes.size());
      if (tls_) feed_ciphertext(next, held.bytes, held.ts, held.position);
      else plain_data(next, held.bytes, held.ts, held.position);
      progress = true;
    }
  }

  void drop_held_ciphertext() {
    for (auto& queue : ciphertext_held_) queue.clear();
    release(ciphertext_held_bytes_);
    ciphertext_held_bytes_ = 0;
  }

  // The server's first records were held for its client's ClientHello, which did not come:
  // they go the HTTP way, as they came.
  void end_server_first() {
    if (ciphertext_held_[0].empty() && ciphertext_held_[1].empty()) return;
    plain_fed_ = true;
    for (int d = 0; d < 2; ++d) bytes_seen_[d] = bytes_seen_[d] || !ciphertext_held_[d].empty();
    release_ciphertext(true);
  }

  // Nothing of the connection will be read: it is TLS, and cannot be decrypted.
  void skip_tls() {
    tls_skipped_ = true;
    if (requests_) requests_->stop("unfinished");
    if (responses_) responses_->stop("unfinished");
  }

  // Every call into the decoder: a memory budget eviction asked for meanwhile is applied once
  // it has returned, the key log is looked at again while a key is awaited, and a direction
  // that ended while its records waited for their key ends once they are decrypted.
  template <class Call>
  void call_tls(Call&& call) {
    if (!tls_->keyed() || tls_->waiting()) session_.config_.tls_keys->refresh();
    in_tls_ = true;
    call();
    in_tls_ = false;
    if (tls_shed_pending_) {
      tls_shed_pending_ = false;
      tls_->shed();
    }
    bool waiting = !tls_failed_ && tls_->waiting();
    if (waiting != tls_waiting_) {
      tls_waiting_ = waiting;
      if (waiting) session_.tls_waiting_.insert(this);
      else session_.tls_waiting_.erase(this);
    }
    if (waiting || tls_failed_) return;
    for (int direction = 0; direction < 2; ++direction) {
      if (pending_end_[direction] < 0 || !ciphertext_held_[direction].empty()) continue;
      std::int64_t at = pending_end_[direction];
      pending_end_[direction] = -1;
      end(direction, at);
    }
  }

  void assign_roles(int client, bool in_sync) {
    client_ = client;
    bool keep_responses = session_.config_.track_response;
    std::size_t max = session_.config_.max_message_size;
    requests_ =
        std::make_unique<HttpStreamParser>(HttpStreamParser::Side::request, *this, in_sync, true, max, true, this);
    responses_ = std::make_unique<HttpStreamParser>(HttpStreamParser::Side::response, *this, in_sync, keep_responses,
                                                    max, true, this);
    client_endpoint_ = {tcp_.address[client].to_string(), tcp_.port[client]};
    server_endpoint_ = {tcp_.address[1 - client].to_string(), tcp_.port[1 - client]};
    in_step_ = in_sync;
    // The connection's start was seen: the client's first bytes may be the HTTP/2 preface.
    preface_open_ = in_sync;
  }

  void start_h2(bool preface_pending) {
    preface_open_ = false;
    ++session_.stats_.h2.connections;
    h2_ = std::make_unique<Http2Exchange>(session_, tcp_, *this, client_endpoint_, server_endpoint_, preface_pending,
                                          tls_meta_);
    // The decoder's own state (two HPACK tables at their default size) is charged when the budget
    // has room; what it holds beyond that (bodies, frames spanning packets) always is.
    if (reserve(kH2StateBytes)) h2_state_charged_ = kH2StateBytes;
  }

  void skip_midstream_h2() {
    h2_skipped_ = true;
    ++session_.stats_.h2.midstream;
    if (requests_) requests_->stop("unfinished");
    if (responses_) responses_->stop("unfinished");
  }

  // While the client's bytes are a prefix of the HTTP/2 preface, they are held (and so are the
  // server's, when it speaks first with what looks like its SETTINGS): HTTP/2 with prior
  // knowledge once the whole preface came, else handed to the HTTP/1.x parsers as they were.
  // True when `bytes` were taken.
  bool probe_preface(int direction, std::string_view bytes, std::int64_t ts, std::uint64_t offset) {
    offset -= stream_start_[direction];
    if (direction == client_) {
      std::size_t have = preface_matched_;
      std::size_t n = std::min(bytes.size(), kHttp2Preface.size() - have);
      if (offset == have && bytes.substr(0, n) == kHttp2Preface.substr(have, n)) {
        if (have == 0) preface_ts_ = ts;
        preface_matched_ += n;
        if (preface_matched_ < kHttp2Preface.size()) return true;
        preface_matched_ = 0;
        requests_->stop();
        responses_->stop();
        start_h2(false);
        if (server_first_lost_) h2_->hole();
        if (!server_first_.empty()) {
          std::string held = std::move(server_first_);
          server_first_.clear();
          release(held.size());
          h2_->data(1, held, server_first_ts_);
        }
        h2_->data(0, bytes.substr(n), ts);
        return true;
      }
      close_probe();
      return false;
    }
    // RFC 9113 3.4: the server's preface, a SETTINGS frame, may come before the client's. Held
    // while what came so far can begin one: type 4 on stream 0.
    bool settings_first = true;
    for (std::size_t i = server_first_.size(); i < 9 && i - server_first_.size() < bytes.size(); ++i) {
      char c = bytes[i - server_first_.size()];
      if ((i == 3 && c != 4) || (i >= 5 && c != 0)) settings_first = false;
    }
    if (!server_first_lost_ && offset == server_first_.size() && settings_first &&
        server_first_.size() + bytes.size() <= kServerFirstBound && reserve(bytes.size())) {
      if (server_first_.empty()) server_first_ts_ = ts;
      server_first_.append(bytes);
      return true;
    }
    close_probe();
    return false;
  }

  // Not HTTP/2 with prior knowledge: what was held goes to the HTTP/1.x parsers, as it came.
  void close_probe() {
    preface_open_ = false;
    if (preface_matched_ > 0)
      requests_->feed(kHttp2Preface.substr(0, preface_matched_), preface_ts_, stream_start_[client_]);
    preface_matched_ = 0;
    if (!server_first_.empty()) {
      std::string held = std::move(server_first_);
      server_first_.clear();
      release(held.size());
      responses_->feed(held, server_first_ts_, stream_start_[1 - client_]);
    }
  }

  // Whether the request `wire` asks to switch to HTTP/2 (Upgrade: h2c); its HTTP2-Settings,
  // decoded, go to `settings`. Most requests carry no "h2c" at all: looked for first.
  static bool asks_h2c(std::string_view wire, std::string& settings) {
    std::string_view head = wire.substr(0, wire.find("\r\n\r\n"));
    bool mentioned = false;
    for (std::size_t i = head.find_first_of("hH"); i != std::string_view::npos && !mentioned;
         i = head.find_first_of("hH", i + 1))
      mentioned = i + 2 < head.size() && head[i + 1] == '2' && (head[i + 2] == 'c' || head[i + 2] == 'C');
    if (!mentioned) return false;
    HttpView view = HttpView::parse(wire);
    if (!view.ok()) return false;
    auto upgrade = view.header("upgrade");
    if (!upgrade) return false;
    bool h2c = false;
    std::string_view tokens = *upgrade;
    while (!tokens.empty() && !h2c) {
      std::size_t comma = tokens.find(',');
      h2c = iequals(trim_ows(tokens.substr(0, comma)), "h2c");
      tokens = comma == std::string_view::npos ? std::string_view() : tokens.substr(comma + 1);
    }
    if (!h2c) return false;
    settings.clear();
    if (auto encoded = view.header("http2-settings")) settings = base64url_decode(trim_ows(*encoded));
    return true;
  }

  // RFC 4648 5 (base64url, padding optional); what does not decode is left out.
  static std::string base64url_decode(std::string_view text) {
    std::string out;
    std::uint32_t bits = 0;
    int count = 0;
    for (char c : text) {
      int v = c >= 'A' && c <= 'Z'   ? c - 'A'
              : c >= 'a' && c <= 'z' ? c - 'a' + 26
              : c >= '0' && c <= '9' ? c - '0' + 52
              : c == '-' || c == '+' ? 62
              : c == '_' || c == '/' ? 63
                                     : -1;
      if (v < 0) break;
      bits = bits << 6 | static_cast<std::uint32_t>(v);
      count += 6;
      if (count >= 8) {
        count -= 8;
        out.push_back(static_cast<char>((bits >> count) & 0xff));
      }
    }
    return out;
  }

  // What the sender of `direction` had acknowledged when it sent the byte at `offset`: the
  // acknowledgement of the latest segment starting at or before it (a message start found in
  // the tail kept while seeking may lie in an earlier segment than the one just fed).
  Acknowledged acknowledged(int direction, std::uint64_t offset) const {
    const auto& recent = recent_[direction];
    std::uint64_t n = recent_next_[direction];
    for (std::uint64_t k = 0; k < recent.size() && k < n; ++k) {
      const SegmentPosition& s = recent[(n - 1 - k) % recent.size()];
      if (s.offset <= offset) return {s.ack, s.has_ack};
    }
    return {};
  }
  std::optional<std::uint64_t> offset_in_responses(const Acknowledged& a) const {
    return a.offset(tcp_.sequence[1 - client_]);
  }
  std::optional<std::uint64_t> offset_in_requests(const Acknowledged& a) const {
    return a.offset(tcp_.sequence[client_]);
  }

  void push_lost(bool junk, Acknowledged acked) {
    if (!pending_.empty() && pending_.back().lost && !pending_.back().answered) {
      pending_.back().junk |= junk;
      pending_.back().acked = acked;
      return;
    }
    if (pending_.size() >= session_.config_.max_pending_requests) retire_front();
    make_queue_room();
    PendingRequest lost;
    lost.lost = true;
    lost.junk = junk;
    lost.acked = acked;
    lost.complete = true;
    pending_.push_back(std::move(lost));
  }

  // A client that sends a request before it received the previous one's response pipelines;
  // on such a connection position is the only pairing rule, and after a gap nothing pairs.
  void note_pipelining(const PendingRequest& next) {
    if (pending_.empty() || pipelined_) return;
    const PendingRequest& previous = pending_.back();
    if (previous.junk) return;  // junk is not a request waiting for an answer
    // Raw numbers compare for equality before the other direction's sequence space is known.
    if (previous.acked.known && next.acked.known && previous.acked.ack == next.acked.ack)
      pipelined_ = true;  // nothing received between the two
    auto now = offset_in_responses(next.acked);
    if (now && previous.answered && previous.response_end != 0 && *now < previous.response_end) pipelined_ = true;
  }

  const PendingRequest* entry(std::uint64_t number) const {
    if (number == kNone || number < front_number_ || number - front_number_ >= pending_.size()) return nullptr;
    return &pending_[number - front_number_];
  }
  PendingRequest* entry(std::uint64_t number) {
    return const_cast<PendingRequest*>(std::as_const(*this).entry(number));
  }
  HttpStreamParser& parser_for(int direction) { return direction == client_ ? *requests_ : *responses_; }
  PendingRequest* current_request() { return entry(current_number_); }
  PendingRequest* response_target() { return entry(response_target_); }

  // The oldest entry leaves the queue (bound reached): a request still waiting is counted.
  void retire_front() {
    PendingRequest& front = pending_.front();
    if (session_.config_.track_response && !front.lost && !front.answered && !front.dropped)
      ++session_.stats_.responses_missing;
    if (front.early_response) drop_early_response(front, front.drop_reason);
    pending_.pop_front();
    ++front_number_;
    if (cursor_ < front_number_) cursor_ = front_number_;
    if (queue_room_ > kQueueBlock && pending_.size() + 2 * kQueueBlock <= queue_room_) {
      queue_room_ -= kQueueBlock;
      session_.reassembler_.release(nullptr, kQueueBlock * kQueueEntryBytes);
    }
  }

  // Room in the queue for one more entry, charged to the memory budget a block at a time. When
  // the budget refuses it, the oldest entries leave as at max_pending_requests, and the
  // responses that follow must be proven by the acknowledgement numbers: a response to a
  // request no longer queued must not be taken for the next one's.
  void make_queue_room() {
    while (pending_.size() >= queue_room_) {
      if (session_.reassembler_.reserve(nullptr, kQueueBlock * kQueueEntryBytes)) {
        queue_room_ += kQueueBlock;
        return;
      }
      retire_front();
      in_step_ = false;
    }
  }

  void drop_early_response(PendingRequest& p, DropReason reason) {
    release(std::exchange(p.early_response_cost, 0));
    p.early_response.reset();
    session_.drop(reason);
  }

  // Forgets requests done with (complete and answered, or passed over), from the front. Every
  // entry before the cursor is answered; without responses in the capture a request is
  // answered as soon as it is whole.
  void release_finished() {
    while (!pending_.empty() && pending_.front().answered && pending_.front().complete &&
           pending_.front().early_response == nullptr)
      retire_front();
    while (pending_.size() > session_.config_.max_pending_requests) retire_front();
  }

  // Requests from the cursor up to `number` (excluded) will get no response: theirs were lost.
  void pass_over(std::uint64_t number) {
    for (; cursor_ < number; ++cursor_) {
      PendingRequest* p = entry(cursor_);
      if (p == nullptr || p->answered) continue;
      p->answered = true;
      if (!p->lost && !p->dropped && session_.config_.track_response) ++session_.stats_.responses_missing;
    }
  }

  // Which request the response beginning now answers (response_target_), or none.
  void begin_response(HttpStreamParser& parser) {
    response_target_ = kNone;
    response_skipped_junk_ = false;
    response_refused_ = std::nullopt;
    if (parser.message_resynchronised()) in_step_ = false;
    std::uint64_t begin = parser.message_begin();
    std::optional<std::uint64_t> server_acked = offset_in_requests(acknowledged(1 - client_, begin));
    while (entry(cursor_) != nullptr && entry(cursor_)->answered) ++cursor_;
    PendingRequest* next = entry(cursor_);
    if (next == nullptr) {
      // No request seen that it could answer (its request was lost, or is late in the
      // capture): the requests that come next no longer line up with the responses.
      response_refused_ = DropReason::unmatched_response;
      in_step_ = false;
      return;
    }
    if (in_step_ && !next->lost) {
      if (could_answer(*next, begin, server_acked)) {
        response_target_ = cursor_;
      } else {
        // It answers something sent before the requests seen (or the numbers contradict the
        // order): not this request.
        response_refused_ = DropReason::unmatched_response;
        in_step_ = false;
      }
      return;
    }
    std::uint64_t proven = proven_request(begin, server_acked);
    if (proven == kNone) {
      response_refused_ = DropReason::ambiguous_response;
      // It answers the request at the cursor or a later one: the one at the cursor is done.
      if (!next->lost) pass_over(cursor_ + 1);
      return;
    }
    for (std::uint64_t n = cursor_; n < proven; ++n)
      if (entry(n)->junk) response_skipped_junk_ = true;
    pass_over(proven);
    response_target_ = proven;
  }

  // Order says the response answers `p`; the acknowledgement numbers must not deny it.
  bool could_answer(const PendingRequest& p, std::uint64_t begin, std::optional<std::uint64_t> server_acked) const {
    if (server_acked && *server_acked <= p.begin_offset) return false;  // the server had not seen it
    auto client_acked = offset_in_responses(p.acked);
    if (client_acked && *client_acked > begin) return false;  // the client had it before asking
    return true;
  }

  // After a loss of step: the request the acknowledgement numbers prove this response answers.
  std::uint64_t proven_request(std::uint64_t begin, std::optional<std::uint64_t> server_acked) const {
    if (pipelined_ || !server_acked) return kNone;
    // Requests never seen, sent by a client whose state then is unknown (the start of a capture
    // on a running connection): whether it waited after them cannot be told from the first
    // request after them. A later one can: the client received response bytes between the two.
    bool after_unknown = false;
    bool previous_known = false;      // the request before has a known acknowledgement:
    std::uint64_t previous_acked = 0;  // this one
    for (std::uint64_t n = cursor_; entry(n) != nullptr; ++n) {
      const PendingRequest& p = *entry(n);
      if (p.lost) {
        if (!p.junk && !p.acked.known) after_unknown = true;
        if (!p.junk) previous_known = false;
        continue;
      }
      auto client_acked = offset_in_responses(p.acked);
      if (!p.answered && client_acked && *client_acked == begin) {
        if (after_unknown && !(previous_known && previous_acked < *client_acked)) return kNone;
        // Every response byte before this one had reached the client when it sent `p`: with no
        // pipelining the response to any earlier request lies before it. The server had
        // received `p` (its first byte at least: early answers) and nothing after it.
        if (*server_acked <= p.begin_offset) return kNone;
        std::uint64_t received_end = p.complete ? p.end_offset : requests_->position();
        if (*server_acked > received_end) return kNone;
        return n;
      }
      previous_known = client_acked.has_value();
      previous_acked = client_acked.value_or(0);
    }
    return kNone;
  }

  // Why a message cannot be emitted as it is, or nullopt when it can. A message whose bytes the
  // memory budget took was counted then (on_budget_exceeded); bytes it gave up are not emitted
  // even with allow_incomplete.
  std::optional<DropReason> refusal(const ParsedMessage& m) const {
    if (m.over_budget) return DropReason::budget_exceeded;
    if (m.too_large) return DropReason::too_large;
    if (m.incomplete_reason.empty()) return std::nullopt;
    DropReason reason = reason_from_text(m.incomplete_reason);
    if (reason == DropReason::parse_error || reason == DropReason::budget_exceeded ||
        !session_.config_.allow_incomplete)
      return reason;
    return std::nullopt;
  }

  // Counts `m` dropped for `reason`, unless the memory budget's eviction already counted it.
  void lose(const ParsedMessage& m, DropReason reason) {
    if (!m.over_budget) session_.drop(reason);
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
    out->meta.tls = tls_meta_;
    if (out->meta.incomplete) ++session_.stats_.incomplete_emitted;
    return out;
  }

  void on_request(ParsedMessage&& m) {
    PendingRequest* p = current_request();
    current_number_ = kNone;
    if (auto reason = refusal(m)) {
      lose(m, *reason);
      if (p != nullptr) {
        p->complete = true;
        p->end_offset = m.end_offset;
        p->dropped = true;  // its response, if one comes, goes with it
        p->drop_reason = *reason;
        // Bytes that never made a request line are junk, not a request: a server may answer
        // them or not, so the queue no longer knows where it stands.
        if (*reason == DropReason::parse_error && p->method == 0 && !p->answered) {
          p->lost = true;
          p->junk = true;
        }
        if (p->early_response) drop_early_response(*p, *reason);  // the response went with its request
      }
      return;
    }
    std::string fresh_id;  // a request whose start was never reported has no pending entry
    if (p == nullptr) fresh_id = new_message_id();
    std::string_view id = p == nullptr ? std::string_view(fresh_id) : std::string_view(p->id);
    if (p != nullptr) {
      p->complete = true;
      p->last_byte_ns = m.last_byte_ns;
      p->end_offset = m.end_offset;
      if (!session_.config_.responses_seen) p->answered = true;  // nothing to wait for
      p->h2c = asks_h2c(m.wire(), upgrade_settings_);
    }
    auto out = make_message(Kind::request, id, m);
    if (!session_.config_.realip_header.empty())
      out->payload = http_set_header(out->payload, session_.config_.realip_header, client_endpoint_.address);
    ++session_.stats_.requests;
    session_.emit_(std::move(out));
    if (p != nullptr && p->early_response) {
      ++session_.stats_.responses;
      release(std::exchange(p->early_response_cost, 0));
      session_.emit_(std::move(p->early_response));
      p->early_response.reset();
    }
  }

  void on_response(ParsedMessage&& m) {
    bool interim = m.status / 100 == 1 && m.status != 101;
    if (interim && m.incomplete_reason.empty() && !m.too_large) {
      ++session_.stats_.interim_responses;  // 100 Continue & co: the final response follows
      if (response_target_ != kNone) in_step_ = true;  // and answers the same request
      return;
    }
    if (m.status == 0 && m.incomplete_reason == "parse_error") {
      in_step_ = false;  // not a response: junk on the server's side
      lose(m, DropReason::parse_error);
      return;
    }
    PendingRequest* p = response_target();
    if (p == nullptr) {
      lose(m, response_refused_.value_or(DropReason::unmatched_response));
      return;
    }
    p->answered = true;
    p->response_end = m.end_offset;
    cursor_ = response_target_ + 1;
    in_step_ = true;
    if (PendingRequest* following = entry(cursor_); following != nullptr && !following->lost && !pipelined_) {
      auto acked = offset_in_responses(following->acked);
      if (acked && *acked < m.end_offset) pipelined_ = true;  // sent before this response was whole
    }
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
    if (switched && m.incomplete_reason.empty() && m.status == 101 && p->h2c) {
      // HTTP/2 from here on (RFC 7540 3.2): the 101 is an interim answer, and the response to
      // the upgrade request comes on stream 1, with its id.
      ++session_.stats_.upgrades;
      ++session_.stats_.interim_responses;
      start_h2(true);
      std::optional<DropReason> dropped;
      if (p->dropped) dropped = p->drop_reason;
      h2_->adopt_upgrade(p->id, p->method == HTTP_HEAD, p->last_byte_ns, upgrade_settings_, dropped);
      std::string().swap(upgrade_settings_);
      requests_->hand_over();
      responses_->hand_over();
      return;
    }
    if (switched && m.incomplete_reason.empty()) {
      ++session_.stats_.upgrades;
      requests_->stop();
      responses_->stop();
    } else if (m.closes && m.incomplete_reason.empty() && p->complete) {
      // The server closes after answering (nginx's 400 to a refused request): whatever the
      // client sent after that request, the server never read as a request. Not mined.
      requests_->stop("unfinished");
    } else if (requests_->state() == HttpStreamParser::State::upgraded) {
      requests_->resume_after_refused_upgrade(m.last_byte_ns);
    }
    if (p->dropped) {
      lose(m, p->drop_reason);
      return;
    }
    if (!session_.config_.track_response) return;
    if (response_skipped_junk_ && m.status == 400) {
      // Junk came before the request: this 400 may well be the server's answer to the junk.
      lose(m, DropReason::ambiguous_response);
      return;
    }
    if (auto reason = refusal(m)) {
      lose(m, *reason);
      return;
    }
    auto out = make_message(Kind::response, p->id, m);
    if (!p->complete) {
      // Answered before the request was whole (an upload refused early): it goes out after
      // its request, or with it when the request is dropped. Held, it is charged to the budget.
      ++session_.stats_.early_responses;
      std::size_t cost = held_message_cost(*out);
      if (!reserve(cost)) {
        session_.drop(DropReason::budget_exceeded);
        return;
      }
      out->latency_ns = 0;
      p->early_response = std::move(out);
      p->early_response_cost = cost;
      return;
    }
    out->latency_ns = std::max<std::int64_t>(0, m.first_byte_ns - p->last_byte_ns);
    ++session_.stats_.responses;
    session_.emit_(std::move(out));
  }

  CaptureSession::Impl& session_;
  TcpConnection& tcp_;
  int client_ = -1;
  std::unique_ptr<HttpStreamParser> requests_, responses_;
  std::deque<PendingRequest> pending_;
  std::size_t counted_pending_ = 0, counted_streams_ = 0;  // in session_.stats_.tables (count_tables)
  std::uint64_t front_number_ = 0;       // number of pending_.front() in the connection's requests
  std::uint64_t current_number_ = kNone;  // the request being parsed
  std::uint64_t cursor_ = 0;             // the first request the next response may answer
  std::uint64_t response_target_ = kNone;  // the request the response being parsed answers
  std::optional<DropReason> response_refused_;  // why the response being parsed has none
  bool response_skipped_junk_ = false;
  bool in_step_ = false;    // the response stream is known to be in step with the request queue
  bool pipelined_ = false;  // a request was sent before the previous response was whole
  bool in_response_ = false;  // on_response runs: requests stay where they are
  std::array<std::array<SegmentPosition, 8>, 2> recent_{};  // latest segments delivered, per direction
  std::array<std::uint64_t, 2> recent_next_{};
  Endpoint client_endpoint_, server_endpoint_;
  std::size_t queue_room_ = kQueueBlock;  // queue entries charged (the first block with the connection)
  // HTTP/2
  static constexpr std::size_t kServerFirstBound = 16384;  // a server preface is a SETTINGS frame or two
  static constexpr std::size_t kH2StateBytes = sizeof(Http2Exchange) + 2 * (4096 + 1024);
  std::size_t h2_state_charged_ = 0;
  std::unique_ptr<Http2Exchange> h2_;
  bool h2_skipped_ = false;   // HTTP/2 with no start seen: nothing is decoded (h2.midstream)
  bool h1_seen_ = false;      // an HTTP/1.x message was found on the connection
  bool preface_open_ = false;  // the client's bytes so far are a prefix of the HTTP/2 preface
  std::size_t preface_matched_ = 0;
  std::int64_t preface_ts_ = 0;
  std::string server_first_;  // the server's bytes sent before the client's first (charged)
  std::int64_t server_first_ts_ = 0;
  bool server_first_lost_ = false;  // the memory budget took them
  std::string upgrade_settings_;    // the HTTP2-Settings of the h2c upgrade request in progress
  std::array<std::uint64_t, 2> stream_start_{};  // per direction: the offset of its first byte delivered
  // TLS
  std::unique_ptr<TlsDecoder> tls_;
  std::shared_ptr<const TlsMeta> tls_meta_;  // set once keyed: every message's meta.tls
  bool tls_failed_ = false;                  // the decoder ended: nothing more is decrypted
  bool tls_skipped_ = false;                 // TLS that cannot be decrypted: nothing is read
  bool tls_waiting_ = false;                 // in session_.tls_waiting_
  bool in_tls_ = false;                      // inside a call into the decoder
  bool tls_shed_pending_ = false;
  bool plain_fed_ = false;                   // bytes went to the HTTP path as captured: not TLS
  std::string tls_probe_;                    // first bytes that may begin a ClientHello (< 11)
  std::int64_t tls_probe_ts_ = 0;  // when, and where in its stream, they began
  SegmentPosition tls_probe_position_;
  int tls_probe_direction_ = 0;
  std::array<bool, 2> bytes_seen_{};         // per direction: bytes (or a loss) were delivered
  std::array<std::uint64_t, 2> plain_offset_{};   // per direction: decrypted bytes so far
  std::array<std::int64_t, 2> pending_end_{-1, -1};  // a direction's end, while its records are held
  // Ciphertext put in order (order_ciphertext), and a server's first records held for the
  // ClientHello (probe_tls); charged.
  struct HeldCiphertext {
    std::string bytes;
    std::int64_t ts = 0;
    SegmentPosition position;
    std::uint64_t arrival = 0;  // capture order among held segments
  };
  static constexpr std::size_t kCiphertextHeldBound = std::size_t{1} << 20;
  std::array<std::deque<HeldCiphertext>, 2> ciphertext_held_;
  std::size_t ciphertext_held_bytes_ = 0;
  std::uint64_t ciphertext_arrival_ = 0;
  std::array<std::uint64_t, 2> ciphertext_fed_end_{};  // per direction: stream offset past what was fed
  std::array<bool, 2> stream_ended_{};                 // per direction: its FIN was delivered
};

HttpConnection& http_of(TcpConnection& c) { return static_cast<HttpConnection&>(*c.state); }

CaptureConfig with_state_cost(CaptureConfig config) {
  // What a connection costs besides the bytes it holds, charged with its flow: its HTTP side
  // with both parsers, the request queue as libstdc++ allocates it up front (a map and one
  // 512-byte node) with room for its first block of entries, the endpoints' text (IPv6 is past
  // std::string's inner room) and the allocator's headers.
  config.limits.connection_state_bytes = sizeof(HttpConnection) + 2 * sizeof(HttpStreamParser) + 64 + 512 +
                                         kQueueBlock * kQueueEntryBytes + 2 * 48 + 8 * 16;
  return config;
}

}  // namespace

void CaptureSession::Impl::on_open(TcpConnection& connection) {
  connection.state = std::make_unique<HttpConnection>(*this, connection);
}
void CaptureSession::Impl::on_data(TcpConnection& connection, int direction, std::string_view bytes,
                                   std::int64_t ts, const SegmentPosition& position) {
  HttpConnection& http = http_of(connection);
  http.data(direction, bytes, ts, position);
  http.count_tables();
}
void CaptureSession::Impl::on_hole(TcpConnection& connection, int direction, std::uint64_t length,
                                   HoleReason reason, std::int64_t ts) {
  HttpConnection& http = http_of(connection);
  http.hole(direction, length, reason, ts);
  http.count_tables();
}
void CaptureSession::Impl::on_end(TcpConnection& connection, int direction, std::int64_t ts) {
  HttpConnection& http = http_of(connection);
  http.end(direction, ts);
  http.count_tables();
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

void CaptureSession::Impl::advance(std::int64_t now_ns) {
  if (!tls_waiting_.empty()) {
    config_.tls_keys->refresh();
    // A copy: a connection whose wait ends leaves the set.
    std::vector<HttpConnection*> waiting(tls_waiting_.begin(), tls_waiting_.end());
    for (HttpConnection* connection : waiting) {
      connection->advance_tls(now_ns);
      connection->count_tables();
    }
  }
  reassembler_.advance(now_ns);
}

void CaptureSession::advance(std::int64_t now_ns) { impl_->advance(now_ns); }

void CaptureSession::finish(std::int64_t now_ns) { impl_->reassembler_.close_all(now_ns); }

CaptureStats CaptureSession::stats() const {
  CaptureStats s = impl_->stats_;
  s.reassembly = impl_->reassembler_.stats();
  s.tables.connections = impl_->reassembler_.connections();
  s.tables.tls_awaiting_keys = impl_->tls_waiting_.size();
  return s;
}

std::size_t CaptureSession::connections() const { return impl_->reassembler_.connections(); }

}  // namespace doppel::plugins::raw
