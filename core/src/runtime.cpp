#include "runtime.hpp"

#include <unistd.h>

#include <spdlog/spdlog.h>

#include <algorithm>
#include <cinttypes>
#include <cstdio>
#include <sstream>

#include "doppel/units.hpp"
#include "metrics_server.hpp"

namespace doppel::core {
namespace {

// The request a requests-only filter is judging on this thread, and whether it emitted it.
thread_local const StageRunner* judging_stage = nullptr;
thread_local const Message* judged_request = nullptr;
thread_local bool judged_request_emitted = false;

std::string human(std::uint64_t n) {
  char buf[32];
  if (n >= 10'000'000) std::snprintf(buf, sizeof buf, "%.1fM", static_cast<double>(n) / 1e6);
  else if (n >= 10'000) std::snprintf(buf, sizeof buf, "%.1fk", static_cast<double>(n) / 1e3);
  else std::snprintf(buf, sizeof buf, "%" PRIu64, n);
  return buf;
}

// 179503 -> "179,503"
std::string grouped(std::uint64_t n) {
  std::string digits = std::to_string(n), out;
  for (std::size_t i = 0; i < digits.size(); ++i) {
    if (i && (digits.size() - i) % 3 == 0) out += ',';
    out += digits[i];
  }
  return out;
}

// Drop reasons that are losses wherever they are counted: the message could have been
// delivered had there been room or time. Other reasons on filters and middleware are their
// decisions (a URL not allowed, a sample not taken); on inputs and outputs every drop is a loss.
bool loss_anywhere(std::string_view reason) {
  return reason == "queue_full" || reason == "shutdown" || reason == "buffer_full" || reason == "lost_in_restart";
}

// An input's drops are warnings (an unpaired capture, a record not selected), except where
// the source itself lost messages: a cut or damaged file, a record over the size bound.
bool input_source_loss(std::string_view reason) {
  return reason == "truncated_input" || reason == "corrupt_input" || reason == "unreadable_file" ||
         reason == "record_too_large" || reason == "corrupt_record";
}

std::string prometheus_escape(const std::string& s) {
  std::string out;
  for (char c : s) {
    if (c == '"' || c == '\\') out += '\\';
    if (c == '\n') {
      out += "\\n";
      continue;
    }
    out += c;
  }
  return out;
}

std::string metric_name(std::string s) {
  for (char& c : s)
    if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '_')) c = '_';
  return s;
}

}  // namespace

// ---------------------------------------------------------------- StageRunner

StageRunner::StageRunner(Runtime& runtime, StageNode& node, std::size_t queue_capacity, std::uint64_t queue_bytes)
    : runtime_(runtime), node_(node), logger_(spdlog::default_logger()->clone(node.spec->name)) {
  if (node.spec->role != Role::input) queue_ = std::make_unique<BoundedQueue>(queue_capacity, queue_bytes);
  if (node.definition->requests_only)
    decisions_ = std::make_unique<DecisionMemory>(runtime.graph_.spec.settings.decision_ttl.count(),
                                                  runtime.graph_.spec.settings.decision_capacity);
}

bool StageRunner::stopping() const { return runtime_.stopping_.load(); }

const Comparator* StageRunner::comparator(std::string_view name) {
  auto it = runtime_.graph_.comparators.find(name);
  return it == runtime_.graph_.comparators.end() ? nullptr : it->second.comparator.get();
}

void StageRunner::goal_missed(std::string message) {
  std::lock_guard lock(runtime_.goals_mutex_);
  runtime_.goals_missed_.push_back(node_.spec->name + ": " + std::move(message));
}

Counter& StageRunner::named(std::map<std::string, std::unique_ptr<Counter>, std::less<>>& map, std::string_view name) {
  {
    std::shared_lock lock(counters_mutex_);
    auto it = map.find(name);
    if (it != map.end()) return *it->second;
  }
  std::unique_lock lock(counters_mutex_);
  auto& slot = map[std::string(name)];
  if (!slot) slot = std::make_unique<Counter>();
  return *slot;
}

void StageRunner::drop(std::string_view reason, std::uint64_t count) { named(drops_, reason).add(count); }
void StageRunner::fail(std::string_view reason, std::uint64_t count) { named(failures_, reason).add(count); }
Counter& StageRunner::counter(std::string_view name) { return named(counters_, name); }

