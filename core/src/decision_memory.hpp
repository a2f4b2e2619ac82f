#pragma once
// What a filter decided about each request, remembered by id for a while, so that the
// request's responses follow its fate. Used from one stage worker only.
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
    if (inserted) order_.push_back(id);
    while (decisions_.size() > capacity_ && !order_.empty()) {
      decisions_.erase(order_.front());
      order_.pop_front();
      ++evicted_;
    }
  }

  std::optional<bool> lookup(const std::string& id, std::int64_t now) {
    expire(now);
    auto it = decisions_.find(id);
    if (it == decisions_.end()) return std::nullopt;
    return it->second.passed;
  }

  std::size_t size() const { return decisions_.size(); }
  std::uint64_t evicted() const { return evicted_; }

 private:
  struct Entry {
    bool passed;
    std::int64_t expires;
  };
  void expire(std::int64_t now) {
    while (!order_.empty()) {
      auto it = decisions_.find(order_.front());
      if (it != decisions_.end() && it->second.expires > now) break;
      if (it != decisions_.end()) decisions_.erase(it);
      order_.pop_front();
    }
  }
  std::int64_t ttl_ns_;
  std::size_t capacity_;
  std::unordered_map<std::string, Entry> decisions_;
  std::deque<std::string> order_;
  std::uint64_t evicted_ = 0;
};

}  // namespace doppel::core
