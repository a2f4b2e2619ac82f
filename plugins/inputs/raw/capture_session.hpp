#pragma once
// The whole capture path after libpcap: frame -> PacketDecoder -> TcpReassembler ->
// (TlsDecoder, on a connection opening with a ClientHello) -> HttpStreamParser per direction -> request/response messages paired on their connection by
// order and by the TCP acknowledgement numbers; or, on an HTTP/2 connection (prior knowledge or
// Upgrade: h2c), Http2FrameParser per direction -> messages paired by their stream. Knows
// nothing of pcap handles or the runtime, so tests and fuzzers drive it with frames they build.
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "doppel/message.hpp"
#include "packet_decoder.hpp"
#include "tcp_reassembler.hpp"
#include "tls_decoder.hpp"

namespace doppel::plugins::raw {

class TlsKeySource;

struct CaptureConfig {
  bool track_response = false;
  // The capture sees the server's side too. When it does not (a filter taking packets to the
  // server only), requests need no answer to be done with, and a request switching protocols
  // (Upgrade, CONNECT) ends HTTP on its connection at once.
  bool responses_seen = true;
  bool allow_incomplete = false;
  std::size_t max_message_size = std::size_t{64} << 20;
  std::size_t max_pending_requests = 1024;  // requests awaiting their response, per connection
  std::vector<std::uint16_t> server_ports;  // tells client from server when the SYN was not seen
  std::string realip_header;                // added to requests with the client address
  ReassemblyLimits limits;
  // TLS connections are decrypted with these secrets (tls_keylog, a pcapng's own); null: they
  // are counted (tls.connections, tls.no_key) and skipped, never parsed as HTTP.
  std::shared_ptr<TlsKeySource> tls_keys;
  TlsKeyLogLimits keylog_limits;  // of tls_keys, and of the one a pcapng's embedded secrets make
  TlsLimits tls_limits;
};

// Why a message was not emitted. Each is a `dropped.<name>` metric of the stage.
enum class DropReason {
  truncated,           // snaplen cut bytes of it
  gap,                 // bytes of its stream were never captured
  parse_error,         // not HTTP/1.x
  too_large,           // larger than max_message_size
  expired,             // its connection went idle before it finished
  unfinished,          // its connection closed (or the capture ended) before it finished
  unmatched_response,  // a response with no request seen on its connection
  flow_table_full,     // packets of a connection refused because max_connections were tracked
  ambiguous_response,  // after a loss of step, the acknowledgement numbers did not prove its request
  ambiguous_framing,   // a request framed two ways (RFC 9112 6.3: smuggling); its connection's later requests too
  budget_exceeded,     // its bytes were given up to the memory budget (limits.memory_budget)
  stream_reset,        // HTTP/2: its stream was reset (RST_STREAM) before it ended
  malformed,           // HTTP/2: a stream that is not a valid request or response (RFC 9113 8.1-8.3)
  pushed,              // HTTP/2: a server push (promised request and its response), not emitted
  decode_error,        // HTTP/2: in progress when its connection could no longer be decoded (frame or HPACK error)
};
inline constexpr std::size_t kDropReasonCount = 15;
std::string_view drop_reason_name(DropReason reason);

// HTTP/2 connections (prior knowledge or Upgrade: h2c), each an `h2.<name>` metric.
struct Http2Stats {
  std::uint64_t connections = 0;        // decoded from their start
  std::uint64_t midstream = 0;          // HTTP/2 frames with no start seen: HPACK state unknown, skipped
  std::uint64_t streams = 0;            // requests' streams begun
  std::uint64_t resets = 0;             // RST_STREAM frames
  std::uint64_t goaways = 0;            // GOAWAY frames
  std::uint64_t gaps = 0;               // connections whose decoding stopped at bytes never captured
  std::uint64_t frame_errors = 0;       // connections whose decoding stopped at a malformed frame
  std::uint64_t hpack_errors = 0;       // connections whose decoding stopped at a header block HPACK refused
  std::uint64_t streams_abandoned = 0;  // streams given up unfinished (gap, error, close, expiry)
  Http2Stats& operator+=(const Http2Stats& other);
};

// TLS connections, each a `tls.<name>` metric.
struct TlsStats {
  std::uint64_t connections = 0;  // begun with a ClientHello
  std::uint64_t decrypted = 0;    // whose secrets were found: their application data is parsed
  std::uint64_t resumed = 0;      // part of decrypted: abbreviated handshakes (tickets, session ids, PSK)
  std::uint64_t midstream = 0;    // TLS records with no ClientHello seen: nothing can be decrypted
  std::uint64_t failed[kTlsFailureCount] = {};  // by TlsFailure (none unused)
  std::map<std::string, std::uint64_t> unsupported_ciphers;  // part of failed[unsupported_cipher], by name
  TlsStats& operator+=(const TlsStats& other);
};

// The tables of a capture that grow with its traffic, their sizes now: each a `table.<name>`
// gauge of the stage (docs/operations.md, "Days-long runs").
struct CaptureTables {
  std::uint64_t connections = 0;        // TCP connections tracked (max_connections, memory_budget; expire)
  std::uint64_t pending_requests = 0;   // HTTP/1.x requests awaiting their response, all connections
  std::uint64_t h2_streams = 0;         // HTTP/2 streams open, all connections
  std::uint64_t tls_awaiting_keys = 0;  // TLS connections whose records wait for their secrets (tls_key_wait)
  CaptureTables& operator+=(const CaptureTables& other);
};

struct CaptureStats {
  std::uint64_t packets = 0;
  std::uint64_t bytes = 0;  // as on the wire
  std::uint64_t packets_not_tcp = 0;
  std::uint64_t packets_fragment = 0;
  std::uint64_t packets_truncated = 0;  // headers cut by snaplen
  std::uint64_t packets_malformed = 0;  // bogus versions or lengths
  std::uint64_t requests = 0;
  std::uint64_t responses = 0;
  std::uint64_t interim_responses = 0;  // 1xx before the final response, not emitted
  std::uint64_t upgrades = 0;           // connections that left HTTP/1.x (101, CONNECT)
  std::uint64_t responses_missing = 0;  // requests whose response was never seen
  std::uint64_t early_responses = 0;    // responses begun before their request was whole
  std::uint64_t incomplete_emitted = 0; // messages emitted marked incomplete
  std::uint64_t dropped[kDropReasonCount] = {};
  Http2Stats h2;
  TlsStats tls;
  ReassemblyStats reassembly;
  CaptureTables tables;
  CaptureStats& operator+=(const CaptureStats& other);  // sums the sessions of one capture
};

class CaptureSession {
 public:
  using Emit = std::function<void(Message&&)>;
  // The message already shared, built in place: the hot path (RawInput) moves no Message.
  using EmitShared = std::function<void(std::shared_ptr<Message>&&)>;
  CaptureSession(CaptureConfig config, Emit emit);
  // `budget`: shared by the sessions that each own part of one capture's connections.
  CaptureSession(CaptureConfig config, EmitShared emit, std::shared_ptr<ReassemblyBudget> budget = nullptr);
  ~CaptureSession();

  void add_frame(int link_type, const std::uint8_t* data, std::size_t caplen, std::size_t wirelen,
                 std::int64_t timestamp_ns);
  // A frame already decoded (add_frame is decode_packet, then this).
  void add_decoded(DecodeStatus status, const TcpSegment& segment, std::size_t wirelen, std::int64_t timestamp_ns);
  void add_segment(const TcpSegment& segment, std::int64_t timestamp_ns);
  // Live capture with no packets: lets idle connections expire.
  void advance(std::int64_t now_ns);
  // End of capture: completes what can be completed, counts the rest.
  void finish(std::int64_t now_ns);

  CaptureStats stats() const;
  std::size_t connections() const;

  class Impl;

 private:
  std::unique_ptr<Impl> impl_;
};

}  // namespace doppel::plugins::raw