Gauge& StageRunner::gauge(std::string_view name) {
  {
    std::shared_lock lock(counters_mutex_);
    auto it = gauges_.find(name);
    if (it != gauges_.end()) return *it->second;
  }
  std::unique_lock lock(counters_mutex_);
  auto& slot = gauges_[std::string(name)];
  if (!slot) slot = std::make_unique<Gauge>();
  return *slot;
}

void StageRunner::stamp(const MessagePtr& message) {
  // Stamp the emitting stage on messages nobody else holds yet (a fresh message).
  if (message->meta.stage.empty() && message.use_count() == 1)
    const_cast<Message&>(*message).meta.stage = node_.spec->name;
  if (judging_stage == this && judged_request == message.get()) judged_request_emitted = true;
}

bool StageRunner::emit(MessagePtr message) {
  if (!message) return false;
  stamp(message);
  forward(message);
  return true;
}

std::size_t StageRunner::emit_batch(std::vector<MessagePtr>& messages) {
  std::erase(messages, nullptr);
  if (messages.empty()) return 0;
  for (const auto& message : messages) stamp(message);
  std::size_t n = messages.size();
  out_.add(n);
  if (runtime_.options_.tap)
    for (const auto& message : messages) runtime_.options_.tap(node_.spec->name, message);
  // One hand-off per downstream stage, each getting the messages of the kinds it reads, in order.
  std::size_t last_reader = node_.downstream.size();
  for (std::size_t e = 0; e < node_.downstream.size(); ++e)
    for (const auto& message : messages)
      if (node_.downstream[e].carries(*message)) {
        last_reader = e;
        break;
      }
  std::vector<MessagePtr> share;
  for (std::size_t e = 0; e < node_.downstream.size() && last_reader < node_.downstream.size(); ++e) {
    const auto& edge = node_.downstream[e];
    share.clear();
    for (auto& message : messages) {
      if (!message || !edge.carries(*message)) continue;
      if (e == last_reader) share.push_back(std::move(message));  // the last reader takes them
      else share.push_back(message);
    }
    if (share.empty()) continue;
    runtime_.runners_[edge.to]->enqueue_batch(share, waits_on(edge));
  }
  // What is left was read by no downstream stage (those taken by the last reader are null).
  for (const auto& message : messages)
    if (message && std::none_of(node_.downstream.begin(), node_.downstream.end(),
                                [&](const StageEdge& edge) { return edge.carries(*message); }))
      note_unread(message->kind);
  messages.clear();
  return n;
}

void StageRunner::forward(const MessagePtr& message) {
  out_.add();
  if (runtime_.options_.tap) runtime_.options_.tap(node_.spec->name, message);
  bool routed = false;
  for (const auto& edge : node_.downstream) {
    if (!edge.carries(*message)) continue;
    runtime_.runners_[edge.to]->enqueue(message, waits_on(edge));
    routed = true;
  }
  if (!routed) note_unread(message->kind);
}

bool StageRunner::waits_on(const StageEdge& edge) const {
  // Live inputs drop rather than wait. Edges closing a loop never wait: two stages waiting on
  // each other would stall forever.
  bool live_input = node_.spec->role == Role::input && node_.stage->overflow_policy() == OverflowPolicy::drop;
  return !live_input && !edge.closes_loop;
}

void StageRunner::note_unread(Kind kind) {
  // A kind no downstream stage accepts ends here: counted, never silently.
  if (!node_.downstream.empty() && !runtime_.options_.test_mode) unread_counter(kind).add();
}

Counter& StageRunner::unread_counter(Kind kind) {
  // Looked up once per kind: unread messages can be every message of a kind (replays passing
  // a filter whose readers take requests only).
  auto& slot = unread_[static_cast<std::size_t>(kind)];
  Counter* c = slot.load(std::memory_order_acquire);
  if (!c) {
    c = &counter(std::string("unread_") + std::string(kind_name(kind)));
    slot.store(c, std::memory_order_release);
  }
  return *c;
}

bool StageRunner::enqueue(const MessagePtr& message, bool wait) {
  enqueued_.fetch_add(1);
  auto result = queue_->push(message, wait, runtime_.hard_stop_);
  if (result == BoundedQueue::Push::ok) return true;
  enqueued_.fetch_sub(1);
  drop(result == BoundedQueue::Push::full ? "queue_full" : "shutdown");
  return false;
}

