#pragma once
// HTTP/2 frames (RFC 9113 sections 4 and 6) in one direction of a connection, with the header
// blocks they carry decoded by libnghttp2's HPACK inflater (never by hand). The parser only
// finds frames and header fields; which stream a message belongs to, and when it is whole, is
// the connection's business (capture_session.cpp). A frame or HPACK error ends the direction:
// once a header block is lost, no later block can be decoded (the dynamic table is unknown).
#include <cstdint>
#include <deque>
#include <string>
#include <string_view>
#include <vector>

#include "doppel/http2.hpp"

struct nghttp2_hd_inflater;

namespace doppel::plugins::raw {

class MemoryAccount;
class Http2FrameParser;

// The client's first bytes on an HTTP/2 connection with prior knowledge (RFC 9113 3.4).
inline constexpr std::string_view kHttp2Preface = "PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";

enum class Http2Error {
  none,
  frame,   // a frame that breaks RFC 9113's rules for its type (size, stream, padding, order)
  hpack,   // a header block libnghttp2's inflater refused
  memory,  // the memory budget refused the bytes of a frame spanning packets
};

class Http2FrameListener {
 public:
  virtual ~Http2FrameListener() = default;
  // A whole header block (HEADERS and its CONTINUATIONs). `fields` in their order, pseudo-header
  // fields included; empty with `too_large` when they exceeded the parser's bound (the block was
  // still inflated: the dynamic table stays in step). `ts`: when its first frame began.
  virtual void on_headers(Http2FrameParser& parser, std::uint32_t stream, std::vector<h2::Field>&& fields,
                          bool end_stream, bool too_large, std::int64_t ts) = 0;
  // A PUSH_PROMISE's header block was inflated (and discarded).
  virtual void on_push_promise(Http2FrameParser& parser, std::uint32_t stream, std::uint32_t promised) = 0;
  // DATA without its padding.
  virtual void on_data(Http2FrameParser& parser, std::uint32_t stream, std::string_view data, bool end_stream,
                       std::int64_t ts) = 0;
  virtual void on_rst_stream(Http2FrameParser& parser, std::uint32_t stream, std::uint32_t code) = 0;
  // SETTINGS, or its acknowledgement. `header_table_size`/`max_frame_size`: 0 when not in it.
  virtual void on_settings(Http2FrameParser& parser, bool ack, std::uint32_t header_table_size,
                           std::uint32_t max_frame_size) = 0;
  virtual void on_goaway(Http2FrameParser& parser, std::uint32_t last_stream, std::uint32_t code) = 0;
};

class Http2FrameParser {
 public:
  // `side`: 0 for the client's direction, 1 for the server's (for the listener). `max_fields`:
  // bytes of header fields kept per block (names and values); more are inflated, not kept.
  // `memory`: where the bytes of a frame spanning packets are charged; null: not accounted.
  Http2FrameParser(Http2FrameListener& listener, int side, std::size_t max_fields, MemoryAccount* memory);
  ~Http2FrameParser();
  Http2FrameParser(const Http2FrameParser&) = delete;
  Http2FrameParser& operator=(const Http2FrameParser&) = delete;

  // The next bytes of the direction, after the connection preface. Stops at the first error.
  void feed(std::string_view bytes, std::int64_t timestamp_ns);

  // The peer's SETTINGS: the header table size this direction's encoder may use, and the
  // largest frame it may send. A larger table is allowed at once; a smaller one once this
  // direction acknowledged the SETTINGS (before that the encoder may still use the old size).
  // `acknowledged`: already in force (the HTTP2-Settings of an h2c upgrade, RFC 7540 3.2.1).
  // `header_table_size`: 0 when not announced, 0xffffffff for a size of 0.
  void peer_settings(std::uint32_t header_table_size, std::uint32_t max_frame_size, bool acknowledged = false);

  // The memory budget takes this parser's buffer back: a frame spanning packets is lost with it,
  // and the direction can no longer be decoded (error() says memory).
  void shed();

  int side() const { return side_; }
  Http2Error error() const { return error_; }
  std::string_view error_detail() const { return detail_; }
  bool in_header_block() const { return block_stream_ != 0; }

  // Whether `bytes` begin with, and consist of, well-formed HTTP/2 frames (known types on the
  // streams their type requires, sizes in bounds), at least one of them: what an HTTP/2
  // connection captured after its start looks like. Text (HTTP/1.x) never passes.
  static bool looks_like_frames(std::string_view bytes);

 private:
  void frame(std::uint8_t type, std::uint8_t flags, std::uint32_t stream, std::string_view payload);
  void begin_block(std::uint32_t stream, std::uint32_t promised, bool end_stream, std::string_view fragment,
                   bool end_headers);
  void inflate(std::string_view fragment, bool final);
  void apply_table_size();
  void fail(Http2Error error, std::string detail);
  bool charge(std::size_t size);

  Http2FrameListener& listener_;
  int side_;
  std::size_t max_fields_;
  MemoryAccount* memory_;
  nghttp2_hd_inflater* inflater_ = nullptr;
  Http2Error error_ = Http2Error::none;
  std::string detail_;
  std::uint32_t max_frame_size_ = 16384;  // SETTINGS_MAX_FRAME_SIZE of the peer (RFC 9113 6.5.2)
  std::string buffer_;                    // a frame spanning packets, header included
  std::size_t charged_ = 0;
  std::int64_t frame_ts_ = 0;             // when the frame in buffer_ began
  // Header table sizes the peer announced, oldest first, until this direction acknowledges them.
  std::deque<std::uint32_t> announced_sizes_;
  std::uint32_t table_size_ = 4096;       // applied to the inflater
  std::uint32_t wanted_table_size_ = 4096;  // to apply once the block in progress ends
  // The header block in progress (HEADERS or PUSH_PROMISE, then CONTINUATION).
  std::uint32_t block_stream_ = 0;
  std::uint32_t block_promised_ = 0;
  bool block_end_stream_ = false;
  bool block_too_large_ = false;
  std::size_t block_bytes_ = 0;
  std::int64_t block_ts_ = 0;
  std::vector<h2::Field> fields_;
};

}  // namespace doppel::plugins::raw
