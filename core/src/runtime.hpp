#pragma once
// Runs a checked PipelineGraph: one worker thread per stage behind a bounded queue, one
// thread per input, a shared Asio I/O context, the stats line, /metrics (metrics_server.hpp),
// draining and the exit summary. A thread per stage keeps back-pressure simple (a producer
// blocks on a full queue, as stages expect of emit()); kMaxStages bounds how many that is.
#include <array>
#include <atomic>
#include <boost/asio/io_context.hpp>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <shared_mutex>
#include <stop_token>
#include <thread>
#include <vector>

#include "bounded_queue.hpp"
#include "decision_memory.hpp"
#include "pipeline_graph.hpp"
#include "privileges.hpp"
#include "progress_line.hpp"

namespace spdlog {
class logger;
}

namespace doppel::core {

class Runtime;
class MetricsServer;

// A stage as the runtime runs it; also the StageContext the stage sees.
class StageRunner : public StageContext {
 public:
  StageRunner(Runtime& runtime, StageNode& node, std::size_t queue_capacity, std::uint64_t queue_bytes);

  // StageContext
  const std::string& stage_name() const override { return node_.spec->name; }
  spdlog::logger& log() override { return *logger_; }
  bool emit(MessagePtr message) override;
  std::size_t emit_batch(std::vector<MessagePtr>& messages) override;
  void drop(std::string_view reason, std::uint64_t count = 1) override;
  void fail(std::string_view reason, std::uint64_t count = 1) override;
  Counter& counter(std::string_view name) override;
  Gauge& gauge(std::string_view name) override;
  bool stopping() const override;
  const Comparator* comparator(std::string_view name) override;
  void goal_missed(std::string message) override;
  KindSet input_kinds() const override { return node_.in; }
  OverflowPolicy overflow_policy() const override { return node_.overflow; }

  struct Snapshot {
    std::string name, plugin, role;
    std::uint64_t in = 0, out = 0, dropped = 0, failed = 0;
    std::vector<std::pair<std::string, std::uint64_t>> drops, failures, counters;
    std::vector<std::pair<std::string, std::int64_t>> gauges;
    std::size_t queued = 0;
    std::optional<std::size_t> decisions;  // a filter judging requests only: its decision memory's size
  };
  Snapshot snapshot() const;

 private:
  friend class Runtime;
  // Returns false when the message could not be queued (and counts why).
  bool enqueue(const MessagePtr& message, bool wait);
  void enqueue_batch(std::vector<MessagePtr>& messages, bool wait);  // counts what was refused
  void work();                          // the worker loop
  void handle(const MessagePtr& message);
  void call_process(const MessagePtr& message);
  void forward(const MessagePtr& message);  // emit on behalf of the stage
  void stamp(const MessagePtr& message);    // what emit() notes about a message first
  bool waits_on(const StageEdge& edge) const;  // emitting into `edge` waits for room
  void note_unread(Kind kind);                 // a message no downstream stage reads
  Counter& unread_counter(Kind kind);
  bool idle() const { return processed_.load() == enqueued_.load(); }
  Counter& named(std::map<std::string, std::unique_ptr<Counter>, std::less<>>& map, std::string_view name);

  Runtime& runtime_;
  StageNode& node_;
  std::shared_ptr<spdlog::logger> logger_;
  std::unique_ptr<BoundedQueue> queue_;  // null for inputs
  std::thread thread_;
  bool finished_ = false;  // inputs: run() returned

  Counter in_, out_;
  std::atomic<std::uint64_t> enqueued_{0}, processed_{0};
  std::atomic<std::uint64_t> flushes_requested_{0}, flushes_done_{0};
  mutable std::shared_mutex counters_mutex_;
  std::map<std::string, std::unique_ptr<Counter>, std::less<>> drops_, failures_, counters_;
  std::map<std::string, std::unique_ptr<Gauge>, std::less<>> gauges_;
  std::unique_ptr<DecisionMemory> decisions_;  // filters that judge requests only
  std::atomic<std::uint64_t> exceptions_logged_{0};
  std::array<std::atomic<Counter*>, 5> unread_{};  // by kind number
};

// A comparator as the runtime runs it (started before the stages, stopped after their
// threads); also the ComparatorContext it sees.
class ComparatorRunner : public ComparatorContext {
 public:
  ComparatorRunner(std::string name, ComparatorNode& node);

  const std::string& comparator_name() const override { return name_; }
  spdlog::logger& log() override { return *logger_; }
  Counter& counter(std::string_view name) override;