void StageRunner::enqueue_batch(std::vector<MessagePtr>& messages, bool wait) {
  enqueued_.fetch_add(messages.size());
  auto [pushed, result] = queue_->push_batch(messages, wait, runtime_.hard_stop_);
  if (pushed == messages.size()) return;
  std::size_t refused = messages.size() - pushed;
  enqueued_.fetch_sub(refused);
  drop(result == BoundedQueue::Push::full ? "queue_full" : "shutdown", refused);
}

void StageRunner::work() {
  std::vector<MessagePtr> batch;
  batch.reserve(64);
  while (queue_->pop_batch(batch, 64)) {
    // Counted per run of messages, not per message: these counters are shared with the
    // producers' threads, and the drain only needs them exact at flush markers and batch ends.
    std::uint64_t handled = 0;
    auto count_handled = [&] {
      if (handled == 0) return;
      in_.add(handled);
      processed_.fetch_add(handled);
      handled = 0;
    };
    for (auto& message : batch) {
      if (!message) {  // flush marker
        count_handled();
        try {
          node_.stage->flush();
        } catch (const std::exception& e) {
          logger_->error("flush failed: {}", e.what());
          fail("flush_exception");
        }
        flushes_done_.fetch_add(1);
        continue;
      }
      handle(message);
      ++handled;
    }
    count_handled();
    batch.clear();
  }
}

void StageRunner::call_process(const MessagePtr& message) {
  try {
    node_.stage->process(message);
  } catch (const std::exception& e) {
    fail("exception");
    // The first few are logged in full; the counter tells the rest.
    if (exceptions_logged_.fetch_add(1) < 5)
      logger_->error("failed to process {} {}: {}", kind_name(message->kind), message->id, e.what());
  }
}

void StageRunner::handle(const MessagePtr& message) {
  if (!decisions_) {
    call_process(message);
    return;
  }
  std::int64_t now = now_ns();
  if (message->kind == Kind::request) {
    judging_stage = this;
    judged_request = message.get();
    judged_request_emitted = false;
    call_process(message);
    decisions_->remember(message->id, judged_request_emitted, now);
    judging_stage = nullptr;
    judged_request = nullptr;
    return;
  }
  // Responses follow their request: dropped with it, passed with it. One whose request was
  // never judged here passes (GoReplay does the same) and is counted.
  auto decision = decisions_->lookup(message->id, now);
  if (decision && !*decision) {
    drop("request_dropped");
    return;
  }
  if (!decision) counter("responses_without_request").add();
  forward(message);
}

StageRunner::Snapshot StageRunner::snapshot() const {
  Snapshot s;
  s.name = node_.spec->name;
  s.plugin = node_.definition->name;
  s.role = std::string(role_name(node_.spec->role));
  s.in = in_.value();
  s.out = out_.value();
  s.queued = queue_ ? queue_->size() : 0;
  std::shared_lock lock(counters_mutex_);
  for (const auto& [k, v] : drops_) {
    s.drops.emplace_back(k, v->value());
    s.dropped += v->value();
  }
  for (const auto& [k, v] : failures_) {
    s.failures.emplace_back(k, v->value());
    s.failed += v->value();
  }
  for (const auto& [k, v] : counters_) s.counters.emplace_back(k, v->value());
  for (const auto& [k, v] : gauges_) s.gauges.emplace_back(k, v->value());
  if (decisions_) {
    if (decisions_->evicted()) s.counters.emplace_back("decisions_evicted", decisions_->evicted());
    s.decisions = decisions_->size();
  }
  return s;
}

// ---------------------------------------------------------------- ComparatorRunner

ComparatorRunner::ComparatorRunner(std::string name, ComparatorNode& node)
    : name_(std::move(name)), node_(node), logger_(spdlog::default_logger()->clone(name_)) {}

Counter& ComparatorRunner::counter(std::string_view name) {
  std::lock_guard lock(mutex_);
  auto& slot = counters_[std::string(name)];
  if (!slot) slot = std::make_unique<Counter>();
  return *slot;
}

