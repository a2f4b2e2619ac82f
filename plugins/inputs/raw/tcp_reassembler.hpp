#pragma once
// TCP reassembly: turns decoded segments into each connection's two in-order byte streams.
// Handles reordering, retransmissions and overlaps (first copy wins), sequence wrap-around,
// SYN/FIN/RST, connections whose start was not seen, and bounded buffering: when a hole
// does not fill (the receiver acknowledged past it, buffer bound, timeout) it is reported and
// skipped, never waited on forever. It also keeps the capture's memory budget: every byte held
// for a connection, here or by its consumer, is charged to it (reserve/release).
#include <atomic>
#include <cstdint>
#include <map>
#include <memory>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include "packet_decoder.hpp"

namespace doppel::plugins::raw {

struct ReassemblyLimits {
  std::size_t max_connections = 100000;
  std::size_t max_connection_buffer = std::size_t{4} << 20;  // out-of-order bytes held per connection
  std::size_t max_total_buffer = std::size_t{256} << 20;     // out-of-order bytes held in all
  std::int64_t idle_timeout_ns = 60'000'000'000;             // a connection silent this long is forgotten
  std::int64_t gap_timeout_ns = 2'000'000'000;               // a hole not filled this long is skipped
  std::int64_t closed_linger_ns = 2'000'000'000;             // late retransmissions after FIN/RST are ignored
  std::size_t memory_budget = std::size_t{512} << 20;          // every byte held, all connections (reserve)
  std::size_t connection_state_bytes = 0;  // the consumer's state per connection, charged with the flow
};

// What the reassemblers of one capture share when several threads each own part of its
// connections (a file read by several threads): the bounds hold in total, and connection
// ids stay unique.
struct ReassemblyBudget {
  std::atomic<std::size_t> connections{0};     // tracked now, against max_connections
  std::atomic<std::size_t> buffered_bytes{0};  // out-of-order bytes held now, against max_total_buffer
  std::atomic<std::size_t> memory_bytes{0};    // every byte charged now, against memory_budget
  std::atomic<std::uint64_t> next_connection_id{1};
  // Takes one of `max` connection slots; false when all are taken.
  bool reserve_connection(std::size_t max) {
    std::size_t n = connections.load(std::memory_order_relaxed);
    while (n < max)
      if (connections.compare_exchange_weak(n, n + 1, std::memory_order_relaxed)) return true;
    return false;
  }
  // Charges `bytes` when they fit in `limit`; false, nothing charged, when they do not.
  bool charge_memory(std::size_t bytes, std::size_t limit) {
    std::size_t n = memory_bytes.load(std::memory_order_relaxed);
    while (bytes <= limit && n <= limit - bytes)
      if (memory_bytes.compare_exchange_weak(n, n + bytes, std::memory_order_relaxed)) return true;
    return false;
  }
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
  std::uint64_t memory_bytes = 0;           // bytes charged to the memory budget now (this reassembler's)
  std::uint64_t evicted_bytes = 0;          // bytes given up to the memory budget (evictions, refusals)
  std::uint64_t evictions = 0;              // connections whose bytes were evicted
  std::uint64_t table_scans = 0;            // passes over every connection (expiry, a full table, eviction)
  ReassemblyStats& operator+=(const ReassemblyStats& other);
};

// `budget`: bytes given up to the memory budget (an evicted out-of-order buffer, and what was
// missing before it).
enum class HoleReason { gap, truncated, budget };
enum class CloseReason { closed, reset, expired, end_of_capture };

// What the consumer of the byte streams keeps per connection.
class ConnectionState {
 public:
  virtual ~ConnectionState() = default;
  // The memory budget evicts this connection: give up every byte held (releasing their charge)
  // without calling back into the reassembler's streams; a message lost is counted.
  virtual void shed() {}
};

// How a direction's 32-bit sequence numbers map to its 64-bit stream offsets, kept current by
// the reassembler: a sequence number within 2 GiB of `seq` is at `offset + (seq - this.seq)`.
struct SequenceMap {
  bool known = false;  // the direction's sequence space was seen
  std::uint32_t seq = 0;
  std::uint64_t offset = 0;
  // The stream offset of `value`; only meaningful when `known`.
  std::uint64_t offset_of(std::uint32_t value) const {
    return offset + static_cast<std::uint64_t>(static_cast<std::int64_t>(static_cast<std::int32_t>(value - seq)));
  }
};

// Where delivered bytes sit, and what the segment carrying them acknowledged of the other
// direction: the evidence that ties a response to the request bytes it follows.
struct SegmentPosition {
  std::uint64_t offset = 0;  // stream offset of the first delivered byte
  std::uint32_t ack = 0;     // the segment's acknowledgement number (raw), when has_ack
  bool has_ack = false;
};

struct TcpConnection {
  std::uint64_t id = 0;
  // Direction d carries bytes from endpoint d to endpoint 1 - d. Endpoint 0 sent the first
  // packet that was seen.
  IpAddress address[2];
  std::uint16_t port[2] = {0, 0};
  int client = -1;  // endpoint that sent the SYN; -1 when the start was not seen
  SequenceMap sequence[2];  // per direction
  bool start_seen[2] = {false, false};  // the direction's SYN was seen: its first byte is a start
  std::size_t held_bytes = 0;  // charged to the memory budget for it now, and evictable
  std::unique_ptr<ConnectionState> state;
};

class StreamConsumer {
 public:
  virtual ~StreamConsumer() = default;
  virtual void on_open(TcpConnection& connection) = 0;
  // In-order bytes of one direction; `timestamp_ns` is the capture time of their packet.
  virtual void on_data(TcpConnection& connection, int direction, std::string_view bytes,
                       std::int64_t timestamp_ns, const SegmentPosition& position) = 0;
  // `length` bytes of one direction will never be seen.
  virtual void on_hole(TcpConnection& connection, int direction, std::uint64_t length, HoleReason reason,
                       std::int64_t timestamp_ns) = 0;
  // The sender finished (FIN and every byte before it delivered).
  virtual void on_end(TcpConnection& connection, int direction, std::int64_t timestamp_ns) = 0;
  // Last call for this connection; its state is destroyed right after.
  virtual void on_close(TcpConnection& connection, CloseReason reason, std::int64_t timestamp_ns) = 0;
};

// Splits a capture's connections between `count` threads (a file read by several, see
// FrameSplitter): a connection's hash bucket, when first seen, goes to the thread with the
// fewest open connections (seen and not yet ended by FIN or RST), then the least recent load
// (frames and bytes, halved every kHalfLife frames). A fixed hash split leaves one thread
// with far more work when a capture holds few busy connections (a load test's 50 keep-alive
// ones); a split by load alone lags behind connections that start together.
class ConnectionSharder {
 public:
  explicit ConnectionSharder(std::size_t count);
  // The thread (0 to count - 1) owning the connection of `segment`, `wirelen` bytes more for it.
  std::size_t owner(const TcpSegment& segment, std::size_t wirelen);

