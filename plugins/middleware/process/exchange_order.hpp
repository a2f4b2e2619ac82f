#pragma once
// Per-id order for a GoReplay middleware: each id's request, then its original response, then
// its replays. GoReplay's middleware libraries (Node's goreplay_middleware, Python's gor) register
// an id's `replay` callback when they see its original response, so a replay that overtakes it
// (fast candidate, slow original server) is ignored. ExchangeOrder holds such a message until
// what precedes it has passed, bounded by count (hold_max) and time (hold_timeout); a message
// forced out by a bound is still handed on, and counted. No threads and no clock of its own:
// callers pass the time, so tests can replay any arrival order.
#include <chrono>
#include <cstdint>
#include <deque>
#include <optional>
#include <string>
#include <unordered_map>
#include <vector>

#include "doppel/message.hpp"

namespace doppel::plugins {

struct ExchangeOrderConfig {
  // The kinds that can arrive. A request, response or replay waits for the lower ones among
  // them; nothing waits unless `response` is one of them (then original responses are tracked).
  KindSet expected = KindSet::http();
  std::size_t hold_max = 10000;                                     // messages held at once
  std::chrono::nanoseconds hold_timeout = std::chrono::seconds(5);  // longest a message is held
};

class ExchangeOrder {
 public:
  using Clock = std::chrono::steady_clock;
  struct Counts {
    std::uint64_t held = 0;       // messages that had to wait
    std::uint64_t expired = 0;    // released after hold_timeout without what they waited for
    std::uint64_t overflow = 0;   // released early: hold_max messages were held, or their id was forgotten
    std::uint64_t flushed = 0;    // released by release_all (draining)
    std::uint64_t forgotten = 0;  // ids forgotten before their time because too many were remembered
  };

  explicit ExchangeOrder(ExchangeOrderConfig config);

  // Whether anything can ever be held (original responses are expected).
  bool active() const { return active_; }
  // Takes a message that arrived at `now`. Appends to `ready`, in the order to hand them on,
  // the message if it may go now and the held messages it releases; nothing if it must wait.
  void accept(MessagePtr message, Clock::time_point now, std::vector<MessagePtr>& ready);
  // Releases held messages whose hold_timeout has passed, and forgets old ids.
  void expire(Clock::time_point now, std::vector<MessagePtr>& ready);
  // Releases everything held, each id's messages in order (draining: nothing more will come).
  void release_all(std::vector<MessagePtr>& ready);
  // When the oldest held message expires; nullopt when nothing is held.
  std::optional<Clock::time_point> next_deadline();

  std::size_t held() const { return held_; }
  std::size_t remembered_ids() const { return exchanges_.size(); }
  const Counts& counts() const { return counts_; }
  // Ids are remembered this long after their first message, and at most this many.
  std::chrono::nanoseconds remember_for() const { return config_.hold_timeout * 12; }
  std::size_t remember_max() const { return config_.hold_max * 16; }

 private:
  struct Waiting {
    MessagePtr message;
    std::uint64_t number;  // arrival number
  };
  struct Exchange {
    KindSet passed;                 // kinds of this id already handed on
    std::vector<Waiting> waiting;   // sorted by kind, then arrival
  };
  struct HeldRef {  // arrival order of held messages, for expiry and overflow
    Clock::time_point deadline;
    std::uint64_t number;
    std::string id;
  };

  KindSet needs(Kind kind) const;
  bool may_pass(const Exchange& exchange, Kind kind) const { return (needs(kind) - exchange.passed).empty(); }
  // Hands on the waiting messages of `exchange` that may go now, in order.
  void release_ready(Exchange& exchange, std::vector<MessagePtr>& ready);
  // Hands on one held message regardless of order (a bound forced it out), then what it unblocks.
  // false when the reference is stale (already released).
  bool force_out(const HeldRef& ref, std::uint64_t& counter, std::vector<MessagePtr>& ready);
  void drop_stale_refs();
  // Forgets ids past remember_for(), and the oldest beyond remember_max() (one fewer when
  // `making_room` for a new id).
  void forget_ids(Clock::time_point now, bool making_room, std::vector<MessagePtr>& ready);

  ExchangeOrderConfig config_;
  bool active_ = false;
  std::unordered_map<std::string, Exchange> exchanges_;
  std::deque<std::pair<Clock::time_point, std::string>> first_seen_;  // ids in order of first sight
  std::deque<HeldRef> held_order_;  // may hold stale entries (released in order); compacted when large
  std::size_t held_ = 0;
  std::uint64_t arrivals_ = 0;
  Counts counts_;
};

}  // namespace doppel::plugins
