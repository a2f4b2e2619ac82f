#pragma once
// TCP reassembly: turns decoded segments into each connection's two in-order byte streams.
// Handles reordering, retransmissions and overlaps (first copy wins), sequence wrap-around,
// SYN/FIN/RST, connections whose start was not seen, and bounded buffering: when a hole
// does not fill (lost packet, buffer bound, timeout) it is reported and skipped, never waited
// on forever.
#include <cstdint>
#include <map>
#include <memory>
#include <string>
#include <string_view>
#include <unordered_map>

#include "packet_decoder.hpp"

namespace doppel::plugins::raw {

struct ReassemblyLimits {
  std::size_t max_connections = 100000;
  std::size_t max_connection_buffer = std::size_t{4} << 20;  // out-of-order bytes held per connection
  std::size_t max_total_buffer = std::size_t{256} << 20;     // out-of-order bytes held in all
  std::int64_t idle_timeout_ns = 60'000'000'000;             // a connection silent this long is forgotten
  std::int64_t gap_timeout_ns = 2'000'000'000;               // a hole not filled this long is skipped
  std::int64_t closed_linger_ns = 2'000'000'000;             // late retransmissions after FIN/RST are ignored
};

struct ReassemblyStats {
  std::uint64_t connections_opened = 0;
  std::uint64_t connections_midstream = 0;  // opened without a SYN
  std::uint64_t connections_expired = 0;
  std::uint64_t connections_refused = 0;    // packets of a new connection refused: table full
  std::uint64_t duplicate_segments = 0;     // retransmissions, and packets seen twice (`any`)
  std::uint64_t overlapping_bytes = 0;      // bytes dropped because an earlier copy was kept
  std::uint64_t gap_bytes = 0;
  std::uint64_t truncated_bytes = 0;
  std::uint64_t segments_over_budget = 0;   // out-of-order segments not held: max_total_buffer reached
  std::uint64_t buffered_bytes = 0;         // out-of-order bytes held now
};

enum class HoleReason { gap, truncated };
enum class CloseReason { closed, reset, expired, end_of_capture };

// What the consumer of the byte streams keeps per connection.
class ConnectionState {
 public:
  virtual ~ConnectionState() = default;
};

struct TcpConnection {
  std::uint64_t id = 0;
  // Direction d carries bytes from endpoint d to endpoint 1 - d. Endpoint 0 sent the first
  // packet that was seen.
  IpAddress address[2];
  std::uint16_t port[2] = {0, 0};
  int client = -1;  // endpoint that sent the SYN; -1 when the start was not seen
  std::unique_ptr<ConnectionState> state;
};

class StreamConsumer {
 public:
  virtual ~StreamConsumer() = default;
  virtual void on_open(TcpConnection& connection) = 0;
  // In-order bytes of one direction; `timestamp_ns` is the capture time of their packet.
  virtual void on_data(TcpConnection& connection, int direction, std::string_view bytes,
                       std::int64_t timestamp_ns) = 0;
  // `length` bytes of one direction will never be seen.
  virtual void on_hole(TcpConnection& connection, int direction, std::uint64_t length, HoleReason reason,
                       std::int64_t timestamp_ns) = 0;
  // The sender finished (FIN and every byte before it delivered).
  virtual void on_end(TcpConnection& connection, int direction, std::int64_t timestamp_ns) = 0;
  // Last call for this connection; its state is destroyed right after.
  virtual void on_close(TcpConnection& connection, CloseReason reason, std::int64_t timestamp_ns) = 0;
};

class TcpReassembler {
 public:
  TcpReassembler(ReassemblyLimits limits, StreamConsumer& consumer);
  ~TcpReassembler();
  TcpReassembler(const TcpReassembler&) = delete;
  TcpReassembler& operator=(const TcpReassembler&) = delete;

  void add(const TcpSegment& segment, std::int64_t timestamp_ns);
  // Time passed without packets (live capture idle): expire and skip stale holes.
  void advance(std::int64_t now_ns);
  // End of capture: deliver what is buffered (with holes) and close every connection.
  void close_all(std::int64_t now_ns);

  const ReassemblyStats& stats() const { return stats_; }
  std::size_t connections() const { return flows_.size(); }

  struct FlowKey {
    IpAddress a, b;
    std::uint16_t port_a = 0, port_b = 0;
    bool operator==(const FlowKey&) const;
  };
  struct FlowKeyHash {
    std::size_t operator()(const FlowKey& key) const;
  };
  struct Flow;

 private:
  void deliver(Flow& flow, int direction, std::uint64_t offset, std::string_view bytes, std::uint32_t missing,
               std::int64_t ts);
  void drain(Flow& flow, int direction);
  void skip_to_buffered(Flow& flow, int direction, std::int64_t ts);
  void flush_buffered(Flow& flow, int direction, std::int64_t ts);
  void maybe_end(Flow& flow, int direction, std::int64_t ts);
  void close(Flow& flow, CloseReason reason, std::int64_t ts);
  void release_buffer(Flow& flow, int direction);
  void sweep(std::int64_t now_ns);

  ReassemblyLimits limits_;
  StreamConsumer& consumer_;
  ReassemblyStats stats_;
  std::unordered_map<FlowKey, std::unique_ptr<Flow>, FlowKeyHash> flows_;
  std::uint64_t next_connection_id_ = 1;
  std::int64_t last_sweep_ns_ = 0;
};

}  // namespace doppel::plugins::raw
