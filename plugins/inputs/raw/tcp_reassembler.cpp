#include "tcp_reassembler.hpp"

#include <dlfcn.h>

#include <algorithm>
#include <cstring>
#include <random>
#include <utility>
#include <vector>

namespace doppel::plugins::raw {
namespace {

// Offsets are 64-bit positions in a direction's stream; they start high so that a segment
// slightly before the first one seen never goes below zero.
constexpr std::uint64_t kInitialOffset = std::uint64_t{1} << 40;

struct Pending {
  std::string bytes;
  std::uint32_t missing = 0;  // bytes after `bytes` cut off by snaplen
  std::int64_t ts = 0;
  std::uint32_t ack = 0;  // the segment's acknowledgement number
  bool has_ack = false;
  std::uint64_t end(std::uint64_t begin) const { return begin + bytes.size() + missing; }
};

// jemalloc, which the doppel executable runs on, keeps freed pages for seconds (dirty_decay_ms)
// before it hands them back; below 8 MiB (its oversize threshold) so do large buffers. After an
// eviction, or once large buffers worth a sixteenth of the budget were freed, they are handed
// back at once, so that the resident size follows the budget. Nothing under another allocator.
void return_freed_pages() {
  using Mallctl = int (*)(const char*, void*, std::size_t*, void*, std::size_t);
  static const auto mallctl = reinterpret_cast<Mallctl>(dlsym(RTLD_DEFAULT, "mallctl"));
  if (mallctl != nullptr) mallctl("arena.4096.purge", nullptr, nullptr, nullptr, 0);  // 4096: every arena
}

// What an out-of-order segment of `size` bytes costs, as charged to the memory budget: its
// bytes, its map node, and the allocator's headers and rounding of both allocations.
constexpr std::size_t segment_cost(std::size_t size) {
  return size + sizeof(std::pair<const std::uint64_t, Pending>) + 32 + 32;
}

// The two halves of an address as integers; an IPv4 address is its first 4 bytes only, as
// IpAddress::operator== compares it.
std::uint64_t word(const IpAddress& a, int i) {
  if (a.family == 4) {
    std::uint32_t v4 = 0;
    if (i == 0) std::memcpy(&v4, a.bytes, 4);
    return v4;
  }
  std::uint64_t w;
  std::memcpy(&w, a.bytes + 8 * i, 8);
  return w;
}

// Keys come from the network: a per-process seed keeps crafted collisions out of reach.
const std::uint64_t kHashSeed = [] {
  std::random_device rd;
  return std::uint64_t{rd()} << 32 | rd();
}();

// Any strict order will do: it only picks which endpoint comes first in a flow's key.
bool endpoint_less(const IpAddress& a, std::uint16_t pa, const IpAddress& b, std::uint16_t pb) {
  if (a.family != b.family) return a.family < b.family;
  if (word(a, 0) != word(b, 0)) return word(a, 0) < word(b, 0);
  if (word(a, 1) != word(b, 1)) return word(a, 1) < word(b, 1);
  return pa < pb;
}

}  // namespace

struct TcpReassembler::Flow {
  struct Direction {
    bool synced = false;
    bool syn_seen = false;
    std::uint32_t syn_acknowledged = 0;  // a SYN-ACK's acknowledgement: the peer's ISN + 1
    bool fin_seen = false;
    bool ended = false;
    std::uint32_t isn = 0;
    std::uint32_t next_seq = 0;
    std::uint64_t next_offset = kInitialOffset;
    std::uint64_t fin_offset = 0;
    std::map<std::uint64_t, Pending> pending;  // out-of-order segments by offset
    std::size_t pending_bytes = 0;
    std::size_t pending_cost = 0;       // what `pending` is charged to the memory budget
    std::uint64_t given_up_to = 0;      // bytes before this offset were given up to the budget
    std::uint64_t given_up_bytes = 0;   // of them, bytes that had been captured
    std::uint64_t peer_acked = 0;  // the highest offset the receiver acknowledged (0: none yet)

