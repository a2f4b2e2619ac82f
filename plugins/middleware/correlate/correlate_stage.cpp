#include "correlate_stage.hpp"

#include <algorithm>
#include <spdlog/spdlog.h>

namespace doppel::plugins {

// A rule's table, seen from one request's scope.
class CorrelateStage::Lookup : public ValueLookup {
 public:
  Lookup(ValueTable& table, std::string_view scope, Clock::time_point now) : table_(table), scope_(scope), now_(now) {}
  const std::string* exact(std::string_view original) const override { return table_.use(scope_, original, now_); }
  void starting_with(std::string_view run, std::vector<std::string_view>& originals) const override {
    table_.starting_with(scope_, run, originals);
  }

 private:
  ValueTable& table_;
  std::string_view scope_;
  Clock::time_point now_;
};

CorrelateStage::CorrelateStage(CorrelateConfig config) : config_(std::move(config)) {
  for (std::size_t i = 0; i < config_.rules.size(); ++i) {
    RuleState state;
    state.table = std::make_unique<ValueTable>(config_.max_values, config_.value_ttl);
    rules_.push_back(std::move(state));
  }
}

CorrelateStage::~CorrelateStage() {
  std::lock_guard lock(guard_->mutex);
  guard_->stage = nullptr;
}

void CorrelateStage::start(StageContext& context) {
  Stage::start(context);
  for (std::size_t i = 0; i < rules_.size(); ++i) {
    const std::string& name = config_.rules[i].name;
    rules_[i].substituted = &context.counter("substituted." + name);
    rules_[i].learned = &context.counter("learned." + name);
    rules_[i].missed = &context.counter("missed." + name);
    rules_[i].evicted = &context.counter("evicted." + name);
    rules_[i].expired = &context.counter("expired." + name);
    rules_[i].unpaired = &context.counter("unpaired." + name);
    rules_[i].values = &context.gauge("table.values." + name);
  }
  held_ = &context.counter("held");
  hold_timeouts_ = &context.counter("hold_timeouts");
  held_overflow_ = &context.counter("held_overflow");
  exchanges_evicted_ = &context.counter("exchanges_evicted");
  held_gauge_ = &context.gauge("held_requests");
  awaiting_gauge_ = &context.gauge("awaiting_replays");
  exchanges_gauge_ = &context.gauge("table.exchanges");
  sessions_gauge_ = &context.gauge("table.sessions");
  guard_->stage = this;
  timer_ = std::make_unique<boost::asio::steady_timer>(io_.context());
  arm_timer();
}

void CorrelateStage::process(const MessagePtr& message) {
  std::lock_guard order(emit_mutex_);
  std::vector<MessagePtr> out;
  {
    std::lock_guard lock(mutex_);
    auto now = Clock::now();
    sweep(now, out);
    if (message->kind == Kind::request) on_request(message, now, out);
    else if (message->kind == Kind::response || message->kind == Kind::replay) on_response(message, now, out);
    else out.push_back(message);
    update_gauges();
  }
  emit_all(out);
}

void CorrelateStage::on_request(const MessagePtr& request, Clock::time_point now, std::vector<MessagePtr>& out) {
  const HttpView& http = request->http();
  if (!http.is_request()) {
    out.push_back(request);  // nothing to learn from or substitute in; passed on as is
    return;
  }
  Held held{request, std::vector<bool>(config_.rules.size())};
  for (std::size_t i = 0; i < config_.rules.size(); ++i)
    held.rules[i] = !config_.rules[i].path || RE2::PartialMatch(http.path(), *config_.rules[i].path);
  // Requests without a session key (a .gor file has no connections) share one session.
  std::string key = session_key_of(config_.session, *request).value_or("");
  if (std::any_of(held.rules.begin(), held.rules.end(), [](bool b) { return b; })) {
    // Known from now on: its original response may arrive while it is held.
    Exchange& exchange = exchanges_[request->id];
    exchange = Exchange{};
    exchange.session = key;
    exchange.rules = held.rules;
  }
  auto it = sessions_.find(key);
  if (it == sessions_.end() || (it->second.awaiting.empty() && it->second.held.empty())) {
    release(key, std::move(held), now, out);
    return;
  }
  held_->add();
  Session& session = it->second;
  if (held_count_ >= config_.max_held) {
    // Full: the session's oldest request goes on without waiting any longer (order is kept).
    held_overflow_->add();
    if (session.held.empty()) {
      release(key, std::move(held), now, out);
      return;
    }
    Held oldest = std::move(session.held.front());
    session.held.pop_front();
    --held_count_;
    session.held.push_back(std::move(held));
    ++held_count_;
    release(key, std::move(oldest), now, out);
    return;
  }
  session.held.push_back(std::move(held));
  ++held_count_;
}

void CorrelateStage::release(const std::string& key, Held held, Clock::time_point now, std::vector<MessagePtr>& out) {
  out.push_back(substitute(held.request, key, now));
  if (std::none_of(held.rules.begin(), held.rules.end(), [](bool b) { return b; })) return;
  const std::string& id = held.request->id;
  auto it = exchanges_.find(id);
  if (it == exchanges_.end()) {
    it = exchanges_.emplace(id, Exchange{}).first;
    it->second.session = key;
    it->second.rules = std::move(held.rules);
  }
  Exchange& exchange = it->second;
  exchange.released = true;
  if (exchange.original && std::all_of(exchange.original->begin(), exchange.original->end(),
                                       [](const auto& v) { return v.empty(); })) {
    exchanges_.erase(it);  // its original response came while it was held, defining nothing
    return;
  }
  exchange.awaiting = true;
  exchange.deadline = now + config_.hold_timeout;
  expiry_.emplace_back(exchange.deadline, id);
  set_awaiting(sessions_[key], id);
  while (exchanges_.size() > config_.max_exchanges && !expiry_.empty()) {
    // Too many open exchanges: the oldest is given up (its session goes on).
    auto [deadline, oldest] = std::move(expiry_.front());
    expiry_.pop_front();
    auto it = exchanges_.find(oldest);
    if (it == exchanges_.end() || oldest == id) continue;
    exchanges_evicted_->add();
    bool awaited = it->second.awaiting;
    std::string session = std::move(it->second.session);
    exchanges_.erase(it);
    if (awaited) end_await(oldest, session, now, out);
  }
}

void CorrelateStage::end_await(const std::string& id, const std::string& key, Clock::time_point now,
                               std::vector<MessagePtr>& out) {
  auto it = sessions_.find(key);
  if (it == sessions_.end() || it->second.awaiting != id) return;
  set_awaiting(it->second, "");
  // Release the session's held requests up to the next one that awaits its replay.
  while (it->second.awaiting.empty() && !it->second.held.empty()) {
    Held next = std::move(it->second.held.front());
    it->second.held.pop_front();
    --held_count_;
    release(key, std::move(next), now, out);
    it = sessions_.find(key);  // release may rehash sessions_
  }
  if (it->second.awaiting.empty() && it->second.held.empty()) sessions_.erase(it);
}

void CorrelateStage::on_response(const MessagePtr& response, Clock::time_point now, std::vector<MessagePtr>& out) {
  out.push_back(response);  // passed on first: a compare stage may read both from here
  auto it = exchanges_.find(response->id);
  if (it == exchanges_.end()) return;
  Exchange& exchange = it->second;
  bool original = response->kind == Kind::response;
  auto& side = original ? exchange.original : exchange.replay;
  if (side) return;  // a duplicate
  side = response->meta.error.empty() ? extract(*response, exchange.rules) : Values(config_.rules.size());
  bool nothing = std::all_of(side->begin(), side->end(), [](const auto& v) { return v.empty(); });
  if (!exchange.released) return;  // still held: release() decides whether to wait
  bool done = (exchange.original && exchange.replay) || (original && nothing);
  if (exchange.original && exchange.replay) pair(exchange, now);
  // The replay's return ends the wait; so does an original response carrying none of the values.
  bool ends_wait = exchange.awaiting && (!original || nothing);
  std::string id = response->id, key = exchange.session;
  if (ends_wait) exchange.awaiting = false;
  if (done) exchanges_.erase(it);
  if (ends_wait) end_await(id, key, now, out);
}

CorrelateStage::Values CorrelateStage::extract(const Message& response, const std::vector<bool>& rules) const {
  Values values(config_.rules.size());
  for (std::size_t i = 0; i < config_.rules.size(); ++i)
    if (rules[i]) values[i] = extract_values(config_.rules[i].from, response, config_.values_per_response);
  return values;
}

void CorrelateStage::pair(const Exchange& exchange, Clock::time_point now) {
  for (std::size_t i = 0; i < config_.rules.size(); ++i) {
    const auto& original = (*exchange.original)[i];
    const auto& replay = (*exchange.replay)[i];
    std::string_view scope = config_.rules[i].global ? std::string_view() : std::string_view(exchange.session);
    std::size_t n = std::min(original.size(), replay.size());
    for (std::size_t k = 0; k < n; ++k) {
      if (original[k] == replay[k]) continue;  // the same on both sides: nothing to replace
      account(rules_[i], rules_[i].table->learn(scope, original[k], replay[k], now));
      rules_[i].learned->add();
    }
    if (original.size() != replay.size()) rules_[i].unpaired->add(std::max(original.size(), replay.size()) - n);
  }
}

MessagePtr CorrelateStage::substitute(const MessagePtr& request, const std::string& key, Clock::time_point now) {
  const HttpView& http = request->http();
  std::vector<Edit> edits;
  for (std::size_t i = 0; i < config_.rules.size(); ++i) {
    const CorrelateRule& rule = config_.rules[i];
    if (rules_[i].table->size() == 0) continue;
    Lookup lookup(*rules_[i].table, rule.global ? std::string_view() : std::string_view(key), now);
    if (rule.in.empty()) find_edits(anywhere_, http, request->payload, lookup, i, edits);
    for (const auto& site : rule.in) find_edits(site, http, request->payload, lookup, i, edits);
  }
  if (edits.empty()) return request;
  std::vector<const Edit*> applied;
  Message copy(*request);
  copy.payload = apply_edits(request->payload, http, edits, applied);
  for (const Edit* e : applied) rules_[e->rule].substituted->add();
  return share(std::move(copy));
}

void CorrelateStage::account(RuleState& rule, const ValueTable::Removed& removed) {
  if (removed.evicted) rule.evicted->add(removed.evicted);
  if (removed.expired) rule.expired->add(removed.expired);
  if (removed.unused) rule.missed->add(removed.unused);
}

void CorrelateStage::sweep(Clock::time_point now, std::vector<MessagePtr>& out) {
  while (!expiry_.empty() && expiry_.front().first <= now) {
    std::string id = std::move(expiry_.front().second);
    expiry_.pop_front();
    auto it = exchanges_.find(id);
    if (it == exchanges_.end() || it->second.deadline > now) continue;  // done, or the id came again
    bool awaited = it->second.awaiting;
    std::string key = std::move(it->second.session);
    exchanges_.erase(it);
    if (!awaited) continue;  // the replay came; its original response did not (nothing to learn)
    hold_timeouts_->add();
    end_await(id, key, now, out);
  }
  if (now >= next_table_expiry_) {
    for (auto& rule : rules_) account(rule, rule.table->expire(now));
    next_table_expiry_ = now + std::clamp<std::chrono::nanoseconds>(config_.value_ttl / 10, std::chrono::milliseconds(10),
                                                                     std::chrono::seconds(10));
  }
}

void CorrelateStage::set_awaiting(Session& session, std::string id) {
  awaiting_sessions_ -= session.awaiting.empty() ? 0 : 1;
  session.awaiting = std::move(id);
  awaiting_sessions_ += session.awaiting.empty() ? 0 : 1;
}

void CorrelateStage::update_gauges() {
  // Called per message: sizes kept as they change, never a walk over the sessions.
  held_gauge_->set(static_cast<std::int64_t>(held_count_));
  awaiting_gauge_->set(static_cast<std::int64_t>(awaiting_sessions_));
  exchanges_gauge_->set(static_cast<std::int64_t>(exchanges_.size()));
  sessions_gauge_->set(static_cast<std::int64_t>(sessions_.size()));
  for (auto& rule : rules_) rule.values->set(static_cast<std::int64_t>(rule.table->size()));
}

void CorrelateStage::arm_timer() {
  // Checked a few times per hold_timeout: a held request waits at most ~10% longer than it.
  auto period = std::clamp<std::chrono::nanoseconds>(config_.hold_timeout / 10, std::chrono::milliseconds(5),
                                                     std::chrono::milliseconds(500));
  timer_->expires_after(period);
  timer_->async_wait([guard = guard_](const boost::system::error_code& ec) {
    if (ec) return;
    std::lock_guard lock(guard->mutex);
    if (guard->stage) guard->stage->on_timer();
  });
}

void CorrelateStage::on_timer() {
  {
    std::lock_guard order(emit_mutex_);
    std::vector<MessagePtr> out;
    {
      std::lock_guard lock(mutex_);
      if (stopped_) return;
      sweep(Clock::now(), out);
      update_gauges();
    }
    emit_all(out);
  }
  arm_timer();
}

void CorrelateStage::emit_all(std::vector<MessagePtr>& out) {
  for (auto& m : out) context().emit(std::move(m));
  out.clear();
}

void CorrelateStage::flush() {
  // In a loop the runtime flushes round after round while replays come back; held requests
  // leave when their session's replay returns or at hold_timeout, never early.
  std::lock_guard order(emit_mutex_);
  std::vector<MessagePtr> out;
  {
    std::lock_guard lock(mutex_);
    sweep(Clock::now(), out);
    update_gauges();
  }
  emit_all(out);
}

std::size_t CorrelateStage::pending() const {
  std::lock_guard lock(mutex_);
  return held_count_ + awaiting_sessions_;
}

void CorrelateStage::stop() {
  {
    std::lock_guard lock(guard_->mutex);
    guard_->stage = nullptr;
  }
  if (timer_) timer_->cancel();
  std::lock_guard lock(mutex_);
  if (stopped_) return;
  stopped_ = true;
  if (held_count_ > 0) {
    context().drop("shutdown", held_count_);
    context().log().warn("{} request(s) still held for their session's replay at shutdown were dropped",
                         held_count_);
  }
  held_count_ = 0;
  awaiting_sessions_ = 0;
  sessions_.clear();
  // Values learned but never used by the end: their rule's value never appeared in a request.
  for (auto& rule : rules_) rule.missed->add(rule.table->unused());
}

}  // namespace doppel::plugins
