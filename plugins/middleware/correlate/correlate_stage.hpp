#pragma once
// The `correlate` stage: learns dynamic values (tokens, ids) by pairing each exchange's original
// response with its replayed response, and replaces the original values by the replay target's
// in later requests of the same session (or of any session, for global rules).
//
// Order without scripts: while an exchange that may define a value is awaiting its replay, the
// next requests of its session are held (other sessions flow); the replay's return — or its
// original response carrying none of the rules' values, or `hold_timeout` — releases them.
#include <re2/re2.h>

#include <boost/asio/steady_timer.hpp>
#include <chrono>
#include <deque>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <unordered_map>
#include <vector>

#include "doppel/io_threads.hpp"
#include "doppel/session_key.hpp"
#include "doppel/stage.hpp"
#include "request_sites.hpp"
#include "value_source.hpp"
#include "value_table.hpp"

namespace doppel::plugins {

struct CorrelateRule {
  std::string name;                // in metric names: substituted.NAME, ...
  ValueSource from;                // where the value appears in responses
  std::vector<RequestSite> in;     // where it is used in requests; empty: anywhere
  bool global = false;             // scope = "global": one table for every session
  std::shared_ptr<const RE2> path; // exchanges whose request path matches (partial); null: all
};

struct CorrelateConfig {
  std::vector<CorrelateRule> rules;
  SessionKeySpec session;          // requests without a key share one session
  std::chrono::nanoseconds hold_timeout{std::chrono::seconds(10)};
  std::size_t max_held = 10000;
  std::size_t max_values = 100000;  // per rule
  std::chrono::nanoseconds value_ttl{std::chrono::minutes(30)};
  std::size_t max_exchanges = 100000;
  std::size_t values_per_response = 64;
};

class CorrelateStage : public Stage {
 public:
  explicit CorrelateStage(CorrelateConfig config);
  ~CorrelateStage() override;

  void start(StageContext& context) override;
  void process(const MessagePtr& message) override;
  void flush() override;
  void stop() override;
  std::size_t pending() const override;

 private:
  using Clock = std::chrono::steady_clock;
  using Values = std::vector<std::vector<std::string>>;  // per rule, in order of appearance

  struct Held {
    MessagePtr request;
    std::vector<bool> rules;  // rules whose `path` matches it
  };
  struct Session {
    std::string awaiting;  // id of the exchange whose replay the next request waits for
    std::deque<Held> held;
  };
  struct Exchange {
    std::string session;
    std::vector<bool> rules;
    bool released = false;  // false while the request is held (its original may come meanwhile)
    bool awaiting = false;
    Clock::time_point deadline;
    std::optional<Values> original, replay;
  };
  struct RuleState {
    std::unique_ptr<ValueTable> table;
    Counter *substituted = nullptr, *learned = nullptr, *missed = nullptr, *evicted = nullptr, *expired = nullptr,
            *unpaired = nullptr;
    Gauge* values = nullptr;  // table.values.NAME
  };
  class Lookup;

  // All called with mutex_ held; messages to emit are appended to `out`, in order.
  void on_request(const MessagePtr& request, Clock::time_point now, std::vector<MessagePtr>& out);
  void on_response(const MessagePtr& response, Clock::time_point now, std::vector<MessagePtr>& out);
  void release(const std::string& key, Held held, Clock::time_point now, std::vector<MessagePtr>& out);
  void end_await(const std::string& id, const std::string& key, Clock::time_point now, std::vector<MessagePtr>& out);
  MessagePtr substitute(const MessagePtr& request, const std::string& key, Clock::time_point now);
  Values extract(const Message& response, const std::vector<bool>& rules) const;
  void pair(const Exchange& exchange, Clock::time_point now);
  void account(RuleState& rule, const ValueTable::Removed& removed);
  void sweep(Clock::time_point now, std::vector<MessagePtr>& out);
  void update_gauges();
  // Sets the exchange a session awaits ("" for none), keeping awaiting_sessions_ in step.
  void set_awaiting(Session& session, std::string id);

  void arm_timer();
  void on_timer();
  void emit_all(std::vector<MessagePtr>& out);

  CorrelateConfig config_;
  RequestSite anywhere_;
  std::vector<RuleState> rules_;

  std::mutex emit_mutex_;  // held from deciding to emitting: what is decided first leaves first
  mutable std::mutex mutex_;
  std::unordered_map<std::string, Session> sessions_;
  std::unordered_map<std::string, Exchange> exchanges_;
  std::deque<std::pair<Clock::time_point, std::string>> expiry_;  // exchanges by deadline
  std::size_t held_count_ = 0;
  std::size_t awaiting_sessions_ = 0;  // sessions whose `awaiting` is set
  Clock::time_point next_table_expiry_{};
  bool stopped_ = false;

  Counter *held_ = nullptr, *hold_timeouts_ = nullptr, *held_overflow_ = nullptr, *exchanges_evicted_ = nullptr;
  Gauge *held_gauge_ = nullptr, *awaiting_gauge_ = nullptr, *exchanges_gauge_ = nullptr, *sessions_gauge_ = nullptr;

  struct TimerGuard {
    std::mutex mutex;
    CorrelateStage* stage = nullptr;  // null once stopped
  };
  std::shared_ptr<TimerGuard> guard_ = std::make_shared<TimerGuard>();
  IoThreads io_{1};
  std::unique_ptr<boost::asio::steady_timer> timer_;
};

}  // namespace doppel::plugins