StageRunner::Snapshot ComparatorRunner::snapshot() const {
  StageRunner::Snapshot s;
  s.name = name_;
  s.plugin = node_.definition ? node_.definition->name : name_;
  s.role = "comparator";
  std::lock_guard lock(mutex_);
  for (const auto& [k, v] : counters_) s.counters.emplace_back(k, v->value());
  return s;
}

// ---------------------------------------------------------------- Runtime

Runtime::Runtime(PipelineGraph& graph, RuntimeOptions options) : graph_(graph), options_(std::move(options)) {
  for (auto& node : graph_.stages) {
    const auto& settings = graph_.spec.settings;
    std::size_t capacity = node.spec->queue_capacity ? node.spec->queue_capacity : settings.queue_capacity;
    std::uint64_t bytes = node.spec->queue_bytes ? node.spec->queue_bytes : settings.queue_bytes;
    runners_.push_back(std::make_unique<StageRunner>(*this, node, capacity, bytes));
  }
  for (auto& [name, node] : graph_.comparators) comparator_runners_.push_back(std::make_unique<ComparatorRunner>(name, node));
  last_out_.assign(runners_.size(), 0);
}

Runtime::~Runtime() {
  if (started_ && !stopped_) {
    hard_stop_ = true;
    drain_and_stop();
  }
}

void Runtime::start() {
  started_ = true;
  started_at_ = last_stats_at_ = std::chrono::steady_clock::now();
  io_work_ = std::make_unique<boost::asio::executor_work_guard<boost::asio::io_context::executor_type>>(
      io_.get_executor());
  // Bound before any stage starts: an address in use fails the run while nothing runs yet.
  if (graph_.spec.settings.metrics) {
    try {
      metrics_server_ =
          std::make_unique<MetricsServer>(io_, *graph_.spec.settings.metrics, [this] { return prometheus_metrics(); });
    } catch (const std::exception&) {
      io_work_.reset();
      stopped_ = true;
      throw;
    }
    const auto& address = *graph_.spec.settings.metrics;
    if (address.host.empty()) spdlog::info("serving metrics on port {} of every interface, at /metrics", address.port);
    else spdlog::info("serving metrics on http://{}/metrics", address.text);
  }
  io_threads_.emplace_back([this] { io_.run(); });  // serves /metrics

  // Comparators first: a stage may judge as soon as it starts. Then downstream stages
  // first, so nothing is emitted into a stage that is not ready.
  std::vector<StageRunner*> started;
  try {
    if (options_.run_as && geteuid() == 0) {
      bool privileged = std::any_of(graph_.stages.begin(), graph_.stages.end(),
                                    [](const auto& node) { return node.stage && node.stage->needs_privileges(); });
      if (!privileged) {
        spdlog::warn("running as root, which nothing in this pipeline needs (it opens no live capture): run it as "
                     "an ordinary user (docs/security.md)");
      } else if (PrivilegeDrop::applies(geteuid(), *options_.run_as)) {
        privileges_.begin(*options_.run_as);
        spdlog::info("working as user {} (uid {}, gid {}); capture capabilities kept until every stage has started",
                     options_.run_as->name, options_.run_as->uid, options_.run_as->gid);
      } else {
        spdlog::warn("running as root for the whole run ([pipeline] user = \"{}\"): see docs/security.md",
                     options_.run_as->name);
      }
    }
    for (auto& c : comparator_runners_) {
      c->node_.comparator->start(*c);
      c->started_ = true;
    }
    for (auto c = graph_.components.rbegin(); c != graph_.components.rend(); ++c) {
      for (int v : *c) {
        auto& runner = *runners_[v];
        runner.node_.stage->start(runner);
        started.push_back(&runner);
      }
    }
    privileges_.finish();
    if (privileges_.active()) spdlog::debug("capabilities after the start: {}", capability_summary());
  } catch (const std::exception& e) {
    // Stop what already started, then let the caller report the failure.
    for (auto* r : started) {
      try {
        r->node_.stage->stop();
      } catch (...) {
      }
    }
    stop_comparators();
    io_work_.reset();
    io_.stop();
    for (auto& t : io_threads_) t.join();
    io_threads_.clear();
    metrics_server_.reset();
    stopped_ = true;
    // A file or port the stage could not open as the user doppel works as: say so.
    std::string_view what = e.what();
    const RunAs* user = privileges_.target();
    if (user && (what.find("Permission denied") != what.npos || what.find("Operation not permitted") != what.npos))
      throw std::runtime_error(std::string(what) + " (doppel works as user \"" + user->name +
                               "\" once started as root: open the files it reads and writes to that user, or "
                               "set [pipeline] user)");
    throw;
  }
  for (auto& runner : runners_) {
    if (runner->queue_) runner->thread_ = std::thread([r = runner.get()] { r->work(); });
  }
  for (auto& runner : runners_) {
    if (runner->node_.spec->role != Role::input) continue;
    {
      std::lock_guard lock(inputs_mutex_);
      ++inputs_running_;
    }
    runner->thread_ = std::thread([this, r = runner.get()] {
      try {
        r->node_.stage->run(input_stop_.get_token());
      } catch (const std::exception& e) {
        r->logger_->error("input stopped with an error: {}", e.what());
        r->fail("exception");
        std::lock_guard lock(inputs_mutex_);
        input_errors_.push_back(r->node_.spec->name + ": " + e.what());
      }
      std::lock_guard lock(inputs_mutex_);
      r->finished_ = true;
      --inputs_running_;
      inputs_done_.notify_all();
    });
  }
  if (options_.print_stats && graph_.spec.settings.stats_interval.count() > 0) start_stats_thread();
}

