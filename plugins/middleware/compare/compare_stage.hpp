#pragma once
// The `compare` stage: joins a request with its original response and its replayed
// response(s) by id, judges the exchange with the comparators of the first matching rule,
// and emits one `verdict` message per request (payload: JSON, see docs/guide/compare.md).
//
// The joins are split into shards by id, one thread each (`threads`), so that a request and
// its responses meet in one shard while other exchanges are judged on the other cores. No
// lock is held while comparators run: a join is taken out of its shard's table first, and
// only the per-endpoint aggregates are shared, behind a lock of their own.
//
// A comparator may judge asynchronously (a program it runs answers later): an exchange's
// verdict is then written by whichever thread completes its last comparator. Comparators that
// judge inline keep the verdicts in the order the joins were decided.
#include <re2/re2.h>

#include <atomic>
#include <boost/asio/steady_timer.hpp>
#include <chrono>
#include <condition_variable>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <unordered_set>
#include <vector>

#include "doppel/io_threads.hpp"
#include "doppel/stage.hpp"
#include "join_table.hpp"
#include "noise_model.hpp"
#include "path_pattern.hpp"
#include "shard_workers.hpp"

namespace doppel::plugins {

struct CompareRule {
  std::string name;                  // endpoint name in verdicts; "" groups by METHOD /path
  std::string label;                 // how verdicts name the rule: its name, "#2", or "default"
  std::unique_ptr<RE2> method;       // full match, case-insensitive; null matches every method
  std::unique_ptr<RE2> path;         // partial match on the path (no query); null matches every path
  std::vector<std::string> fail;     // comparator names whose differences make a mismatch
  std::vector<std::string> warn;     // comparator names whose differences make a warn
  std::vector<std::string> info;     // differences reported without changing the verdict
  // Consulted only when a warn or info comparator found a difference; a failure makes a
  // mismatch ("a differing body is fine as long as results.hint_list is non-empty").
  std::vector<std::string> escalate;
  std::vector<PathPattern> ignore;   // difference paths left out of the verdict
  SourcePosition fail_position, warn_position, info_position, escalate_position;
};

struct CompareConfig {
  std::vector<CompareRule> rules;    // ordered; first match wins
  CompareRule fallback;              // when no rule matches (stage-level fail/warn)
  std::chrono::nanoseconds timeout{std::chrono::seconds(10)};
  std::size_t max_pending = 100000;
  std::string baseline;              // stage name of the baseline replay; "" disables noise cancellation
  NoiseThresholds noise;
  std::size_t samples_per_path = 5;  // verdicts per endpoint x path that carry the exchange
  std::size_t sample_body_limit = 16 * 1024;
  std::size_t value_limit = 512;     // bytes of original/replay values shown per check
  std::size_t max_endpoints = 1000;
  std::size_t max_paths = 100000;    // endpoint x path aggregates kept
  std::size_t threads = 1;           // shards, each judged on a thread of its own; 1: on the caller's
};

class CompareStage : public Stage {
 public:
  explicit CompareStage(CompareConfig config);
  ~CompareStage() override;

  void start(StageContext& context) override;
  void process(const MessagePtr& message) override;
  void flush() override;
  void stop() override;
  std::size_t pending() const override;
  std::vector<Reference> comparator_references() const override;

 private:
  struct Verdict {
    std::string id;
    std::string payload;  // JSON
    std::shared_ptr<const void> lease;  // the leases of every side it joined
  };
  struct PathStats {
    std::uint64_t count = 0;    // exchanges that differed at this path
    std::uint64_t sampled = 0;  // verdicts that carried the exchange for it
  };
  struct Shard {
    explicit Shard(JoinTable t) : table(std::move(t)) {}
    mutable std::mutex mutex;
    JoinTable table;
  };

  std::size_t shard_of(const std::string& id) const;
  // Adds a side to its shard's table (on the caller's thread, or the shard's own).
  void handle(std::size_t shard, const MessagePtr& message);
  // Decides what the shards hold: joins past their deadline, or all of them.
  void sweep_all(bool everything);
  void judge_all(std::vector<DecidedJoin>& decided);
  // Adds the change of a shard's table (joins, decided ids) to the stage's gauges.
  void update_tables(std::int64_t joins_delta, std::int64_t decided_delta);
  struct Judging;
  // Judges a join: runs its rule's comparators and emits the verdict once the last one has
  // answered. Thread-safe; holds no lock while comparators run.
  void judge(DecidedJoin decided);
  // Starts runs [first, end) of `judging`; the one that completes last calls advance().
  void start_runs(const std::shared_ptr<Judging>& judging, std::size_t first);
  // Every run so far answered: escalate when a softer check found something, else finish.
  void advance(const std::shared_ptr<Judging>& judging);
  Verdict verdict_of(Judging& judging);
  void judged();  // one judgement fewer in flight
  const CompareRule& rule_for(std::string_view method, std::string_view path) const;
  std::string endpoint_for(const CompareRule& rule, std::string_view method, std::string_view path, bool grpc);
  void arm_timer();
  void emit(Verdict verdict);

  CompareConfig config_;
  std::vector<std::unique_ptr<Shard>> shards_;
  std::atomic<std::int64_t> pending_joins_{0};
  std::atomic<std::int64_t> decided_ids_{0};
  // The per-endpoint aggregates every shard adds to.
  std::mutex aggregates_mutex_;
  std::unordered_set<std::string> endpoints_;
  std::map<std::pair<std::string, std::string>, PathStats> paths_;  // (endpoint, comparator:path)
  NoiseModel noise_;
  // Counters resolved once, in start().
  std::map<std::string, Counter*, std::less<>> verdict_counters_;
  Counter* joins_expired_ = nullptr;
  Counter* joins_evicted_ = nullptr;
  Counter* endpoints_folded_ = nullptr;
  Counter* baseline_missing_ = nullptr;
  Counter* paths_untracked_ = nullptr;
  Counter* noise_untracked_ = nullptr;
  std::uint64_t noise_untracked_reported_ = 0;  // of noise_.untracked(), under aggregates_mutex_
  Gauge* pending_gauge_ = nullptr;
  // Table sizes (docs/operations.md, "Days-long runs").
  Gauge* joins_gauge_ = nullptr;
  Gauge* decided_gauge_ = nullptr;
  Gauge* endpoints_gauge_ = nullptr;
  Gauge* paths_gauge_ = nullptr;
  Gauge* noise_paths_gauge_ = nullptr;
  // Exchanges whose comparators have not all answered; flush() waits for none.
  mutable std::mutex judging_mutex_;
  std::condition_variable judging_done_;
  std::size_t judging_ = 0;
  struct TimerGuard {
    std::mutex mutex;
    CompareStage* stage = nullptr;  // null once stopped
  };
  void on_timer();
  std::shared_ptr<TimerGuard> guard_ = std::make_shared<TimerGuard>();
  IoThreads io_{1};  // its own: see doppel/io_threads.hpp
  std::unique_ptr<boost::asio::steady_timer> timer_;
  std::optional<ShardWorkers> workers_;  // with threads > 1; last, so that it stops first
};

}  // namespace doppel::plugins