 private:
  static constexpr std::uint8_t kUnassigned = 0xff;
  static constexpr std::uint64_t kFrameWeight = 256;  // a frame's own cost, in bytes' worth
  static constexpr std::uint64_t kHalfLife = 4096;
  struct Bucket {
    std::uint8_t owner = kUnassigned;  // for good: late packets of an ended connection follow it
    bool open = false;                 // its last connection has not ended
  };
  std::vector<Bucket> buckets_;
  std::vector<std::uint64_t> open_;  // per thread: buckets open
  std::vector<std::uint64_t> load_;  // per thread
  std::uint64_t frames_ = 0;
};

class TcpReassembler {
 public:
  // `budget`: shared with the other reassemblers of the capture; null for one of its own.
  TcpReassembler(ReassemblyLimits limits, StreamConsumer& consumer,
                 std::shared_ptr<ReassemblyBudget> budget = nullptr);
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

  // The memory budget (limits.memory_budget, shared with the other reassemblers of the capture).
  // Charges `bytes` that `holder` will keep (null: a connection's queue, not evictable). When they
  // do not fit, connections of this reassembler give up what they hold (TcpConnection::held_bytes)
  // the largest first, ties to the oldest, until they fit with a sixteenth of the budget to spare.
  // False, nothing charged, when they still do not fit or `holder` itself was evicted: the caller
  // then gives up what it was about to keep.
  bool reserve(TcpConnection* holder, std::size_t bytes);
  void release(TcpConnection* holder, std::size_t bytes);

  struct FlowKey {
    IpAddress a, b;
    std::uint16_t port_a = 0, port_b = 0;
    bool operator==(const FlowKey&) const;
  };
  struct FlowKeyHash {
    std::size_t operator()(const FlowKey& key) const;
  };
  struct Flow;

  // A hash of the connection of `segment`, the same for both directions and in every thread.
  static std::uint64_t connection_hash(const TcpSegment& segment);

 private:
  void deliver(Flow& flow, int direction, std::uint64_t offset, std::string_view bytes, std::uint32_t missing,
               std::int64_t ts, std::uint32_t ack, bool has_ack);
  void drain(Flow& flow, int direction);
  void skip_to_buffered(Flow& flow, int direction, std::int64_t ts);
  void skip_acknowledged_hole(Flow& flow, int direction, std::int64_t ts);
  void flush_buffered(Flow& flow, int direction, std::int64_t ts);
  void maybe_end(Flow& flow, int direction, std::int64_t ts);
  void close(Flow& flow, CloseReason reason, std::int64_t ts);
  void release_buffer(Flow& flow, int direction);
  void hold_segment(Flow& flow, int direction, std::uint64_t begin, const TcpSegment& segment, std::int64_t ts,
                    bool has_ack);
  bool make_room(TcpConnection* holder, std::size_t bytes);
  void add_segment(const TcpSegment& segment, std::int64_t timestamp_ns);
  void evict(Flow& flow);
  void give_up_buffer(Flow& flow, int direction, std::uint64_t through);
  void skip_given_up(std::int64_t ts);
  void sweep(std::int64_t now_ns);
  void forget(std::unordered_map<FlowKey, std::unique_ptr<Flow>, FlowKeyHash>::iterator it);
  std::size_t total_held() const { return budget_->buffered_bytes.load(std::memory_order_relaxed); }
  void hold(std::size_t bytes);
  void unhold(std::size_t bytes);

  ReassemblyLimits limits_;
  StreamConsumer& consumer_;
  ReassemblyStats stats_;
  std::shared_ptr<ReassemblyBudget> budget_;
  std::unordered_map<FlowKey, std::unique_ptr<Flow>, FlowKeyHash> flows_;
  std::int64_t last_sweep_ns_ = 0;
  // Flows whose out-of-order bytes were given up to the budget: their holes are skipped at the
  // end of the current add() or sweep, never from inside a consumer's callback.
  std::vector<Flow*> given_up_;
  bool evicting_ = false;
  static constexpr std::size_t kLargeBuffer = std::size_t{1} << 20;
  static constexpr std::int64_t kFullSweepInterval = 100'000'000;  // ns of capture time
  std::size_t evictable_bytes_ = 0;  // the sum of this reassembler's connections' held_bytes
  std::size_t released_large_ = 0;  // bytes of large buffers freed since the allocator was last told
};

}  // namespace doppel::plugins::raw
