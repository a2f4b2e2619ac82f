#include "join_table.hpp"

namespace doppel::plugins {

JoinTable::JoinTable(std::size_t max_pending, std::chrono::nanoseconds timeout, std::string baseline)
    : max_pending_(max_pending), timeout_(timeout), baseline_(std::move(baseline)) {}

bool JoinTable::complete(const Join& j) const {
  return j.request && j.original && j.replay && (baseline_.empty() || j.baseline);
}

void JoinTable::take(std::unordered_map<std::string, Join>::iterator it, bool expired,
                     std::vector<DecidedJoin>& decided) {
  remember_decided(it->first);
  decided.push_back(DecidedJoin{it->first, std::move(it->second), expired});
  joins_.erase(it);
}

JoinTable::Added JoinTable::add(const MessagePtr& message, std::vector<DecidedJoin>& decided) {
  Added added;
  if (decided_.count(message->id)) {
    added.outcome = Outcome::late;  // its verdict was already emitted (timeout or eviction)
    return added;
  }
  auto it = joins_.find(message->id);
  if (it == joins_.end()) {
    // Memory stays bounded: the oldest joins are decided now with what they have.
    while (!expiry_.empty() && joins_.size() >= max_pending_) {
      std::string id = std::move(expiry_.front().second);
      expiry_.pop_front();
      auto old = joins_.find(id);
      if (old == joins_.end()) continue;  // decided when it completed
      ++added.evicted;
      take(old, true, decided);
    }
    Join fresh;
    fresh.deadline = JoinClock::now() + timeout_;
    it = joins_.emplace(message->id, std::move(fresh)).first;
    expiry_.emplace_back(it->second.deadline, message->id);
  }
  Join& join = it->second;
  MessagePtr* slot = nullptr;
  switch (message->kind) {
    case Kind::request: slot = &join.request; break;
    case Kind::response: slot = &join.original; break;
    case Kind::replay:
      slot = (!baseline_.empty() && message->meta.stage == baseline_) ? &join.baseline : &join.replay;
      break;
    default: break;
  }
  if (!slot) {
    added.outcome = Outcome::unexpected_kind;
  } else if (*slot) {
    added.outcome = Outcome::duplicate;
  } else {
    *slot = message;
    if (complete(join)) {
      added.outcome = Outcome::completed;
      take(it, false, decided);
    }
  }
  return added;
}

JoinTable::Swept JoinTable::sweep(JoinClock::time_point now, bool everything, std::vector<DecidedJoin>& decided) {
  Swept swept;
  while (!expiry_.empty() && (everything || expiry_.front().first <= now)) {
    std::string id = std::move(expiry_.front().second);
    expiry_.pop_front();
    auto it = joins_.find(id);
    if (it == joins_.end()) continue;  // decided when it completed
    if (!it->second.request) {
      // Responses whose request never came (filtered upstream, or lost): nothing to judge.
      ++swept.orphans;
      joins_.erase(it);
      continue;
    }
    ++swept.expired;
    take(it, true, decided);
  }
  return swept;
}

void JoinTable::remember_decided(const std::string& id) {
  // Late sides of decided joins are recognised (and counted) for as long as max_pending
  // further decisions; older ids are forgotten.
  if (decided_.insert(id).second) decided_order_.push_back(id);
  while (decided_order_.size() > max_pending_) {
    decided_.erase(decided_order_.front());
    decided_order_.pop_front();
  }
}

}  // namespace doppel::plugins