void Runtime::request_stop() {
  stopping_ = true;
  input_stop_.request_stop();
}

void Runtime::wait_for_inputs() {
  std::unique_lock lock(inputs_mutex_);
  inputs_done_.wait(lock, [&] { return inputs_running_ == 0; });
}

bool Runtime::inject(const std::string& stage, MessagePtr message) {
  int index = graph_.find(stage);
  if (index < 0 || !runners_[index]->queue_) return false;
  return runners_[index]->enqueue(message, true);
}

bool Runtime::wait_idle(StageRunner& runner, std::chrono::steady_clock::time_point deadline) {
  while (!runner.idle()) {
    if (std::chrono::steady_clock::now() > deadline) return false;
    std::this_thread::sleep_for(std::chrono::microseconds(500));
  }
  return true;
}

void Runtime::flush_stage(StageRunner& runner, std::chrono::steady_clock::time_point deadline) {
  std::uint64_t target = runner.flushes_requested_.fetch_add(1) + 1;
  runner.queue_->push_control(nullptr);
  while (runner.flushes_done_.load() < target) {
    if (std::chrono::steady_clock::now() > deadline) return;
    std::this_thread::sleep_for(std::chrono::microseconds(500));
  }
}

void Runtime::drain_and_stop() {
  if (stopped_) return;
  auto deadline = std::chrono::steady_clock::now() + graph_.spec.settings.drain_timeout;
  if (!hard_stop_) {
    // Upstream components first; a loop is flushed round after round until it is quiet.
    for (const auto& component : graph_.components) {
      for (int round = 0; round < 1000 && std::chrono::steady_clock::now() < deadline; ++round) {
        std::uint64_t before = 0, after = 0;
        for (int v : component) before += runners_[v]->enqueued_.load();
        for (int v : component) {
          auto& r = *runners_[v];
          if (!r.queue_) continue;
          wait_idle(r, deadline);
          flush_stage(r, deadline);
        }
        std::size_t pending = 0;
        for (int v : component) {
          auto& r = *runners_[v];
          if (r.queue_) wait_idle(r, deadline);
          pending += r.node_.stage->pending();
        }
        for (int v : component) after += runners_[v]->enqueued_.load();
        if (after == before && pending == 0) break;
        if (after == before && pending > 0) std::this_thread::sleep_for(std::chrono::milliseconds(5));
      }
    }
    if (std::chrono::steady_clock::now() >= deadline)
      spdlog::warn("drain deadline ({}) passed; dropping what is still queued",
                   format_duration(graph_.spec.settings.drain_timeout));
  }
  hard_stop_ = true;
  stopping_ = true;
  input_stop_.request_stop();
  for (auto& r : runners_) {
    if (!r->queue_) continue;
    std::size_t left = r->queue_->close(true);
    if (left) r->drop("shutdown", left);
  }
  for (auto& r : runners_) {
    if (!r->thread_.joinable()) continue;
    if (r->node_.spec->role == Role::input && !r->finished_) {
      // An input that ignores its stop token must not hold the process hostage.
      std::unique_lock lock(inputs_mutex_);
      if (!inputs_done_.wait_for(lock, std::chrono::seconds(5), [&] { return r->finished_; })) {
        spdlog::error("input {} did not stop; leaving it behind", r->node_.spec->name);
        r->thread_.detach();
        continue;
      }
    }
    r->thread_.join();
  }
  // Before the stages: what a comparator still owes is answered (as errors) while the stage
  // that asked can still write its verdict.
  stop_comparators();
  for (auto& r : runners_) {
    try {
      r->node_.stage->stop();
    } catch (const std::exception& e) {
      r->logger_->error("stop failed: {}", e.what());
    }
  }
  {
    std::lock_guard lock(stats_mutex_);
    stats_stop_ = true;
  }
  stats_wake_.notify_all();
  if (stats_thread_.joinable()) stats_thread_.join();
  io_work_.reset();
  io_.stop();
  for (auto& t : io_threads_) t.join();
  io_threads_.clear();
  metrics_server_.reset();
  stopped_ = true;
}

