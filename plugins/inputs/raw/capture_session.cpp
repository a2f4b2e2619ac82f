#include "capture_session.hpp"

#include <algorithm>
#include <array>
#include <optional>
#include <utility>
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
    case DropReason::ambiguous_response: return "ambiguous_response";
    case DropReason::ambiguous_framing: return "ambiguous_framing";
    case DropReason::budget_exceeded: return "budget_exceeded";
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
  reassembly += o.reassembly;
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

  CaptureConfig config_;
  EmitShared emit_;
  CaptureStats stats_;
  MessagePool pool_;  // before the reassembler: it outlives the connections that build messages
  TcpReassembler reassembler_;
};

namespace {

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
class HttpConnection : public ConnectionState, public HttpMessageListener, public MemoryAccount {
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
    // Every charge goes back while the connection is whole (the parsers' through release()).
    requests_.reset();
    responses_.reset();
    for (auto& p : pending_) release(p.early_response_cost);
    session_.reassembler_.release(nullptr, (queue_room_ - kQueueBlock) * kQueueEntryBytes);
  }

  // MemoryAccount: the parsers' buffers are this connection's to evict.
  bool reserve(std::size_t bytes) override { return session_.reassembler_.reserve(&tcp_, bytes); }
  void release(std::size_t bytes) override { session_.reassembler_.release(&tcp_, bytes); }

  // ConnectionState: evicted by the memory budget. Passive: nothing is emitted or paired here.
  void shed() override {
    if (requests_) requests_->shed();
    if (responses_) responses_->shed();
    for (auto& p : pending_)
      if (p.early_response) drop_early_response(p, DropReason::budget_exceeded);
  }

  void data(int direction, std::string_view bytes, std::int64_t ts, const SegmentPosition& position) {
    if (client_ < 0) {
      // Which side speaks first is not enough (pipelined captures start anywhere): look for a
      // status line or a request line.
      using Side = HttpStreamParser::Side;
      if (find_message_start(Side::response, bytes) != std::string_view::npos) assign_roles(1 - direction, false);
      else if (find_message_start(Side::request, bytes) != std::string_view::npos) assign_roles(direction, false);
      else return;
    }
    auto& recent = recent_[direction];
    bool first = recent_next_[direction] == 0;
    recent[recent_next_[direction]++ % recent.size()] = position;
    HttpStreamParser& parser = parser_for(direction);
    // One direction's SYN seen, not this one's (lost, or captured out of order): its bytes may
    // not begin at a message; find the first one and let pairing treat it as found by seeking.
    if (first && !tcp_.start_seen[direction] && parser.state() == HttpStreamParser::State::parsing)
      parser.hole(0, "gap", ts);
    parser.feed(bytes, ts, position.offset);
  }

  void hole(int direction, std::uint64_t length, HoleReason reason, std::int64_t ts) {
    if (client_ < 0) return;
    std::string_view why = reason == HoleReason::truncated ? "truncated"
                           : reason == HoleReason::budget  ? "budget_exceeded"
                                                           : "gap";
    parser_for(direction).hole(length, why, ts);
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
        if (!p.lost && !p.answered && !p.dropped) ++session_.stats_.responses_missing;
  }

  // HttpMessageListener
  void on_message_begin(HttpStreamParser& parser, std::int64_t ts) override {
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
  http_of(connection).data(direction, bytes, ts, position);
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
