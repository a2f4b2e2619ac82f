#include "exchange_order.hpp"

#include <algorithm>

namespace doppel::plugins {

ExchangeOrder::ExchangeOrder(ExchangeOrderConfig config)
    : config_(config), active_(config.expected.contains(Kind::response)) {}

KindSet ExchangeOrder::needs(Kind kind) const {
  switch (kind) {
    case Kind::response:
      return config_.expected & KindSet{Kind::request};
    case Kind::replay:
      return config_.expected & KindSet{Kind::request, Kind::response};
    default:
      return {};
  }
}

void ExchangeOrder::accept(MessagePtr message, Clock::time_point now, std::vector<MessagePtr>& ready) {
  if (!active_ || message->id.empty() || !KindSet::http().contains(message->kind)) {
    ready.push_back(std::move(message));
    return;
  }
  forget_ids(now, !exchanges_.contains(message->id), ready);
  auto [it, inserted] = exchanges_.try_emplace(message->id);
  if (inserted) first_seen_.emplace_back(now, message->id);
  Exchange& exchange = it->second;  // stays valid: only forget_ids erases, and not below
  Kind kind = message->kind;
  if (!may_pass(exchange, kind) && held_ >= config_.hold_max) {
    // Room for one more: the oldest held message goes now, out of order.
    while (!held_order_.empty()) {
      HeldRef ref = std::move(held_order_.front());
      held_order_.pop_front();
      if (force_out(ref, counts_.overflow, ready)) break;
    }
  }
  if (may_pass(exchange, kind)) {
    exchange.passed = exchange.passed | KindSet{kind};
    ready.push_back(std::move(message));
    release_ready(exchange, ready);
    return;
  }
  std::uint64_t number = ++arrivals_;
  auto at = std::upper_bound(exchange.waiting.begin(), exchange.waiting.end(), kind,
                             [](Kind k, const Waiting& w) { return k < w.message->kind; });
  held_order_.push_back(HeldRef{now + config_.hold_timeout, number, message->id});
  exchange.waiting.insert(at, Waiting{std::move(message), number});
  ++held_;
  ++counts_.held;
  if (held_order_.size() > 2 * config_.hold_max + 64) drop_stale_refs();
}

void ExchangeOrder::release_ready(Exchange& exchange, std::vector<MessagePtr>& ready) {
  // Waiting messages are sorted by kind, so one pass releases a chain (response, then replay).
  auto& waiting = exchange.waiting;
  std::size_t keep = 0;
  for (auto& w : waiting) {
    Kind kind = w.message->kind;
    if (may_pass(exchange, kind)) {
      exchange.passed = exchange.passed | KindSet{kind};
      ready.push_back(std::move(w.message));
      --held_;
    } else {
      waiting[keep++] = std::move(w);
    }
  }
  waiting.resize(keep);
}

bool ExchangeOrder::force_out(const HeldRef& ref, std::uint64_t& counter, std::vector<MessagePtr>& ready) {
  auto it = exchanges_.find(ref.id);
  if (it == exchanges_.end()) return false;
  auto& exchange = it->second;
  auto& waiting = exchange.waiting;
  auto target = std::find_if(waiting.begin(), waiting.end(), [&](const Waiting& w) { return w.number == ref.number; });
  if (target == waiting.end()) return false;
  // What this id still holds before it (lower kinds) goes first, so the id keeps its order.
  auto end = std::next(target);
  for (auto w = waiting.begin(); w != end; ++w) {
    exchange.passed = exchange.passed | KindSet{w->message->kind};
    ready.push_back(std::move(w->message));
    --held_;
    ++counter;
  }
  waiting.erase(waiting.begin(), end);
  release_ready(exchange, ready);
  return true;
}

void ExchangeOrder::expire(Clock::time_point now, std::vector<MessagePtr>& ready) {
  while (!held_order_.empty() && held_order_.front().deadline <= now) {
    HeldRef ref = std::move(held_order_.front());
    held_order_.pop_front();
    force_out(ref, counts_.expired, ready);
  }
  forget_ids(now, false, ready);
}

void ExchangeOrder::release_all(std::vector<MessagePtr>& ready) {
  for (const auto& ref : held_order_) {
    auto it = exchanges_.find(ref.id);
    if (it == exchanges_.end()) continue;
    auto& exchange = it->second;
    for (auto& w : exchange.waiting) {
      exchange.passed = exchange.passed | KindSet{w.message->kind};
      ready.push_back(std::move(w.message));
      --held_;
      ++counts_.flushed;
    }
    exchange.waiting.clear();
  }
  held_order_.clear();
}

std::optional<ExchangeOrder::Clock::time_point> ExchangeOrder::next_deadline() {
  while (!held_order_.empty()) {
    const auto& ref = held_order_.front();
    auto it = exchanges_.find(ref.id);
    if (it != exchanges_.end() && std::any_of(it->second.waiting.begin(), it->second.waiting.end(),
                                              [&](const Waiting& w) { return w.number == ref.number; }))
      return ref.deadline;
    held_order_.pop_front();  // released already
  }
  return std::nullopt;
}

void ExchangeOrder::drop_stale_refs() {
  std::erase_if(held_order_, [&](const HeldRef& ref) {
    auto it = exchanges_.find(ref.id);
    return it == exchanges_.end() ||
           std::none_of(it->second.waiting.begin(), it->second.waiting.end(),
                        [&](const Waiting& w) { return w.number == ref.number; });
  });
}

void ExchangeOrder::forget_ids(Clock::time_point now, bool making_room, std::vector<MessagePtr>& ready) {
  // first_seen_ and exchanges_ hold the same ids: only here are ids erased.
  while (!first_seen_.empty()) {
    auto& [seen, id] = first_seen_.front();
    bool too_many = exchanges_.size() + (making_room ? 1 : 0) > remember_max();
    if (!too_many && now - seen < remember_for()) break;
    auto it = exchanges_.find(id);
    if (it != exchanges_.end()) {
      if (too_many) ++counts_.forgotten;
      for (auto& w : it->second.waiting) {  // already in order; their refs become stale
        ready.push_back(std::move(w.message));
        --held_;
        ++counts_.overflow;
      }
      exchanges_.erase(it);
    }
    first_seen_.pop_front();
  }
}

}  // namespace doppel::plugins
