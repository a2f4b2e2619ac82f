#pragma once
// The stage interface and what the runtime offers a running stage.
//
// Lifecycle: configure (the plugin's factory, given validated Options) -> start -> process
// (or run, for inputs) -> flush -> stop. flush may be called more than once while draining
// (a stage in a loop can receive more work after its first flush); stop is called once.
#include <atomic>
#include <cstdint>
#include <iosfwd>
#include <memory>
#include <optional>
#include <stop_token>
#include <string>
#include <string_view>

#include <vector>

#include "doppel/comparator.hpp"
#include "doppel/kinds.hpp"
#include "doppel/message.hpp"
#include "doppel/value.hpp"

namespace spdlog {
class logger;
}

namespace doppel {

class Counter {
 public:
  void add(std::uint64_t n = 1) { value_.fetch_add(n, std::memory_order_relaxed); }
  std::uint64_t value() const { return value_.load(std::memory_order_relaxed); }

 private:
  std::atomic<std::uint64_t> value_{0};
};

class Gauge {
 public:
  void set(std::int64_t v) { value_.store(v, std::memory_order_relaxed); }
  std::int64_t value() const { return value_.load(std::memory_order_relaxed); }

 private:
  std::atomic<std::int64_t> value_{0};
};

// What happens when a queue is full: downstream of an input, or inside a stage (an output's
// own queue of requests waiting for a connection).
enum class OverflowPolicy {
  block,  // wait for room (file inputs: back-pressure, nothing lost)
  drop,   // drop the message and count it as `queue_full` (live inputs never stall capture)
};

class StageContext {
 public:
  virtual ~StageContext() = default;
  virtual const std::string& stage_name() const = 0;
  virtual spdlog::logger& log() = 0;

  // Hands a message to every downstream stage that accepts its kind. Thread-safe.
  // Returns false when it was dropped (queue full under the drop policy, or shutting down).
  virtual bool emit(MessagePtr message) = 0;
  // Emits `messages` in order, as emit() would one by one, but hands them to each downstream
  // stage in one go (a capture emitting a million messages a second pays one queue hand-off
  // per batch instead of one per message). Empties `messages`; returns how many were taken.
  virtual std::size_t emit_batch(std::vector<MessagePtr>& messages) {
    std::size_t taken = 0;
    for (auto& m : messages) taken += emit(std::move(m)) ? 1 : 0;
    messages.clear();
    return taken;
  }

  // A dropped message, counted under `reason` (shown in stats, summary and /metrics).
  virtual void drop(std::string_view reason, std::uint64_t count = 1) = 0;
  // A message this stage failed to handle (an exception, a bad payload), counted under `reason`.
  virtual void fail(std::string_view reason, std::uint64_t count = 1) = 0;
  // A named counter or gauge of this stage; declare its name in the plugin's metrics list.
  virtual Counter& counter(std::string_view name) = 0;
  virtual Gauge& gauge(std::string_view name) = 0;

  // True once shutdown began: inputs should stop producing.
  virtual bool stopping() const = 0;
  // A comparator by the name rules use: a `[comparators.NAME]` declared in the pipeline, or a
  // stock comparator plugin with default options. nullptr when there is none (the runtime
  // validates Stage::comparator_references() before start, so a stage may treat it as a bug).
  virtual const Comparator* comparator(std::string_view name) = 0;
  // A goal of the run was missed (e.g. a report's `fail_if`); `doppel run` exits with code 3
  // after draining, and prints `message` in its summary.
  virtual void goal_missed(std::string message) = 0;
  // The overflow policy of what feeds this stage, for a stage with a queue of its own whose
  // `overflow` option was left to its default: `drop` when a live input (capture) reaches it
  // through any path, `block` when only inputs that can wait (files, NATS) do. Resolved by
  // the runtime from the graph before start(); an input gets its own policy.
  virtual OverflowPolicy overflow_policy() const { return OverflowPolicy::block; }
  // The kinds that can reach this stage through its `from` edges, as the pipeline graph
  // computed them before start() (e.g. no `response` unless an input tracks responses).
  // Every kind when unknown.
  virtual KindSet input_kinds() const { return KindSet::all(); }
};

// A name a stage refers to (a comparator), with where it was written, checked at validation.
struct Reference {
  std::string name;
  SourcePosition position;
};

class Stage {
 public:
  virtual ~Stage() = default;

  // Called once before any message flows. Keep the context: it outlives the stage.
  virtual void start(StageContext& context) { context_ = &context; }
  // Inputs: produce messages with context().emit until the source is exhausted or `stop`
  // is requested. Runs on a thread of its own.
  virtual void run(std::stop_token /*stop*/) {}
  // Everything but inputs: handle one message. Called from one worker thread at a time.
  virtual void process(const MessagePtr& /*message*/) {}
  // Finish work in progress and emit what results (e.g. wait for replies in flight).
  virtual void flush() {}
  // Release resources; no message will arrive after this.
  virtual void stop() {}

  // Work in progress that will still emit messages (requests in flight, pending joins).
  virtual std::size_t pending() const { return 0; }
  // The kinds this configured instance produces, when narrower than its plugin declares
  // (e.g. an HTTP output emits `replay` only with track_response = true).
  virtual std::optional<KindSet> produces() const { return std::nullopt; }
  // Inputs: the policy for a full queue downstream; `drop` for a live source (it cannot be
  // paused without losing data elsewhere), `block` for one that can wait (a file). Asked
  // after configuration, before start(); the stages it feeds follow it by default.
  virtual OverflowPolicy overflow_policy() const { return OverflowPolicy::block; }
  // Comparator names this stage will ask the context for; validated before anything starts.
  virtual std::vector<Reference> comparator_references() const { return {}; }
  // Inputs: for `doppel run --dry-run`, describe what would be produced; false when unsupported.
  virtual bool dry_run(std::ostream& /*out*/) { return false; }
  // Whether start() opens what only a privileged process may: a live capture (CAP_NET_RAW). A
  // pipeline started as root that has such a stage works as [pipeline] user from its start and
  // ends it with no capability (docs/security.md); asked after configuration, before start().
  virtual bool needs_privileges() const { return false; }

 protected:
  StageContext& context() const { return *context_; }

 private:
  StageContext* context_ = nullptr;
};

}  // namespace doppel
