#pragma once
// What one rule has learned: original value -> the replay target's value, per scope (a session
// key, or "" for global rules). Bounded by count (the least recently used entry goes first)
// and by time (an entry neither learned again nor used for `ttl` expires).
#include <chrono>
#include <cstdint>
#include <list>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

namespace doppel::plugins {

class ValueTable {
 public:
  using Clock = std::chrono::steady_clock;

  // Entries that left the table, and how many of those were never used (the rule's value
  // never appeared in a request: a miss).
  struct Removed {
    std::uint64_t evicted = 0, expired = 0, unused = 0;
  };

  ValueTable(std::size_t max_entries, std::chrono::nanoseconds ttl) : max_entries_(max_entries), ttl_(ttl) {}

  // Remembers that `original` became `replacement` in `scope` (replacing an older mapping).
  Removed learn(std::string_view scope, std::string_view original, std::string_view replacement, Clock::time_point now);
  // The replacement of `original` in `scope`, marking it used; nullptr when unknown or expired.
  const std::string* use(std::string_view scope, std::string_view original, Clock::time_point now);
  // Known originals in `scope` whose first word run is `run` (see request_sites.hpp).
  void starting_with(std::string_view scope, std::string_view run, std::vector<std::string_view>& out) const;
  // Drops entries idle for longer than ttl.
  Removed expire(Clock::time_point now);
  // Entries never used so far (counted as misses when the stage stops).
  std::uint64_t unused() const;
  std::size_t size() const { return entries_.size(); }

 private:
  struct Entry {
    std::string key;  // scope + '\0' + original
    std::string scope, original, replacement;
    Clock::time_point touched;
    std::uint64_t uses = 0;
  };
  using Iterator = std::list<Entry>::iterator;
  void erase(Iterator it);
  static std::string key_of(std::string_view scope, std::string_view text);

  std::size_t max_entries_;
  std::chrono::nanoseconds ttl_;
  std::list<Entry> entries_;  // most recently touched first
  std::unordered_map<std::string, Iterator> by_key_;
  std::unordered_map<std::string, std::vector<Iterator>> by_run_;  // scope + '\0' + first word run
};

}  // namespace doppel::plugins