    std::uint64_t offset_of(std::uint32_t seq) const {
      return next_offset + static_cast<std::int64_t>(static_cast<std::int32_t>(seq - next_seq));
    }
    void advance_to(std::uint64_t offset) {
      next_seq += static_cast<std::uint32_t>(offset - next_offset);
      next_offset = offset;
    }
    SequenceMap map() const { return {true, next_seq, next_offset}; }
  };
  TcpConnection connection;
  Direction direction[2];
  std::int64_t last_seen_ns = 0;
  bool closed = false;
  std::int64_t closed_at_ns = 0;
  bool given_up_listed = false;  // in given_up_: a hole to skip
};

namespace {
// A connection's own cost besides the bytes it holds: its flow, and its entry in the table
// (hash node, bucket, allocator headers).
constexpr std::size_t kFlowBytes = sizeof(TcpReassembler::Flow) + sizeof(TcpReassembler::FlowKey) + 64;
}  // namespace

bool TcpReassembler::FlowKey::operator==(const FlowKey& o) const {
  return port_a == o.port_a && port_b == o.port_b && a == o.a && b == o.b;
}

std::size_t TcpReassembler::FlowKeyHash::operator()(const FlowKey& k) const {
  // Word-wise multiply-xorshift (a per-byte FNV loop was visible in profiles). The key
  // comes from the network, so the result goes through a full 64-bit finalizer.
  auto mix = [](std::uint64_t h, std::uint64_t v) {
    h ^= v + 0x9e3779b97f4a7c15ull + (h << 6) + (h >> 2);
    return h;
  };
  std::uint64_t h = kHashSeed ^ k.a.family;
  h = mix(h, word(k.a, 0));
  h = mix(h, word(k.a, 1));
  h = mix(h, word(k.b, 0));
  h = mix(h, word(k.b, 1));
  h = mix(h, std::uint64_t{k.port_a} << 16 | k.port_b);
  h ^= h >> 33;
  h *= 0xff51afd7ed558ccdull;
  h ^= h >> 33;
  h *= 0xc4ceb9fe1a85ec53ull;
  h ^= h >> 33;
  return static_cast<std::size_t>(h);
}

ReassemblyStats& ReassemblyStats::operator+=(const ReassemblyStats& o) {
  connections_opened += o.connections_opened;
  connections_midstream += o.connections_midstream;
  connections_expired += o.connections_expired;
  connections_refused += o.connections_refused;
  duplicate_segments += o.duplicate_segments;
  overlapping_bytes += o.overlapping_bytes;
  gap_bytes += o.gap_bytes;
  truncated_bytes += o.truncated_bytes;
  segments_over_budget += o.segments_over_budget;
  buffered_bytes += o.buffered_bytes;
  memory_bytes += o.memory_bytes;
  evicted_bytes += o.evicted_bytes;
  evictions += o.evictions;
  table_scans += o.table_scans;
  return *this;
}

std::uint64_t TcpReassembler::connection_hash(const TcpSegment& seg) {
  // Sums are symmetric: both directions of a connection hash alike.
  std::uint64_t h = kHashSeed + word(seg.source, 0) + word(seg.source, 1) + word(seg.destination, 0) +
                    word(seg.destination, 1);
  h += (std::uint64_t{seg.source_port} + seg.destination_port) * 0x9e3779b97f4a7c15ull;
  h ^= h >> 29;
  h *= 0xbf58476d1ce4e5b9ull;
  h ^= h >> 32;
  return h;
}

ConnectionSharder::ConnectionSharder(std::size_t count)
    : buckets_(std::size_t{1} << 16), open_(count < 1 ? 1 : count, 0), load_(count < 1 ? 1 : count, 0) {}

std::size_t ConnectionSharder::owner(const TcpSegment& segment, std::size_t wirelen) {
  if (load_.size() == 1) return 0;
  std::size_t bucket = TcpReassembler::connection_hash(segment) & (buckets_.size() - 1);
  Bucket& b = buckets_[bucket];
  bool syn = (segment.flags & (tcp_flag::syn | tcp_flag::ack)) == tcp_flag::syn;
  bool end = (segment.flags & (tcp_flag::fin | tcp_flag::rst)) != 0;
  if (b.owner == kUnassigned) {
    std::size_t best = 0;
    for (std::size_t s = 1; s < load_.size(); ++s)
      if (open_[s] < open_[best] || (open_[s] == open_[best] && load_[s] < load_[best])) best = s;
    b.owner = static_cast<std::uint8_t>(best);
    b.open = !end;
    if (b.open) ++open_[best];
  } else if (syn && !b.open) {  // a new connection in a bucket whose last one ended
    b.open = true;
    ++open_[b.owner];
  } else if (end && b.open) {
    b.open = false;
    --open_[b.owner];
  }
  load_[b.owner] += kFrameWeight + wirelen;
  if (++frames_ % kHalfLife == 0)
    for (auto& load : load_) load /= 2;
  return b.owner;
}

TcpReassembler::TcpReassembler(ReassemblyLimits limits, StreamConsumer& consumer,
                               std::shared_ptr<ReassemblyBudget> budget)
    : limits_(limits), consumer_(consumer),
      budget_(budget ? std::move(budget) : std::make_shared<ReassemblyBudget>()) {}

TcpReassembler::~TcpReassembler() {
  // The consumers' states give their charges back (release) while this is still whole.
  for (auto& [key, flow] : flows_) flow->connection.state.reset();
  budget_->connections.fetch_sub(flows_.size(), std::memory_order_relaxed);
  budget_->buffered_bytes.fetch_sub(stats_.buffered_bytes, std::memory_order_relaxed);
  budget_->memory_bytes.fetch_sub(stats_.memory_bytes, std::memory_order_relaxed);
}

void TcpReassembler::forget(std::unordered_map<FlowKey, std::unique_ptr<Flow>, FlowKeyHash>::iterator it) {
  Flow& flow = *it->second;  // closed: its state and buffers are gone, and their charges
  if (flow.given_up_listed) std::erase(given_up_, &flow);
  flows_.erase(it);
  budget_->connections.fetch_sub(1, std::memory_order_relaxed);
  release(nullptr, kFlowBytes);
}

bool TcpReassembler::reserve(TcpConnection* holder, std::size_t bytes) {
  if (!budget_->charge_memory(bytes, limits_.memory_budget)) {
    if (make_room(holder, bytes) || !budget_->charge_memory(bytes, limits_.memory_budget)) return false;
  }
  stats_.memory_bytes += bytes;
  if (holder != nullptr) {
    holder->held_bytes += bytes;
    evictable_bytes_ += bytes;
  }
  return true;
}

void TcpReassembler::release(TcpConnection* holder, std::size_t bytes) {
  if (bytes == 0) return;
  stats_.memory_bytes -= bytes;
  if (holder != nullptr) {
    holder->held_bytes -= bytes;
    evictable_bytes_ -= bytes;
  }
  budget_->memory_bytes.fetch_sub(bytes, std::memory_order_relaxed);
  if (bytes >= kLargeBuffer && (released_large_ += bytes) >= limits_.memory_budget / 16 && !evicting_) {
    released_large_ = 0;
    return_freed_pages();
  }
}

void TcpReassembler::hold(std::size_t bytes) {
  stats_.buffered_bytes += bytes;
  budget_->buffered_bytes.fetch_add(bytes, std::memory_order_relaxed);
}

void TcpReassembler::unhold(std::size_t bytes) {
  stats_.buffered_bytes -= bytes;
  budget_->buffered_bytes.fetch_sub(bytes, std::memory_order_relaxed);
}

// Evicts connections until `bytes` fit with a sixteenth of the budget to spare (so that the
// next allocations do not each scan the table again): those holding the most bytes first, of
// equal ones the oldest. Eviction is passive (a connection's bytes are freed, its holes skipped
// later by skip_given_up), so it is safe from inside any consumer callback. True when `holder`
// itself was evicted.
bool TcpReassembler::make_room(TcpConnection* holder, std::size_t bytes) {
  std::size_t limit = limits_.memory_budget;
  if (evicting_ || bytes > limit) return false;  // never fits: nobody gives up anything for it
  std::size_t target = limit - limit / 16;
  if (bytes > target) target = limit;
  // A pass over every connection is worth it only when it can free what is needed, and enough
  // for many allocations after (a 64th of the budget). A budget filled with what no eviction
  // frees (connections' state, request queues) would otherwise be scanned for each new message
  // or connection, for a few bytes each time; those are given up instead (their caller counts
  // them as budget_exceeded or flow_table_full).
  std::size_t charged = budget_->memory_bytes.load(std::memory_order_relaxed);
  std::size_t needed = charged + bytes > limit ? charged + bytes - limit : 0;
  if (evictable_bytes_ < std::max(needed, limit / 64)) return false;
  ++stats_.table_scans;
  struct Candidate {
    std::size_t held;
    std::uint64_t id;
    Flow* flow;
    bool operator<(const Candidate& o) const { return held != o.held ? held < o.held : id > o.id; }
  };
  std::vector<Candidate> heap;
  for (auto& [key, flow] : flows_)
    if (!flow->closed && flow->connection.held_bytes > 0)
      heap.push_back({flow->connection.held_bytes, flow->connection.id, flow.get()});
  std::make_heap(heap.begin(), heap.end());
  std::size_t candidates = heap.size();
  evicting_ = true;
  bool holder_evicted = false;
  while (!heap.empty() && budget_->memory_bytes.load(std::memory_order_relaxed) + bytes > target) {
    std::pop_heap(heap.begin(), heap.end());
    Flow* victim = heap.back().flow;
    heap.pop_back();
    evict(*victim);
    if (&victim->connection == holder) {
      holder_evicted = true;
      break;
    }
  }
  evicting_ = false;
  if (heap.size() != candidates) {
    released_large_ = 0;
    return_freed_pages();
  }
  return holder_evicted;
}

void TcpReassembler::evict(Flow& flow) {
  std::size_t held = flow.connection.held_bytes;
  for (int d = 0; d < 2; ++d)
    if (!flow.direction[d].pending.empty()) give_up_buffer(flow, d, 0);
  if (flow.connection.state) flow.connection.state->shed();
  ++stats_.evictions;
  stats_.evicted_bytes += held - flow.connection.held_bytes;
}

// Frees a direction's out-of-order bytes; the hole up to the end of the last of them (and of
// `through`) is skipped later, at a point where the consumer may be called.
void TcpReassembler::give_up_buffer(Flow& flow, int d, std::uint64_t through) {
  Flow::Direction& dir = flow.direction[d];
  for (auto& [begin, p] : dir.pending) through = std::max(through, p.end(begin));
  dir.given_up_bytes += dir.pending_bytes;
  release_buffer(flow, d);
  if (through <= dir.next_offset && dir.given_up_to == 0) return;
  dir.given_up_to = std::max(dir.given_up_to, through);
  if (!flow.given_up_listed) {
    flow.given_up_listed = true;
    given_up_.push_back(&flow);
  }
}

void TcpReassembler::skip_given_up(std::int64_t ts) {
  while (!given_up_.empty()) {
    Flow& flow = *given_up_.back();
    given_up_.pop_back();
    flow.given_up_listed = false;
    for (int d = 0; d < 2 && !flow.closed; ++d) {
      Flow::Direction& dir = flow.direction[d];
      std::uint64_t to = std::exchange(dir.given_up_to, 0);
      std::uint64_t captured = std::exchange(dir.given_up_bytes, 0);
      if (dir.ended || to <= dir.next_offset) continue;
      std::uint64_t hole = to - dir.next_offset;
      stats_.gap_bytes += hole > captured ? hole - captured : 0;  // what was never captured in it
      consumer_.on_hole(flow.connection, d, hole, HoleReason::budget, ts);
      dir.advance_to(to);
      flow.connection.sequence[d] = dir.map();
      drain(flow, d);
      maybe_end(flow, d, ts);
    }
    if (!flow.closed && flow.direction[0].ended && flow.direction[1].ended) close(flow, CloseReason::closed, ts);
  }
}

void TcpReassembler::add(const TcpSegment& seg, std::int64_t ts) {
  add_segment(seg, ts);
  if (!given_up_.empty()) skip_given_up(ts);
}

void TcpReassembler::add_segment(const TcpSegment& seg, std::int64_t ts) {
  if (ts - last_sweep_ns_ >= 1'000'000'000 || ts < last_sweep_ns_) sweep(ts);

  FlowKey key;
  bool forward = endpoint_less(seg.source, seg.source_port, seg.destination, seg.destination_port);
  key.a = forward ? seg.source : seg.destination;
  key.b = forward ? seg.destination : seg.source;
  key.port_a = forward ? seg.source_port : seg.destination_port;
  key.port_b = forward ? seg.destination_port : seg.source_port;

  bool syn = (seg.flags & tcp_flag::syn) != 0;
  bool fin = (seg.flags & tcp_flag::fin) != 0;
  bool rst = (seg.flags & tcp_flag::rst) != 0;
  std::size_t length = seg.payload.size() + seg.missing;

  auto it = flows_.find(key);
  if (it != flows_.end()) {
    Flow& existing = *it->second;
    int d = existing.connection.address[0] == seg.source && existing.connection.port[0] == seg.source_port ? 0 : 1;
    const Flow::Direction& peer = existing.direction[1 - d];
    // A SYN captured after the SYN-ACK that answers it belongs to that connection.
    bool answered_syn = !existing.closed && !existing.direction[d].syn_seen && peer.syn_seen &&
                        peer.syn_acknowledged == seg.seq + 1;
    bool new_connection = syn && !(seg.flags & tcp_flag::ack) && !answered_syn &&
                          (existing.closed || !existing.direction[d].syn_seen || existing.direction[d].isn != seg.seq);
    if (new_connection) {  // the 4-tuple is reused by a new connection
      if (!existing.closed) close(existing, CloseReason::closed, ts);
      forget(it);
      it = flows_.end();
    } else if (existing.closed) {
      // Late retransmissions and ACKs of a finished connection.
      if (length > 0) ++stats_.duplicate_segments;
      return;
    }
  }
  if (it == flows_.end()) {
    if (rst || (!syn && length == 0)) return;  // nothing to start a connection with
    if (!budget_->reserve_connection(limits_.max_connections)) {
      // The table is full: a pass over it may find connections past their time. At most one
      // pass per kFullSweepInterval of capture time: a flood of new connections against a full
      // table must not cost a pass over every connection each (quadratic: a million new
      // connections against 100,000 tracked took minutes instead of a second).
      if (ts - last_sweep_ns_ >= kFullSweepInterval || ts < last_sweep_ns_) sweep(ts);
      if (!budget_->reserve_connection(limits_.max_connections)) {
        ++stats_.connections_refused;
        return;
      }
    }
    if (!reserve(nullptr, kFlowBytes + limits_.connection_state_bytes)) {
      budget_->connections.fetch_sub(1, std::memory_order_relaxed);
      ++stats_.connections_refused;
      return;
    }
    auto flow = std::make_unique<Flow>();
    flow->connection.id = budget_->next_connection_id.fetch_add(1, std::memory_order_relaxed);
    flow->connection.address[0] = seg.source;
    flow->connection.address[1] = seg.destination;
    flow->connection.port[0] = seg.source_port;
    flow->connection.port[1] = seg.destination_port;
    if (syn) flow->connection.client = (seg.flags & tcp_flag::ack) ? 1 : 0;
    else ++stats_.connections_midstream;
    ++stats_.connections_opened;
    it = flows_.emplace(key, std::move(flow)).first;  // its slot is reserved above
    consumer_.on_open(it->second->connection);
  }

  Flow& flow = *it->second;
  flow.last_seen_ns = ts;
  int d = flow.connection.address[0] == seg.source && flow.connection.port[0] == seg.source_port ? 0 : 1;
  Flow::Direction& dir = flow.direction[d];

  if (rst) {
    close(flow, CloseReason::reset, ts);
    return;
  }
  if (syn) {
    if (dir.syn_seen && seg.seq == dir.isn && length == 0) {
      ++stats_.duplicate_segments;
      return;
    }
    if (!dir.synced) {
      dir.synced = dir.syn_seen = true;
      dir.isn = seg.seq;
      dir.next_seq = seg.seq + 1;
      if (seg.flags & tcp_flag::ack) dir.syn_acknowledged = seg.ack;
      flow.connection.sequence[d] = dir.map();
      flow.connection.start_seen[d] = true;
    }
    if (flow.connection.client < 0) flow.connection.client = (seg.flags & tcp_flag::ack) ? 1 - d : d;
  }
  std::uint32_t data_seq = syn ? seg.seq + 1 : seg.seq;
  if (!dir.synced) {
    if (length == 0 && !fin) return;
    dir.synced = true;
    dir.next_seq = data_seq;  // mid-stream: this segment is where the stream starts for us
    flow.connection.sequence[d] = dir.map();
  }
  bool has_ack = (seg.flags & tcp_flag::ack) != 0;
  Flow::Direction& other = flow.direction[1 - d];
  if (has_ack && other.synced && !other.ended) {
    std::uint64_t acked = other.offset_of(seg.ack);
    if (acked > other.peer_acked) {
      other.peer_acked = acked;
      skip_acknowledged_hole(flow, 1 - d, ts);  // before this segment's bytes: they answer those
    }
  }

  if (length > 0 && !dir.ended) {
    std::uint64_t begin = dir.offset_of(data_seq);
    std::uint64_t end = begin + length;
    if (end <= dir.next_offset) {
      ++stats_.duplicate_segments;
    } else if (begin <= dir.next_offset) {
      deliver(flow, d, begin, seg.payload, seg.missing, ts, seg.ack, has_ack);
      drain(flow, d);
    } else {
      // Out of order: hold it, within the bounds; past them, give up on the hole before it.
      if (end - dir.next_offset > limits_.max_connection_buffer) {
        skip_to_buffered(flow, d, ts);
        if (dir.offset_of(data_seq) > dir.next_offset && dir.pending.empty()) {
          // Still too far ahead and nothing held: the bytes up to this segment are lost.
          std::uint64_t hole = begin - dir.next_offset;
          stats_.gap_bytes += hole;
          consumer_.on_hole(flow.connection, d, hole, HoleReason::gap, ts);
          dir.advance_to(begin);
        }
      }
      begin = dir.offset_of(data_seq);
      if (begin <= dir.next_offset) {
        deliver(flow, d, begin, seg.payload, seg.missing, ts, seg.ack, has_ack);
        drain(flow, d);
      } else {
        while (!dir.pending.empty() && (dir.pending_bytes + seg.payload.size() > limits_.max_connection_buffer ||
                                        total_held() + seg.payload.size() > limits_.max_total_buffer))
          skip_to_buffered(flow, d, ts);
        begin = dir.offset_of(data_seq);
        if (begin <= dir.next_offset) {
          deliver(flow, d, begin, seg.payload, seg.missing, ts, seg.ack, has_ack);
          drain(flow, d);
        } else if (total_held() + seg.payload.size() > limits_.max_total_buffer) {
          // Every other connection holds the budget: this segment becomes a hole later.
          ++stats_.segments_over_budget;  // its bytes show up as a gap when the hole is skipped
        } else {
          hold_segment(flow, d, begin, seg, ts, has_ack);
          skip_acknowledged_hole(flow, d, ts);  // held past what the receiver already has
        }
      }
    }
  }
  if (fin && !dir.fin_seen) {
    dir.fin_seen = true;
    dir.fin_offset = dir.offset_of(data_seq + static_cast<std::uint32_t>(length));
  }
  maybe_end(flow, d, ts);
  if (flow.direction[0].ended && flow.direction[1].ended) close(flow, CloseReason::closed, ts);
}

// Holds an out-of-order segment, charged to the memory budget; refused, the connection gives up
// its out-of-order bytes of that direction through the segment's end.
void TcpReassembler::hold_segment(Flow& flow, int d, std::uint64_t begin, const TcpSegment& seg, std::int64_t ts,
                                  bool has_ack) {
  Flow::Direction& dir = flow.direction[d];
  auto found = dir.pending.find(begin);
  std::size_t old_cost = 0;
  if (found != dir.pending.end()) {
    const Pending& held = found->second;
    if (seg.payload.size() + seg.missing <= held.bytes.size() + held.missing) {
      ++stats_.duplicate_segments;
      return;
    }
    old_cost = segment_cost(held.bytes.size());
  }
  std::size_t cost = segment_cost(seg.payload.size());
  if (cost > old_cost && !reserve(&flow.connection, cost - old_cost)) {
    std::size_t held = flow.connection.held_bytes;
    dir.given_up_bytes += seg.payload.size();  // captured, and given up with the rest
    give_up_buffer(flow, d, begin + seg.payload.size() + seg.missing);
    stats_.evicted_bytes += cost + (held - flow.connection.held_bytes);
    return;
  }
  Pending& p = dir.pending[begin];  // found again: reserving may have freed other connections' nodes
  dir.pending_bytes -= p.bytes.size();
  unhold(p.bytes.size());
  p.bytes.assign(seg.payload);
  p.missing = seg.missing;
  p.ts = ts;
  p.ack = seg.ack;
  p.has_ack = has_ack;
  dir.pending_bytes += p.bytes.size();
  hold(p.bytes.size());
  dir.pending_cost = dir.pending_cost - old_cost + cost;
  if (cost < old_cost) release(&flow.connection, old_cost - cost);  // more missing, fewer bytes
}

void TcpReassembler::deliver(Flow& flow, int d, std::uint64_t begin, std::string_view bytes, std::uint32_t missing,
                             std::int64_t ts, std::uint32_t ack, bool has_ack) {
  Flow::Direction& dir = flow.direction[d];
  std::uint64_t overlap = dir.next_offset - begin;  // begin <= next_offset
  if (overlap > 0) {
    std::uint64_t from_bytes = overlap < bytes.size() ? overlap : bytes.size();
    stats_.overlapping_bytes += overlap;
    bytes.remove_prefix(from_bytes);
    overlap -= from_bytes;
    missing -= static_cast<std::uint32_t>(overlap < missing ? overlap : missing);
  }
  if (!bytes.empty()) {
    SegmentPosition position{dir.next_offset, ack, has_ack};
    dir.advance_to(dir.next_offset + bytes.size());
    flow.connection.sequence[d] = dir.map();
    consumer_.on_data(flow.connection, d, bytes, ts, position);
  }
  if (missing > 0) {
    dir.advance_to(dir.next_offset + missing);
    flow.connection.sequence[d] = dir.map();
    stats_.truncated_bytes += missing;
    consumer_.on_hole(flow.connection, d, missing, HoleReason::truncated, ts);
  }
}

void TcpReassembler::drain(Flow& flow, int d) {
  Flow::Direction& dir = flow.direction[d];
  while (!dir.pending.empty()) {
    auto first = dir.pending.begin();
    if (first->first > dir.next_offset) break;
    Pending p = std::move(first->second);
    std::uint64_t begin = first->first;
    dir.pending.erase(first);
    dir.pending_bytes -= p.bytes.size();
    unhold(p.bytes.size());
    dir.pending_cost -= segment_cost(p.bytes.size());
    release(&flow.connection, segment_cost(p.bytes.size()));
    if (p.end(begin) <= dir.next_offset) {
      ++stats_.duplicate_segments;
      continue;
    }
    deliver(flow, d, begin, p.bytes, p.missing, p.ts, p.ack, p.has_ack);
  }
}

// Declares the hole before the first held segment lost, and delivers from there.
void TcpReassembler::skip_to_buffered(Flow& flow, int d, std::int64_t ts) {
  Flow::Direction& dir = flow.direction[d];
  if (dir.pending.empty()) return;
  std::uint64_t begin = dir.pending.begin()->first;
  if (begin > dir.next_offset) {
    std::uint64_t hole = begin - dir.next_offset;
    stats_.gap_bytes += hole;
    consumer_.on_hole(flow.connection, d, hole, HoleReason::gap, ts);
    dir.advance_to(begin);
  }
  drain(flow, d);
}

// The receiver acknowledged bytes past a hole: it has them and they will not be sent again,
// so the capture lost them. Waiting for gap_timeout would only hold back what follows (and
// the answers to it would arrive before it).
void TcpReassembler::skip_acknowledged_hole(Flow& flow, int d, std::int64_t ts) {
  Flow::Direction& dir = flow.direction[d];
  if (dir.pending.empty() || dir.pending.begin()->first > dir.peer_acked) return;
  skip_to_buffered(flow, d, ts);
  maybe_end(flow, d, ts);
}

void TcpReassembler::flush_buffered(Flow& flow, int d, std::int64_t ts) {
  while (!flow.direction[d].pending.empty()) skip_to_buffered(flow, d, ts);
}

void TcpReassembler::maybe_end(Flow& flow, int d, std::int64_t ts) {
  Flow::Direction& dir = flow.direction[d];
  if (dir.fin_seen && !dir.ended && dir.next_offset >= dir.fin_offset) {
    dir.ended = true;
    release_buffer(flow, d);
    consumer_.on_end(flow.connection, d, ts);
  }
}

void TcpReassembler::release_buffer(Flow& flow, int d) {
  Flow::Direction& dir = flow.direction[d];
  unhold(dir.pending_bytes);
  dir.pending_bytes = 0;
  dir.pending.clear();
  release(&flow.connection, dir.pending_cost);
  dir.pending_cost = 0;
}

void TcpReassembler::close(Flow& flow, CloseReason reason, std::int64_t ts) {
  if (flow.closed) return;
  for (int d = 0; d < 2; ++d) {
    Flow::Direction& dir = flow.direction[d];
    if (dir.ended) continue;
    // Whatever arrived out of order is still worth parsing; the holes before it are lost.
    flush_buffered(flow, d, ts);
    if (dir.fin_seen && dir.next_offset < dir.fin_offset) {
      std::uint64_t hole = dir.fin_offset - dir.next_offset;
      stats_.gap_bytes += hole;
      consumer_.on_hole(flow.connection, d, hole, HoleReason::gap, ts);
      dir.advance_to(dir.fin_offset);
    }
    if (dir.fin_seen) {
      dir.ended = true;
      consumer_.on_end(flow.connection, d, ts);
    }
  }
  release_buffer(flow, 0);
  release_buffer(flow, 1);
  consumer_.on_close(flow.connection, reason, ts);
  flow.connection.state.reset();
  release(nullptr, limits_.connection_state_bytes);  // the flow itself lingers (closed_linger_ns)
  flow.closed = true;
  flow.closed_at_ns = ts;
}

void TcpReassembler::sweep(std::int64_t now) {
  last_sweep_ns_ = now;
  ++stats_.table_scans;
  std::vector<FlowKey> stale;
  for (auto& [key, flow] : flows_) {
    if (flow->closed) {
      if (now - flow->closed_at_ns >= limits_.closed_linger_ns) stale.push_back(key);
      continue;
    }
    if (now - flow->last_seen_ns >= limits_.idle_timeout_ns) {
      ++stats_.connections_expired;
      close(*flow, CloseReason::expired, now);
      stale.push_back(key);
      continue;
    }
    for (int d = 0; d < 2; ++d) {
      auto& pending = flow->direction[d].pending;
      if (!pending.empty() && now - pending.begin()->second.ts >= limits_.gap_timeout_ns) {
        flush_buffered(*flow, d, now);
        maybe_end(*flow, d, now);
      }
    }
    if (flow->direction[0].ended && flow->direction[1].ended) close(*flow, CloseReason::closed, now);
  }
  skip_given_up(now);
  for (auto& key : stale) forget(flows_.find(key));
}

void TcpReassembler::advance(std::int64_t now_ns) {
  if (now_ns - last_sweep_ns_ >= 1'000'000'000) sweep(now_ns);
}

void TcpReassembler::close_all(std::int64_t now_ns) {
  skip_given_up(now_ns);
  for (auto& [key, flow] : flows_) close(*flow, CloseReason::end_of_capture, now_ns);
  given_up_.clear();  // closed: nothing left to skip
  budget_->connections.fetch_sub(flows_.size(), std::memory_order_relaxed);
  release(nullptr, flows_.size() * kFlowBytes);
  flows_.clear();
}

}  // namespace doppel::plugins::raw
