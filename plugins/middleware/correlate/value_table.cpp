#include "value_table.hpp"

#include <algorithm>

#include "request_sites.hpp"

namespace doppel::plugins {

std::string ValueTable::key_of(std::string_view scope, std::string_view text) {
  std::string key;
  key.reserve(scope.size() + 1 + text.size());
  key.append(scope).push_back('\0');
  key.append(text);
  return key;
}

ValueTable::Removed ValueTable::learn(std::string_view scope, std::string_view original, std::string_view replacement,
                                      Clock::time_point now) {
  Removed removed;
  std::string key = key_of(scope, original);
  if (auto it = by_key_.find(key); it != by_key_.end()) {
    Entry& e = *it->second;
    e.replacement = std::string(replacement);
    e.touched = now;
    entries_.splice(entries_.begin(), entries_, it->second);
    return removed;
  }
  while (!entries_.empty() && entries_.size() >= max_entries_) {
    ++removed.evicted;
    if (entries_.back().uses == 0) ++removed.unused;
    erase(std::prev(entries_.end()));
  }
  entries_.push_front(Entry{key, std::string(scope), std::string(original), std::string(replacement), now, 0});
  by_key_.emplace(std::move(key), entries_.begin());
  by_run_[key_of(scope, first_word_run(original))].push_back(entries_.begin());
  return removed;
}

const std::string* ValueTable::use(std::string_view scope, std::string_view original, Clock::time_point now) {
  auto it = by_key_.find(key_of(scope, original));
  if (it == by_key_.end()) return nullptr;
  Entry& e = *it->second;
  if (now - e.touched > ttl_) return nullptr;  // expired; expire() removes it
  e.touched = now;
  ++e.uses;
  entries_.splice(entries_.begin(), entries_, it->second);
  return &e.replacement;
}

void ValueTable::starting_with(std::string_view scope, std::string_view run, std::vector<std::string_view>& out) const {
  auto it = by_run_.find(key_of(scope, run));
  if (it == by_run_.end()) return;
  for (const auto& entry : it->second) out.push_back(entry->original);
}

ValueTable::Removed ValueTable::expire(Clock::time_point now) {
  Removed removed;
  while (!entries_.empty() && now - entries_.back().touched > ttl_) {
    ++removed.expired;
    if (entries_.back().uses == 0) ++removed.unused;
    erase(std::prev(entries_.end()));
  }
  return removed;
}

std::uint64_t ValueTable::unused() const {
  return static_cast<std::uint64_t>(
      std::count_if(entries_.begin(), entries_.end(), [](const Entry& e) { return e.uses == 0; }));
}

void ValueTable::erase(Iterator it) {
  auto run = by_run_.find(key_of(it->scope, first_word_run(it->original)));
  if (run != by_run_.end()) {
    auto& list = run->second;
    list.erase(std::remove(list.begin(), list.end(), it), list.end());
    if (list.empty()) by_run_.erase(run);
  }
  by_key_.erase(it->key);
  entries_.erase(it);
}

}  // namespace doppel::plugins
