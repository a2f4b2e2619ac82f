#pragma once
// HTTP/1.x message boundaries in one direction of a TCP connection, found by llhttp. The
// parser slices the stream into messages exactly as they were on the wire, resynchronises at
// the next message start after a hole or garbage, and asks its listener the few things only
// the connection knows (was the request a HEAD? did the protocol switch?).
#include <llhttp.h>

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

namespace doppel::plugins::raw {

struct ParsedMessage {
  std::string bytes;                  // as on the wire (bytes of holes left out), gathered
  // When the whole message came in one chunk: its bytes where they are, valid during
  // on_message only (`bytes` is then empty).
  std::string_view in_place;
  std::int64_t first_byte_ns = 0;
  std::int64_t last_byte_ns = 0;
  std::string_view incomplete_reason; // "" when every byte was seen and parsed
  std::uint64_t begin_offset = 0;     // stream offsets (see HttpStreamParser::feed) of the first byte
  std::uint64_t end_offset = 0;       //   and of the byte after the last one framed
  bool resynchronised = false;        // found by seeking after a hole, an error or a mid-stream start
  int status = 0;                     // responses
  std::uint8_t method = 0;            // requests: llhttp_method, or kExtensionMethod
  bool closes = false;                // the sender closes after it (Connection: close, HTTP/1.0, close-delimited)
  bool too_large = false;             // bytes beyond max_message_size were not kept
  bool over_budget = false;           // its bytes were given up to the memory budget (told: on_budget_exceeded)

  std::string_view wire() const { return in_place.data() != nullptr ? in_place : std::string_view(bytes); }
};

// The method of a request whose method llhttp does not know (RFC 9110 allows any token, e.g.
// WebDAV's BDELETE or QUERY): framed like any other, with no semantics of its own.
inline constexpr std::uint8_t kExtensionMethod = 255;

class HttpStreamParser;

// Where a parser's buffers are charged (the capture's memory budget, via its connection).
class MemoryAccount {
 public:
  virtual ~MemoryAccount() = default;
  // Charges `bytes` about to be held; false, nothing charged, when the budget refuses them (the
  // parser may have been told to shed() meanwhile).
  virtual bool reserve(std::size_t bytes) = 0;
  virtual void release(std::size_t bytes) = 0;
};

class HttpMessageListener {
 public:
  virtual ~HttpMessageListener() = default;
  // A message's first byte was seen (requests: the connection queues it for pairing). Its
  // offset and whether it was found by seeking: parser.message_begin(), message_resynchronised().
  virtual void on_message_begin(HttpStreamParser& parser, std::int64_t timestamp_ns) = 0;
  // Headers parsed. For responses, return what the body looks like given the request:
  //   0 normal, 1 no body (answer to HEAD), 2 no body and the protocol switches (CONNECT 2xx).
  virtual int on_headers(HttpStreamParser& parser, int status, std::uint8_t method) = 0;
  // A message is complete, or was abandoned (incomplete_reason says why).
  virtual void on_message(HttpStreamParser& parser, ParsedMessage&& message) = 0;
  // The parser found a message start after passing over `skipped` bytes of a message it never
  // reported (mid-stream start, a hole between messages): that message's answer will come.
  virtual void on_unreported_skip(HttpStreamParser& parser, std::uint64_t skipped) = 0;
  // The stream stopped being HTTP/1.x after the last message (Upgrade, CONNECT).
  virtual void on_upgrade(HttpStreamParser& parser) = 0;
  // The message in progress lost its bytes to the memory budget: it is still framed (the stream
  // stays in sync) and reported to on_message with over_budget. Told once per message, at once.
  virtual void on_budget_exceeded(HttpStreamParser&) {}
  // After hand_over(): the bytes that followed the message that switched protocols (held since
  // an upgrade request, or after a 101 in the same packet), for the listener to decode. `lost`:
  // some of them were not kept (a hole, or over the bounds while held).
  virtual void on_handed_over(HttpStreamParser&, std::string_view, std::uint64_t /*offset*/, std::int64_t /*ts*/,
                              bool /*lost*/) {}
};

class HttpStreamParser {
 public:
  enum class Side { request, response };
  enum class State {
    seeking,   // looking for the start of a message (mid-stream start, after a hole or an error)
    parsing,   // in sync with the message framing
    upgraded,  // a request asked to switch protocols: bytes are held until the answer is known
    stopped,   // no longer HTTP/1.x: bytes are ignored
  };

  // `in_sync`: the stream is known to start at a message (its SYN was seen).
  // `plain_framing`: frame whole messages with plain framing without llhttp (see
  // frame_plain_message); off only to compare both paths in tests.
  // `memory`: where every buffer's growth is charged first; null: not accounted.
  HttpStreamParser(Side side, HttpMessageListener& listener, bool in_sync, bool keep_bytes,
                   std::size_t max_message_size, bool plain_framing = true, MemoryAccount* memory = nullptr);
  ~HttpStreamParser();
  HttpStreamParser(const HttpStreamParser&) = delete;
  HttpStreamParser& operator=(const HttpStreamParser&) = delete;

