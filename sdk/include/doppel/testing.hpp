#pragma once
// Unit-test support for plugin authors: run one stage outside a pipeline, feed it messages,
// and look at what it emitted and counted. Used by doppel's own plugin tests.
#include <chrono>
#include <future>
#include <map>
#include <memory>
#include <mutex>
#include <spdlog/sinks/stdout_sinks.h>
#include <spdlog/spdlog.h>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

#include "doppel/plugin.hpp"

extern "C" const doppel_plugin_descriptor doppel_plugin_descriptor_v;

namespace doppel::testing {

// The definition named `name` in the plugin library linked into this test.
inline const PluginDefinition& linked_plugin(const std::string& name) {
  std::uint32_t count = 0;
  auto* defs = static_cast<const PluginDefinition*>(doppel_plugin_descriptor_v.definitions(&count));
  for (std::uint32_t i = 0; i < count; ++i)
    if (defs[i].name == name) return defs[i];
  throw std::runtime_error("no plugin named " + name + " in the linked library");
}

// Validates `options` against the plugin's schema; throws with every error joined.
inline Options validated_options(const PluginDefinition& def, const Value& options) {
  std::vector<ConfigError> errors;
  Options opts = Options::validate(options, def.options, errors);
  if (!errors.empty()) {
    std::string all;
    for (auto& e : errors) all += std::string(e.what()) + "\n";
    throw std::runtime_error(all);
  }
  return opts;
}

class StageHarness : public StageContext {
 public:
  StageHarness(const PluginDefinition& def, const Value& options, std::string name = "under_test")
      : name_(std::move(name)), logger_(std::make_shared<spdlog::logger>(
                                    name_, std::make_shared<spdlog::sinks::stderr_sink_mt>())) {
    stage_ = def.create_stage(validated_options(def, options));
  }
  ~StageHarness() override {
    if (started_ && !stopped_) stage_->stop();
  }

  Stage& stage() { return *stage_; }
  // Comparators the stage can look up by name (register before start).
  void add_comparator(std::string name, std::unique_ptr<Comparator> comparator) {
    comparators_[std::move(name)] = std::move(comparator);
  }
  // start() happens on first use unless called explicitly.
  void start() {
    if (!started_) stage_->start(*this);
    started_ = true;
  }
  void process(MessagePtr m) {
    start();
    stage_->process(m);
  }
  void run() {
    start();
    stage_->run(stop_source_.get_token());
  }
  void flush() {
    start();
    stage_->flush();
  }
  void stop() {
    start();
    stage_->stop();
    stopped_ = true;
  }
  // Waits (polling) until `done()` holds or `timeout` passes; for stages with threads of their own.
  template <class Pred>
  bool wait_until(Pred done, std::chrono::milliseconds timeout = std::chrono::seconds(10)) {
    auto deadline = std::chrono::steady_clock::now() + timeout;
    while (!done()) {
      if (std::chrono::steady_clock::now() > deadline) return false;
      std::this_thread::sleep_for(std::chrono::milliseconds(2));
    }
    return true;
  }

  std::vector<MessagePtr> emitted() {
    std::lock_guard lock(mutex_);
    return emitted_;
  }
  std::uint64_t dropped(const std::string& reason) {
    std::lock_guard lock(mutex_);
    return dropped_[reason];
  }
  std::uint64_t failed(const std::string& reason) {
    std::lock_guard lock(mutex_);
    return failed_[reason];
  }
  std::map<std::string, std::uint64_t> drops() {
    std::lock_guard lock(mutex_);
    return dropped_;
  }