void Runtime::stop_comparators() {
  for (auto& c : comparator_runners_) {
    if (!c->started_) continue;
    c->started_ = false;
    try {
      c->node_.comparator->stop();
    } catch (const std::exception& e) {
      c->logger_->error("stop failed: {}", e.what());
    }
  }
}

std::vector<StageRunner::Snapshot> Runtime::snapshots() const {
  std::vector<StageRunner::Snapshot> out;
  for (const auto& r : runners_) out.push_back(r->snapshot());
  for (const auto& c : comparator_runners_)
    if (auto s = c->snapshot(); !s.counters.empty()) out.push_back(std::move(s));
  return out;
}

std::vector<std::string> Runtime::input_errors() const {
  std::lock_guard lock(inputs_mutex_);
  return input_errors_;
}

std::uint64_t Runtime::lost_messages() const {
  std::uint64_t lost = 0;
  for (const auto& s : snapshots())
    for (const auto& [reason, count] : s.drops)
      if (s.role == "output" || loss_anywhere(reason) || (s.role == "input" && input_source_loss(reason)))
        lost += count;
  return lost;
}

std::uint64_t Runtime::total_dropped() const {
  std::uint64_t total = 0;
  for (const auto& s : snapshots()) total += s.dropped;
  return total;
}

std::string Runtime::stats_line() {
  auto now = std::chrono::steady_clock::now();
  double seconds = std::chrono::duration<double>(now - last_stats_at_).count();
  last_stats_at_ = now;
  std::string line = "stats:";
  auto snaps = snapshots();
  for (std::size_t i = 0; i < runners_.size(); ++i) {
    const auto& s = snaps[i];
    double rate = seconds > 0 ? static_cast<double>(s.out - last_out_[i]) / seconds : 0;
    last_out_[i] = s.out;
    char buf[64];
    std::snprintf(buf, sizeof buf, "%.0f/s", rate);
    line += " " + s.name + "[";
    if (s.role != "input") line += "in=" + human(s.in) + " ";
    line += "out=" + human(s.out) + " " + buf;
    if (s.dropped) line += " dropped=" + human(s.dropped);
    if (s.failed) line += " failed=" + human(s.failed);
    if (s.queued) line += " queued=" + human(s.queued);
    for (const auto& [k, v] : s.gauges) line += " " + k + "=" + std::to_string(v);
    line += "]";
  }
  return line;
}

std::optional<InputProgress> Runtime::input_progress() const {
  std::optional<InputProgress> progress;
  bool total_known = true, finished = true;
  auto snaps = snapshots();
  for (std::size_t i = 0; i < snaps.size(); ++i) {
    const auto& s = snaps[i];
    if (s.role != "input") continue;
    std::optional<std::int64_t> read, total;
    for (const auto& [k, v] : s.gauges) {
      if (k == "progress.bytes_read") read = v;
      else if (k == "progress.bytes_total") total = v;
    }
    if (!read) continue;
    if (!progress) progress.emplace();
    {
      std::lock_guard lock(inputs_mutex_);
      finished = finished && runners_[i]->finished_;
    }
    progress->records += s.out;
    progress->bytes_read += static_cast<std::uint64_t>(std::max<std::int64_t>(0, *read));
    if (!total || *total <= 0) total_known = false;
    else progress->bytes_total += static_cast<std::uint64_t>(*total);
  }
  if (progress && !total_known) progress->bytes_total = 0;
  if (progress) progress->finished = finished;
  return progress;
}