  // `offset`: where `bytes` start in the stream (the reassembler's offsets; holes count). Without
  // it the bytes follow the last ones fed.
  void feed(std::string_view bytes, std::int64_t timestamp_ns, std::uint64_t offset);
  void feed(std::string_view bytes, std::int64_t timestamp_ns) { feed(bytes, timestamp_ns, position_); }
  // `length` bytes that will never be seen, because of `reason` ("gap", "truncated").
  void hole(std::uint64_t length, std::string_view reason, std::int64_t timestamp_ns);
  // The sender closed: completes a close-delimited message; a message cut short is abandoned.
  void end(std::int64_t timestamp_ns, std::string_view reason_if_cut);
  // After `upgraded`: the switch happened (stop) or was refused (parse the held bytes). Also
  // ends a stream whose receiver closed: a message in progress is abandoned with `reason`.
  void stop(std::string_view reason = "upgraded");
  void resume_after_refused_upgrade(std::int64_t timestamp_ns);
  // The protocol switched to one the listener decodes (HTTP/2 after `Upgrade: h2c`): the stream
  // stops being HTTP/1.x, and the bytes after the switching message go to on_handed_over — at
  // once when held (upgraded), or when the packet holding the switching response is done.
  void hand_over();
  // The memory budget evicts this stream's bytes: they are freed at once, without a call into
  // the stream (a message in progress is told to on_budget_exceeded and framed on without its
  // bytes; a request head cut short cannot be, and the next message is sought at the next bytes).
  void shed();
  std::size_t charged_bytes() const { return charged_; }  // to the MemoryAccount, now

  Side side() const { return side_; }
  State state() const { return state_; }
  bool in_message() const { return in_message_; }
  std::uint64_t parse_errors() const { return parse_errors_; }
  std::uint64_t skipped_bytes() const { return skipped_bytes_; }  // passed over while seeking
  // The message being parsed (valid from on_message_begin to on_message).
  std::uint64_t message_begin() const { return message_.begin_offset; }
  bool message_resynchronised() const { return message_.resynchronised; }
  std::uint64_t position() const { return position_; }  // offset of the next byte to come

 private:
  static int on_headers_complete_cb(llhttp_t* parser);
  static int on_message_complete_cb(llhttp_t* parser);

  void parse(const char* data, std::size_t size, std::int64_t ts, std::uint64_t offset);
  std::uint64_t offset_at(const char* p) const { return base_offset_ + static_cast<std::uint64_t>(p - base_); }
  std::size_t frame_plain_message(const char* data, std::size_t size);
  void seek(std::string_view bytes, std::int64_t ts, std::uint64_t offset, bool packet_start);
  void append(const char* begin, const char* end, std::int64_t ts);
  void complete(std::int64_t ts);
  void abandon(std::string_view reason, std::int64_t ts);
  void restart_parser();
  bool parse_failed() const;
  bool room_for(std::string& buffer, std::size_t size);
  void settle();
  void give_up_message();
  void lose_head(std::int64_t ts);
  bool gate_request_head(const char*& p, const char* end, std::int64_t ts);
  void fail(std::uint64_t at, std::string_view rest, std::uint64_t rest_offset, std::int64_t ts, bool after_request_line);

  Side side_;
  HttpMessageListener& listener_;
  bool keep_bytes_;
  std::size_t max_message_size_;
  bool plain_framing_;
  bool llhttp_in_message_ = false;  // llhttp saw bytes of the current message
  State state_;
  llhttp_t parser_;
  llhttp_settings_t settings_;
  bool in_message_ = false;
  bool in_body_ = false;
  bool finishing_ = false;
  bool completed_by_finish_ = false;
  bool switching_ = false;      // the listener said the protocol switches after this response
  bool held_lost_ = false;      // upgraded: held bytes overflowed or had a hole
  bool handing_over_ = false;   // hand_over() called while its message completes in parse()
  std::uint64_t skipped_bytes_ = 0;
  std::uint64_t skipped_since_sync_ = 0;
  bool skip_unreported_ = false;  // seeking began without a message being reported as abandoned
  ParsedMessage message_;
  std::string carry_;  // seeking: the tail of the last chunk (a message start may straddle two)
  std::string held_;   // upgraded: bytes after the upgrade request, until the answer is known
  std::int64_t held_ts_ = 0;
  std::uint64_t held_offset_ = 0;
  std::uint64_t parse_errors_ = 0;
  std::uint64_t position_ = 0;        // stream offset after the last byte fed or lost
  const char* base_ = nullptr;         // parse(): the buffer being parsed, and its stream offset
  std::uint64_t base_offset_ = 0;
  bool next_resynchronised_ = false;  // seek found the start the next message begins at
  bool seek_from_boundary_ = false;   // the next byte seek sees follows a hole or starts the capture
  std::vector<std::size_t> carry_packets_;  // where packets began in carry_
  std::string head_;                  // requests: the head so far, while it straddles packets
  bool extension_method_ = false;     // llhttp parses the current request with a stand-in method
  MemoryAccount* memory_ = nullptr;
  std::size_t charged_ = 0;           // charged to memory_ for the buffers above
  bool head_lost_ = false;            // shed() freed a request head in progress
};

// Where the first complete request line (or status line) in `bytes` starts; npos when there is
// none. A request line counts only at a line start: after a line feed, or at the start of `bytes`
// with a common method when `bytes` may begin a message (a packet after a hole or a mid-stream
// start), never inside a token (BDELETE is not DELETE). Used to tell client from server when a
// connection's SYN was not seen.
std::size_t find_message_start(HttpStreamParser::Side side, std::string_view bytes, bool starts_at_boundary = true);

}  // namespace doppel::plugins::raw