  // Role "comparator"; only counters. Listed once it has any.
  StageRunner::Snapshot snapshot() const;

 private:
  friend class Runtime;
  std::string name_;
  ComparatorNode& node_;
  std::shared_ptr<spdlog::logger> logger_;
  mutable std::mutex mutex_;
  std::map<std::string, std::unique_ptr<Counter>, std::less<>> counters_;
  bool started_ = false;
};

struct RuntimeOptions {
  bool test_mode = false;  // no inputs/outputs; messages are injected
  // Sees every message a stage emits (doppel test).
  std::function<void(const std::string& stage, const MessagePtr&)> tap;
  bool print_stats = true;
  // `doppel run` started as root works as this user from the stages' start on (privileges.hpp);
  // unset (tests running the runtime in their own process): the identity is left alone.
  std::optional<RunAs> run_as;
};

class Runtime {
 public:
  Runtime(PipelineGraph& graph, RuntimeOptions options = {});
  ~Runtime();

  // Starts the I/O threads, every stage, the workers and the inputs. Throws when a stage
  // fails to start (after stopping the ones already started).
  void start();
  // Blocks until every input finished or stop was requested and inputs returned.
  void wait_for_inputs();
  // Drains stage by stage, upstream first, until quiet or the drain deadline; then stops.
  void drain_and_stop();
  // First SIGINT/SIGTERM: inputs stop producing; the drain follows.
  void request_stop();

  // doppel test: put a message in front of a stage as if its upstream had sent it.
  bool inject(const std::string& stage, MessagePtr message);

  std::vector<StageRunner::Snapshot> snapshots() const;
  std::string stats_line();  // one line, rates since the previous call
  // What the inputs that report progress (progress.bytes_read) have read; nullopt: none does.
  std::optional<InputProgress> input_progress() const;
  std::string summary() const;
  // What the run lost, for the end of the summary: one line per stage and reason, e.g.
  // "WARNING: 179,503 of 200,000 messages (89.8%) dropped at candidate: queue_full".
  // Empty when nothing was lost. Deliberate drops (a filter's decision) are not losses.
  std::string loss_warnings() const;
  std::string prometheus_metrics() const;
  const std::vector<std::string>& goals_missed() const { return goals_missed_; }
  // Inputs whose run() ended with an error, as "<stage>: <what>".
  std::vector<std::string> input_errors() const;
  // Messages lost on the way, as opposed to decided against or skipped as unreadable: every
  // drop at an output (it could not deliver), every overflow/shutdown drop anywhere, and what
  // an input's source lost (a cut or damaged file). An input's own skips (unpaired capture,
  // ambiguous framing, a kind not selected) are warnings, not losses of the run.
  std::uint64_t lost_messages() const;
  std::uint64_t total_dropped() const;

 private:
  friend class StageRunner;
  void start_stats_thread();
  void flush_stage(StageRunner& runner, std::chrono::steady_clock::time_point deadline);
  void stop_comparators();
  bool wait_idle(StageRunner& runner, std::chrono::steady_clock::time_point deadline);

  PipelineGraph& graph_;
  RuntimeOptions options_;
  std::vector<std::unique_ptr<StageRunner>> runners_;
  std::vector<std::unique_ptr<ComparatorRunner>> comparator_runners_;
  boost::asio::io_context io_;
  std::unique_ptr<boost::asio::executor_work_guard<boost::asio::io_context::executor_type>> io_work_;
  std::vector<std::thread> io_threads_;
  std::stop_source input_stop_;
  std::atomic<bool> stopping_{false};
  std::atomic<bool> hard_stop_{false};
  mutable std::mutex inputs_mutex_;
  std::condition_variable inputs_done_;
  std::size_t inputs_running_ = 0;
  std::thread stats_thread_;
  std::mutex stats_mutex_;
  std::condition_variable stats_wake_;
  bool stats_stop_ = false;
  std::chrono::steady_clock::time_point started_at_, last_stats_at_;
  std::vector<std::uint64_t> last_out_;
  std::mutex goals_mutex_;
  std::vector<std::string> goals_missed_;
  std::vector<std::string> input_errors_;  // guarded by inputs_mutex_
  PrivilegeDrop privileges_;
  std::unique_ptr<MetricsServer> metrics_server_;  // when /metrics is on; after io_, so destroyed before it
  bool started_ = false, stopped_ = false;
};

}  // namespace doppel::core
