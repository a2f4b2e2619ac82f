#pragma once
// The joins of the compare stage, or of one of its shards: per id, the request, the original
// response and the replayed response(s), kept until every side came or time ran out. Not
// thread-safe: a shard guards its table with a mutex and takes a join out of it before the
// join is judged, so that no lock is held while comparators run.
#include <chrono>
#include <deque>
#include <string>
#include <unordered_map>
#include <unordered_set>
#include <utility>
#include <vector>

#include "doppel/message.hpp"

namespace doppel::plugins {

using JoinClock = std::chrono::steady_clock;

struct Join {
  MessagePtr request, original, replay, baseline;
  JoinClock::time_point deadline;
};

// A join taken out of its table to be judged. Its id is remembered as decided, so it is
// judged once: a side that comes later is `late`.
struct DecidedJoin {
  std::string id;
  Join join;
  bool expired = false;  // decided before it was complete (timeout, eviction, flush)
};

class JoinTable {
 public:
  // `baseline`: the stage whose replays are the baseline's ("" without noise cancellation).
  JoinTable(std::size_t max_pending, std::chrono::nanoseconds timeout, std::string baseline);

  enum class Outcome { waiting, completed, late, duplicate, unexpected_kind };
  struct Added {
    Outcome outcome = Outcome::waiting;
    std::size_t evicted = 0;  // older joins decided early to keep within max_pending
  };
  // Adds one side. The joins it decides go to `decided`, evicted ones first.
  Added add(const MessagePtr& message, std::vector<DecidedJoin>& decided);

  struct Swept {
    std::size_t expired = 0;  // decided with a side missing
    std::size_t orphans = 0;  // responses whose request never came: dropped, no verdict
  };
  // Decides the joins whose deadline passed by `now`, or every join with `everything`.
  Swept sweep(JoinClock::time_point now, bool everything, std::vector<DecidedJoin>& decided);

  std::size_t size() const { return joins_.size(); }
  std::size_t decided() const { return decided_.size(); }  // ids remembered as decided

 private:
  bool complete(const Join& join) const;
  void take(std::unordered_map<std::string, Join>::iterator it, bool expired, std::vector<DecidedJoin>& decided);
  void remember_decided(const std::string& id);

  std::size_t max_pending_;
  std::chrono::nanoseconds timeout_;
  std::string baseline_;
  std::unordered_map<std::string, Join> joins_;
  std::deque<std::pair<JoinClock::time_point, std::string>> expiry_;  // insertion = deadline order
  std::unordered_set<std::string> decided_;
  std::deque<std::string> decided_order_;
};

}  // namespace doppel::plugins