void Runtime::start_stats_thread() {
  // On a terminal, inputs that read files get a progress line rewritten in place instead of
  // the stats line (which a log file or a pipe keeps getting).
  bool progress_inputs = false;
  for (const auto& runner : runners_)
    if (runner->node_.spec->role == Role::input)
      for (const auto& metric : runner->node_.definition->metrics)
        progress_inputs = progress_inputs || metric.name == "progress.bytes_read";
  if (progress_inputs && isatty(STDERR_FILENO)) {
    stats_thread_ = std::thread([this] {
      ProgressLine line(started_at_);
      auto draw = [&](const char* end) {
        if (auto progress = input_progress())
          std::fprintf(stderr, "\r%s\033[K%s", line.render(*progress, std::chrono::steady_clock::now()).c_str(), end);
      };
      std::unique_lock lock(stats_mutex_);
      while (!stats_wake_.wait_for(lock, std::chrono::milliseconds(500), [&] { return stats_stop_; })) {
        lock.unlock();
        draw("");
        lock.lock();
      }
      draw("\n");  // the last figures stay on screen above the summary
    });
    return;
  }
  stats_thread_ = std::thread([this] {
    std::unique_lock lock(stats_mutex_);
    while (!stats_wake_.wait_for(lock, graph_.spec.settings.stats_interval, [&] { return stats_stop_; })) {
      lock.unlock();
      std::string line = stats_line();
      std::fprintf(stderr, "%s\n", line.c_str());
      lock.lock();
    }
  });
}

std::string Runtime::summary() const {
  auto snaps = snapshots();
  double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - started_at_).count();
  std::ostringstream out;
  out << "doppel summary";
  if (!graph_.spec.settings.name.empty()) out << " for pipeline \"" << graph_.spec.settings.name << "\"";
  char buf[64];
  std::snprintf(buf, sizeof buf, " (%.1fs)", seconds);
  out << buf << "\n";
  char header[128];
  std::snprintf(header, sizeof header, "  %-18s %-12s %12s %12s %12s %10s\n", "stage", "plugin", "in", "out",
                "dropped", "failed");
  out << header;
  for (const auto& s : snaps) {
    char line[256];
    if (s.role == "comparator") {
      std::snprintf(line, sizeof line, "  %-18s %-12s (comparator)\n", s.name.c_str(), s.plugin.c_str());
      out << line;
      for (const auto& [k, v] : s.counters) out << "      " << k << ": " << v << "\n";
      continue;
    }
    std::snprintf(line, sizeof line, "  %-18s %-12s %12s %12" PRIu64 " %12" PRIu64 " %10" PRIu64 "\n", s.name.c_str(),
                  s.plugin.c_str(), s.role == "input" ? "-" : std::to_string(s.in).c_str(), s.out, s.dropped,
                  s.failed);
    out << line;
    for (const auto& [k, v] : s.drops) out << "      dropped " << k << ": " << v << "\n";
    for (const auto& [k, v] : s.failures) out << "      failed " << k << ": " << v << "\n";
    for (const auto& [k, v] : s.counters) out << "      " << k << ": " << v << "\n";
    for (const auto& [k, v] : s.gauges) out << "      " << k << ": " << v << "\n";
  }
  return out.str();
}

std::string Runtime::loss_warnings() const {
  auto snaps = snapshots();
  std::uint64_t read = 0;
  for (const auto& s : snaps)
    if (s.role == "input") read += s.out;
  std::string out;
  for (const auto& s : snaps) {
    bool edge_stage = s.role == "input" || s.role == "output";
    for (const auto& [reason, count] : s.drops) {
      if (count == 0 || !(edge_stage || loss_anywhere(reason))) continue;
      char line[256];
      if (s.role == "input" || read == 0)
        std::snprintf(line, sizeof line, "WARNING: %s dropped at %s: %s\n", grouped(count).c_str(), s.name.c_str(),
                      reason.c_str());
      else
        std::snprintf(line, sizeof line, "WARNING: %s of %s messages (%.1f%%) dropped at %s: %s\n",
                      grouped(count).c_str(), grouped(read).c_str(), 100.0 * static_cast<double>(count) / static_cast<double>(read),
                      s.name.c_str(), reason.c_str());
      out += line;
    }
  }
  if (!out.empty())
    out += "WARNING: the run lost messages (see the summary above; docs/guide/replay.md \"Defaults\" says what "
           "waits and what drops)\n";
  return out;
}

