#pragma once
// What a filter decided about each request, remembered by id for a while, so that the
// request's responses follow its fate. Bounded by count (`capacity`, the oldest forgotten first,
// counted) and by time (`ttl`). Mutated from one stage worker only; size() and evicted() may be
// read from any thread (the stats line, /metrics).
#include <atomic>
#include <cstdint>
#include <deque>
#include <optional>
#include <string>
#include <unordered_map>

namespace doppel::core {

class DecisionMemory {
 public:
  DecisionMemory(std::int64_t ttl_ns, std::size_t capacity) : ttl_ns_(ttl_ns), capacity_(capacity) {}

  void remember(const std::string& id, bool passed, std::int64_t now) {
    expire(now);
    auto [it, inserted] = decisions_.insert_or_assign(id, Entry{passed, now + ttl_ns_});
    if (inserted) order_.push_back(&it->first);
    while (decisions_.size() > capacity_ && !order_.empty()) {
      forget_oldest();
      evicted_.fetch_add(1, std::memory_order_relaxed);
    }
    size_.store(decisions_.size(), std::memory_order_relaxed);
  }

  std::optional<bool> lookup(const std::string& id, std::int64_t now) {
    expire(now);
    size_.store(decisions_.size(), std::memory_order_relaxed);
    auto it = decisions_.find(id);
    if (it == decisions_.end()) return std::nullopt;
    return it->second.passed;
  }

  std::size_t size() const { return size_.load(std::memory_order_relaxed); }
  std::size_t capacity() const { return capacity_; }
  std::uint64_t evicted() const { return evicted_.load(std::memory_order_relaxed); }

 private:
  struct Entry {
    bool passed;
    std::int64_t expires;
  };
  // A decision remembered again keeps its place in order_ with a later expiry: the ones behind
  // it wait for it (at most ttl longer); capacity still holds.
  void expire(std::int64_t now) {
    while (!order_.empty() && decisions_.find(*order_.front())->second.expires <= now) forget_oldest();
  }
  void forget_oldest() {
    decisions_.erase(decisions_.find(*order_.front()));
    order_.pop_front();
  }
  std::int64_t ttl_ns_;
  std::size_t capacity_;
  std::unordered_map<std::string, Entry> decisions_;
  // Keys of decisions_ in the order they were first remembered: pointers to the map's own keys
  // (nodes do not move), not second copies of every id.
  std::deque<const std::string*> order_;
  std::atomic<std::size_t> size_{0};
  std::atomic<std::uint64_t> evicted_{0};
};

}  // namespace doppel::core