  // StageContext
  const std::string& stage_name() const override { return name_; }
  spdlog::logger& log() override { return *logger_; }
  bool emit(MessagePtr message) override {
    std::lock_guard lock(mutex_);
    emitted_.push_back(std::move(message));
    return true;
  }
  void drop(std::string_view reason, std::uint64_t count) override {
    std::lock_guard lock(mutex_);
    dropped_[std::string(reason)] += count;
  }
  void fail(std::string_view reason, std::uint64_t count) override {
    std::lock_guard lock(mutex_);
    failed_[std::string(reason)] += count;
  }
  Counter& counter(std::string_view name) override {
    std::lock_guard lock(mutex_);
    return counters_[std::string(name)];
  }
  Gauge& gauge(std::string_view name) override {
    std::lock_guard lock(mutex_);
    return gauges_[std::string(name)];
  }
  bool stopping() const override { return stop_source_.stop_requested(); }
  void request_stop() { stop_source_.request_stop(); }
  void goal_missed(std::string message) override {
    std::lock_guard lock(mutex_);
    goals_missed_.push_back(std::move(message));
  }
  std::vector<std::string> goals_missed() {
    std::lock_guard lock(mutex_);
    return goals_missed_;
  }
  const Comparator* comparator(std::string_view name) override {
    auto it = comparators_.find(std::string(name));
    return it == comparators_.end() ? nullptr : it->second.get();
  }
  // What feeds the stage under test: a live capture (drop) or a file (block, the default).
  void set_overflow_policy(OverflowPolicy policy) { overflow_ = policy; }
  OverflowPolicy overflow_policy() const override { return overflow_; }
  // The kinds the stage under test can receive (every kind unless set).
  void set_input_kinds(KindSet kinds) { input_kinds_ = kinds; }
  KindSet input_kinds() const override { return input_kinds_; }

 private:
  OverflowPolicy overflow_ = OverflowPolicy::block;
  KindSet input_kinds_ = KindSet::all();
  std::string name_;
  std::shared_ptr<spdlog::logger> logger_;
  std::unique_ptr<Stage> stage_;
  std::stop_source stop_source_;
  bool started_ = false;
  bool stopped_ = false;
  std::map<std::string, std::unique_ptr<Comparator>> comparators_;
  std::mutex mutex_;
  std::vector<MessagePtr> emitted_;
  std::vector<std::string> goals_missed_;
  std::map<std::string, std::uint64_t> dropped_, failed_;
  std::map<std::string, Counter> counters_;
  std::map<std::string, Gauge> gauges_;
};

// One comparator outside a pipeline, with a context of its own: for comparators that run
// something (start/stop, counters, asynchronous answers).
class ComparatorHarness : public ComparatorContext {
 public:
  ComparatorHarness(const PluginDefinition& def, const Value& options, std::string name = "under_test")
      : name_(std::move(name)),
        logger_(std::make_shared<spdlog::logger>(name_, std::make_shared<spdlog::sinks::stderr_sink_mt>())),
        comparator_(def.create_comparator(validated_options(def, options))) {}
  ~ComparatorHarness() override { stop(); }

  Comparator& comparator() { return *comparator_; }
  void start() {
    if (started_) return;
    comparator_->start(*this);
    started_ = true;
  }
  void stop() {
    if (started_) comparator_->stop();
    started_ = false;
  }
  // Judges `exchange` (starting the comparator first) and waits for the outcome; throws when
  // none came within `timeout`.
  Judgement judge(const Exchange& exchange, std::chrono::milliseconds timeout = std::chrono::seconds(30)) {
    start();
    auto answer = std::make_shared<std::promise<Judgement>>();
    auto future = answer->get_future();
    comparator_->compare_async(exchange, [answer](Judgement j) { answer->set_value(std::move(j)); });
    if (future.wait_for(timeout) != std::future_status::ready)
      throw std::runtime_error("the comparator did not answer in time");
    return future.get();
  }
  // A counter's value; 0 when the comparator never created it.
  std::uint64_t count(const std::string& name) {
    std::lock_guard lock(mutex_);
    auto it = counters_.find(name);
    return it == counters_.end() ? 0 : it->second.value();
  }

  // ComparatorContext
  const std::string& comparator_name() const override { return name_; }
  spdlog::logger& log() override { return *logger_; }
  Counter& counter(std::string_view name) override {
    std::lock_guard lock(mutex_);
    return counters_[std::string(name)];
  }

 private:
  std::string name_;
  std::shared_ptr<spdlog::logger> logger_;
  std::unique_ptr<Comparator> comparator_;
  bool started_ = false;
  std::mutex mutex_;
  std::map<std::string, Counter> counters_;
};

inline MessagePtr make_message(Kind kind, std::string payload, std::string id = "",
                               std::int64_t timestamp_ns = 0) {
  if (id.empty()) id = new_message_id();
  return share(Message(kind, std::move(id), timestamp_ns, std::move(payload)));
}

}  // namespace doppel::testing