std::string Runtime::prometheus_metrics() const {
  std::ostringstream out;
  auto all = snapshots();
  std::vector<StageRunner::Snapshot> snaps, comparators;
  for (auto& s : all) (s.role == "comparator" ? comparators : snaps).push_back(std::move(s));
  out << "# HELP doppel_stage_in_total Messages a stage received.\n# TYPE doppel_stage_in_total counter\n";
  for (const auto& s : snaps) out << "doppel_stage_in_total{stage=\"" << prometheus_escape(s.name) << "\"} " << s.in << "\n";
  out << "# HELP doppel_stage_out_total Messages a stage emitted.\n# TYPE doppel_stage_out_total counter\n";
  for (const auto& s : snaps)
    out << "doppel_stage_out_total{stage=\"" << prometheus_escape(s.name) << "\"} " << s.out << "\n";
  out << "# HELP doppel_stage_dropped_total Messages dropped, by reason.\n# TYPE doppel_stage_dropped_total counter\n";
  for (const auto& s : snaps)
    for (const auto& [k, v] : s.drops)
      out << "doppel_stage_dropped_total{stage=\"" << prometheus_escape(s.name) << "\",reason=\""
          << prometheus_escape(k) << "\"} " << v << "\n";
  out << "# HELP doppel_stage_failed_total Messages a stage failed to handle, by reason.\n"
         "# TYPE doppel_stage_failed_total counter\n";
  for (const auto& s : snaps)
    for (const auto& [k, v] : s.failures)
      out << "doppel_stage_failed_total{stage=\"" << prometheus_escape(s.name) << "\",reason=\""
          << prometheus_escape(k) << "\"} " << v << "\n";
  out << "# HELP doppel_stage_queued Messages waiting in a stage's queue.\n# TYPE doppel_stage_queued gauge\n";
  for (const auto& s : snaps)
    out << "doppel_stage_queued{stage=\"" << prometheus_escape(s.name) << "\"} " << s.queued << "\n";
  for (const auto& s : snaps) {
    for (const auto& [k, v] : s.counters)
      out << "doppel_" << metric_name(s.plugin) << "_" << metric_name(k) << "_total{stage=\""
          << prometheus_escape(s.name) << "\"} " << v << "\n";
    for (const auto& [k, v] : s.gauges)
      out << "doppel_" << metric_name(s.plugin) << "_" << metric_name(k) << "{stage=\"" << prometheus_escape(s.name)
          << "\"} " << v << "\n";
  }
  // The decision memory of each filter that judges requests only (docs/operations.md, "Days-long
  // runs"): its size, its bound and its expiry.
  out << "# HELP doppel_stage_decisions Request decisions a filter remembers now, so that responses follow "
         "their request; bound: [pipeline] decision_capacity, expiry: decision_ttl.\n"
         "# TYPE doppel_stage_decisions gauge\n";
  for (const auto& s : snaps)
    if (s.decisions)
      out << "doppel_stage_decisions{stage=\"" << prometheus_escape(s.name) << "\"} " << *s.decisions << "\n";
  out << "# HELP doppel_decision_capacity Request decisions a filter remembers at most ([pipeline] "
         "decision_capacity; the oldest are forgotten first, counted as decisions_evicted).\n"
         "# TYPE doppel_decision_capacity gauge\ndoppel_decision_capacity "
      << graph_.spec.settings.decision_capacity << "\n";
  out << "# HELP doppel_decision_ttl_seconds How long a filter remembers a request decision ([pipeline] "
         "decision_ttl).\n# TYPE doppel_decision_ttl_seconds gauge\ndoppel_decision_ttl_seconds "
      << std::chrono::duration<double>(graph_.spec.settings.decision_ttl).count() << "\n";
  for (const auto& c : comparators)
    for (const auto& [k, v] : c.counters)
      out << "doppel_comparator_" << metric_name(c.plugin) << "_" << metric_name(k) << "_total{comparator=\""
          << prometheus_escape(c.name) << "\"} " << v << "\n";
  return out.str();
}

}  // namespace doppel::core
