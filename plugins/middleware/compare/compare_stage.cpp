#include "compare_stage.hpp"

#include <algorithm>
#include <set>
#include <spdlog/spdlog.h>

#include "doppel/grpc.hpp"
#include "doppel/json_writer.hpp"

namespace doppel::plugins {
namespace {

struct Check {
  std::string comparator;
  std::string severity;  // "fail", "warn", or "noise"
  Difference difference;
  NoiseCounts noise;     // set when severity is "noise"
  std::string key() const { return comparator + ":" + difference.path; }
};

bool ignored(const CompareRule& rule, const Difference& d) {
  return std::any_of(rule.ignore.begin(), rule.ignore.end(),
                     [&](const PathPattern& p) { return p.matches(d.path); });
}

double latency_ms(const Message& m) { return static_cast<double>(m.latency_ns) / 1e6; }

// Head as captured plus the decoded body, cut to `limit` bytes, for the report's samples.
std::string sample_text(const Message& m, std::size_t limit) {
  const HttpView& http = m.http();
  std::size_t head = http.head_size() ? http.head_size() : m.payload.size();
  std::string out = truncate_for_display(std::string_view(m.payload).substr(0, head), limit);
  const DecodedBody& body = m.body();
  out += truncate_for_display(body.bytes, limit);
  if (!body.error.empty()) out += "\n[body not fully decoded: " + body.error + "]";
  return out;
}

void write_side(JsonWriter& w, std::string_view prefix, const MessagePtr& m) {
  std::string p(prefix);
  if (!m) {
    w.key(p + "_status").null();
    w.key(p + "_latency_ms").null();
    return;
  }
  int status = m->http().status();
  if (status) w.field(p + "_status", status);
  else w.key(p + "_status").null();
  w.field(p + "_latency_ms", latency_ms(*m));
}

}  // namespace

CompareStage::CompareStage(CompareConfig config)
    : config_(std::move(config)), noise_(config_.noise, config_.max_paths) {
  std::size_t shards = std::max<std::size_t>(config_.threads, 1);
  // max_pending is shared out: each shard keeps its part, the stage as many as asked.
  std::size_t per_shard = std::max<std::size_t>((config_.max_pending + shards - 1) / shards, 1);
  for (std::size_t i = 0; i < shards; ++i)
    shards_.push_back(std::make_unique<Shard>(JoinTable(per_shard, config_.timeout, config_.baseline)));
}

CompareStage::~CompareStage() {
  if (workers_) workers_->stop();
  std::lock_guard lock(guard_->mutex);
  guard_->stage = nullptr;
}

void CompareStage::start(StageContext& context) {
  Stage::start(context);
  for (const char* verdict : {"match", "warn", "mismatch", "replay_error", "missing_original", "missing_replay"})
    verdict_counters_[verdict] = &context.counter(std::string("verdict.") + verdict);
  joins_expired_ = &context.counter("joins_expired");
  joins_evicted_ = &context.counter("joins_evicted");
  endpoints_folded_ = &context.counter("endpoints_folded");
  baseline_missing_ = &context.counter("baseline_missing");
  paths_untracked_ = &context.counter("paths_untracked");
  noise_untracked_ = &context.counter("noise_untracked");
  pending_gauge_ = &context.gauge("pending_joins");
  joins_gauge_ = &context.gauge("table.joins");
  decided_gauge_ = &context.gauge("table.decided");
  endpoints_gauge_ = &context.gauge("table.endpoints");
  paths_gauge_ = &context.gauge("table.paths");
  if (!config_.baseline.empty()) noise_paths_gauge_ = &context.gauge("table.noise_paths");
  if (shards_.size() > 1) {
    // Enough queued per shard to keep its thread busy while the caller hands out the next.
    workers_.emplace(shards_.size(), 1024, [this](std::size_t shard, const MessagePtr& m) {
      try {
        handle(shard, m);
      } catch (const std::exception& e) {
        this->context().fail("exception");
        this->context().log().error("compare: {}", e.what());
      }
    });
  }
  guard_->stage = this;
  timer_ = std::make_unique<boost::asio::steady_timer>(io_.context());
  arm_timer();
}

void CompareStage::arm_timer() {
  // Expiry is checked a few times per timeout; joins wait at most ~10% longer than `timeout`.
  auto period = std::clamp<std::chrono::nanoseconds>(config_.timeout / 10, std::chrono::milliseconds(10),
                                                     std::chrono::seconds(1));
  timer_->expires_after(period);
  timer_->async_wait([guard = guard_](const boost::system::error_code& ec) {
    if (ec) return;
    std::lock_guard lock(guard->mutex);
    if (guard->stage) guard->stage->on_timer();
  });
}

void CompareStage::on_timer() {
  sweep_all(false);
  arm_timer();
}

std::vector<Reference> CompareStage::comparator_references() const {
  std::vector<Reference> refs;
  auto add = [&](const CompareRule& rule) {
    for (const auto& n : rule.fail) refs.push_back({n, rule.fail_position});
    for (const auto& n : rule.warn) refs.push_back({n, rule.warn_position});
    for (const auto& n : rule.info) refs.push_back({n, rule.info_position});
    for (const auto& n : rule.escalate) refs.push_back({n, rule.escalate_position});
  };
  for (const auto& rule : config_.rules) add(rule);
  add(config_.fallback);
  return refs;
}

std::size_t CompareStage::shard_of(const std::string& id) const {
  return shards_.size() == 1 ? 0 : std::hash<std::string>{}(id) % shards_.size();
}

void CompareStage::process(const MessagePtr& message) {
  if (message->kind == Kind::verdict) {
    context().drop("unexpected_kind");
    return;
  }
  std::size_t shard = shard_of(message->id);
  if (!workers_) {
    handle(shard, message);
  } else if (!workers_->push(shard, message)) {
    context().drop("shutdown");
  }
}

void CompareStage::handle(std::size_t shard, const MessagePtr& message) {
  std::vector<DecidedJoin> decided;
  JoinTable::Added added;
  {
    Shard& s = *shards_[shard];
    std::lock_guard lock(s.mutex);
    std::size_t before = s.table.size(), decided_before = s.table.decided();
    added = s.table.add(message, decided);
    update_tables(static_cast<std::int64_t>(s.table.size()) - static_cast<std::int64_t>(before),
                  static_cast<std::int64_t>(s.table.decided()) - static_cast<std::int64_t>(decided_before));
  }
  switch (added.outcome) {
    case JoinTable::Outcome::late: context().drop("late"); break;
    case JoinTable::Outcome::duplicate: context().drop("duplicate"); break;
    case JoinTable::Outcome::unexpected_kind: context().drop("unexpected_kind"); break;
    default: break;
  }
  if (added.evicted) joins_evicted_->add(added.evicted);
  judge_all(decided);
}

void CompareStage::sweep_all(bool everything) {
  auto now = JoinClock::now();
  for (auto& shard : shards_) {
    std::vector<DecidedJoin> decided;
    JoinTable::Swept swept;
    {
      std::lock_guard lock(shard->mutex);
      std::size_t before = shard->table.size(), decided_before = shard->table.decided();
      swept = shard->table.sweep(now, everything, decided);
      update_tables(static_cast<std::int64_t>(shard->table.size()) - static_cast<std::int64_t>(before),
                    static_cast<std::int64_t>(shard->table.decided()) - static_cast<std::int64_t>(decided_before));
    }
    if (swept.orphans) context().drop("orphan_response", swept.orphans);
    if (swept.expired) joins_expired_->add(swept.expired);
    judge_all(decided);
  }
}

void CompareStage::judge_all(std::vector<DecidedJoin>& decided) {
  for (auto& d : decided) judge(std::move(d));
}

void CompareStage::update_tables(std::int64_t joins_delta, std::int64_t decided_delta) {
  if (joins_delta != 0) {
    std::int64_t now = pending_joins_.fetch_add(joins_delta, std::memory_order_relaxed) + joins_delta;
    pending_gauge_->set(now);
    joins_gauge_->set(now);
  }
  if (decided_delta != 0)
    decided_gauge_->set(decided_ids_.fetch_add(decided_delta, std::memory_order_relaxed) + decided_delta);
}

void CompareStage::flush() {
  // The runtime flushes a stage after everything upstream drained: no side of a pending
  // join can still arrive, so every join is decided now (incomplete ones as missing_*).
  if (workers_) workers_->wait_idle();
  sweep_all(true);
  // Judgements still with a comparator are bounded by its own timeout; wait for their verdicts.
  std::unique_lock lock(judging_mutex_);
  while (!judging_done_.wait_for(lock, std::chrono::seconds(10), [&] { return judging_ == 0; }))
    context().log().info("compare: waiting for {} judgement(s) a comparator has not answered yet", judging_);
}

void CompareStage::stop() {
  {
    std::lock_guard lock(guard_->mutex);
    guard_->stage = nullptr;
  }
  if (timer_) timer_->cancel();
  if (workers_)
    if (std::size_t left = workers_->stop()) context().drop("shutdown", left);
  // The runtime stopped the comparators first: whatever they owed has been answered (as errors).
  std::unique_lock lock(judging_mutex_);
  if (!judging_done_.wait_for(lock, std::chrono::seconds(5), [&] { return judging_ == 0; }))
    context().log().error("compare: {} judgement(s) never answered by their comparator", judging_);
}

std::size_t CompareStage::pending() const {
  std::size_t n = workers_ ? workers_->backlog() : 0;
  {
    std::lock_guard lock(judging_mutex_);
    n += judging_;
  }
  for (const auto& shard : shards_) {
    std::lock_guard lock(shard->mutex);
    n += shard->table.size();
  }
  return n;
}

void CompareStage::emit(Verdict v) {
  Message m(Kind::verdict, std::move(v.id), now_ns(), std::move(v.payload));
  m.meta.stage = context().stage_name();
  m.lease = std::move(v.lease);
  context().emit(share(std::move(m)));
}

const CompareRule& CompareStage::rule_for(std::string_view method, std::string_view path) const {
  for (const auto& rule : config_.rules) {
    if (rule.method && !RE2::FullMatch(method, *rule.method)) continue;
    if (rule.path && !RE2::PartialMatch(path, *rule.path)) continue;
    return rule;
  }
  return config_.fallback;
}

std::string CompareStage::endpoint_for(const CompareRule& rule, std::string_view method, std::string_view path,
                                       bool grpc) {
  if (!rule.name.empty()) return rule.name;
  // A gRPC call is always a POST: its endpoint is the method it calls, /pkg.Service/Method.
  std::string endpoint = grpc ? std::string(path) : std::string(method) + " " + std::string(path);
  std::lock_guard lock(aggregates_mutex_);
  if (endpoints_.count(endpoint)) return endpoint;
  if (endpoints_.size() >= config_.max_endpoints) {
    endpoints_folded_->add();
    return grpc ? std::string("gRPC (other)") : std::string(method) + " (other)";
  }
  endpoints_.insert(endpoint);
  endpoints_gauge_->set(static_cast<std::int64_t>(endpoints_.size()));
  return endpoint;
}

// One exchange being judged. `runs` only grows while none is in flight (escalation), so a
// run's result is written by its comparator's thread into a slot that stays put.
struct CompareStage::Judging {
  struct Run {
    std::string comparator;
    const char* severity;  // "fail", "warn" or "info"
    bool baseline;         // old vs old (noise), not the candidate
    Judgement result;
  };
  DecidedJoin decided;
  const CompareRule* rule = nullptr;
  std::string method, path, target, endpoint;
  Exchange candidate, old_vs_old;
  std::vector<Run> runs;
  std::atomic<std::size_t> left{0};
  bool escalated = false;
};

void CompareStage::judge(DecidedJoin decided) {
  auto j = std::make_shared<Judging>();
  j->decided = std::move(decided);
  const Join& join = j->decided.join;
  bool grpc = false;
  if (join.request && join.request->http().is_request()) {
    const HttpView& http = join.request->http();
    j->method = http.method();
    j->path = http.path();
    j->target = http.target();
    auto content_type = http.header("content-type");
    grpc = content_type && grpc::is_grpc_content_type(*content_type);
  }
  j->rule = &rule_for(j->method, j->path);
  j->endpoint = endpoint_for(*j->rule, j->method, j->path, grpc);
  {
    std::lock_guard lock(judging_mutex_);
    ++judging_;
  }
  bool judgeable = join.original && join.replay && join.replay->meta.error.empty();
  if (!judgeable) {
    emit(verdict_of(*j));
    judged();
    return;
  }
  const CompareRule& rule = *j->rule;
  j->candidate = Exchange(join.request, join.original, join.replay, j->endpoint);
  auto plan = [&](const std::vector<std::string>& names, const char* severity, bool baseline) {
    for (const auto& name : names) j->runs.push_back({name, severity, baseline, {}});
  };
  plan(rule.fail, "fail", false);
  plan(rule.warn, "warn", false);
  plan(rule.info, "info", false);
  if (!config_.baseline.empty() && join.baseline && join.baseline->meta.error.empty()) {
    // Diffy's model: the same comparators between the two copies of the old service.
    j->old_vs_old = Exchange(join.request, join.original, join.baseline, j->endpoint, true);
    plan(rule.fail, "fail", true);
    plan(rule.warn, "warn", true);
    plan(rule.info, "info", true);
  }
  start_runs(j, 0);
}

void CompareStage::start_runs(const std::shared_ptr<Judging>& j, std::size_t first) {
  // One extra count held while starting: a run that answers at once cannot finish the
  // judgement before the others are started.
  j->left.store(j->runs.size() - first + 1);
  auto complete = [this, j] {
    if (j->left.fetch_sub(1, std::memory_order_acq_rel) == 1) advance(j);
  };
  for (std::size_t i = first; i < j->runs.size(); ++i) {
    auto& run = j->runs[i];
    const Comparator* comparator = context().comparator(run.comparator);
    if (!comparator) {
      context().fail("unknown_comparator");
      run.result.error = "no comparator named \"" + run.comparator + "\"";
      complete();
      continue;
    }
    auto answered = std::make_shared<std::atomic<bool>>(false);
    auto done = [this, j, i, answered, complete](Judgement result) {
      if (answered->exchange(true)) return;  // a comparator that answers twice is heard once
      if (!result.error.empty()) context().fail("comparator_error");
      j->runs[i].result = std::move(result);
      complete();
    };
    try {
      comparator->compare_async(run.baseline ? j->old_vs_old : j->candidate, done);
    } catch (const std::exception& e) {
      done(Judgement{{}, e.what()});
    }
  }
  complete();
}

void CompareStage::advance(const std::shared_ptr<Judging>& j) {
  const CompareRule& rule = *j->rule;
  if (!j->escalated && !rule.escalate.empty()) {
    j->escalated = true;
    bool softer = std::any_of(j->runs.begin(), j->runs.end(), [&](const Judging::Run& r) {
      if (r.baseline || std::string_view(r.severity) == "fail") return false;
      if (!r.result.error.empty()) return true;
      return std::any_of(r.result.differences.begin(), r.result.differences.end(),
                         [&](const Difference& d) { return !ignored(rule, d); });
    });
    if (softer) {
      std::size_t first = j->runs.size();
      for (const auto& name : rule.escalate) j->runs.push_back({name, "fail", false, {}});
      start_runs(j, first);
      return;
    }
  }
  emit(verdict_of(*j));
  judged();
}

void CompareStage::judged() {
  std::lock_guard lock(judging_mutex_);
  if (--judging_ == 0) judging_done_.notify_all();
}

CompareStage::Verdict CompareStage::verdict_of(Judging& j) {
  const std::string& id = j.decided.id;
  Join& join = j.decided.join;
  bool expired = j.decided.expired;
  const CompareRule& rule = *j.rule;
  const std::string& endpoint = j.endpoint;

  std::string verdict;
  std::string error;
  std::vector<std::string> missing;
  if (!join.original) missing.push_back("original");
  if (!join.replay) missing.push_back("replay");
  if (!config_.baseline.empty() && !join.baseline) missing.push_back("baseline");

  std::vector<Check> checks;
  if (join.replay && !join.replay->meta.error.empty()) {
    verdict = "replay_error";
    error = join.replay->meta.error;
  } else if (!join.original) {
    verdict = "missing_original";
  } else if (!join.replay) {
    verdict = "missing_replay";
  } else {
    std::vector<Check> noise_checks;
    for (auto& run : j.runs) {
      auto& out = run.baseline ? noise_checks : checks;
      if (!run.result.error.empty()) {
        out.push_back({run.comparator, run.severity,
                       Difference("", "error", "", truncate_for_display(run.result.error, config_.value_limit)), {}});
        continue;
      }
      for (auto& d : run.result.differences) {
        if (ignored(rule, d)) continue;
        d.original = truncate_for_display(d.original, config_.value_limit);
        d.replay = truncate_for_display(d.replay, config_.value_limit);
        d.message = truncate_for_display(d.message, config_.value_limit);
        out.push_back({run.comparator, run.severity, std::move(d), {}});
      }
    }
    if (!config_.baseline.empty()) {
      if (!j.old_vs_old.replay) {
        baseline_missing_->add();
      } else {
        std::set<std::string> raw_keys, noise_keys;
        for (const auto& c : checks) raw_keys.insert(c.key());
        for (const auto& c : noise_checks) noise_keys.insert(c.key());
        std::lock_guard lock(aggregates_mutex_);
        noise_.count_exchange(endpoint);
        for (const auto& k : raw_keys) noise_.count_raw(endpoint, k);
        for (const auto& k : noise_keys) noise_.count_noise(endpoint, k);
        noise_paths_gauge_->set(static_cast<std::int64_t>(noise_.size()));
        if (std::uint64_t untracked = noise_.untracked(); untracked != noise_untracked_reported_) {
          noise_untracked_->add(untracked - noise_untracked_reported_);
          noise_untracked_reported_ = untracked;
        }
        for (auto& c : checks) {
          if (c.difference.kind == "error") continue;
          NoiseCounts counts = noise_.counts(endpoint, c.key());
          if (NoiseModel::is_noise(counts, config_.noise)) {
            c.severity = "noise";
            c.noise = counts;
          }
        }
      }
    }
  bool fail = false, warn = false;
    for (const auto& c : checks) {
      fail = fail || c.severity == "fail";
      warn = warn || c.severity == "warn";
    }
    verdict = fail ? "mismatch" : warn ? "warn" : "match";
  }
  verdict_counters_.find(verdict)->second->add();

  // Aggregation by endpoint x path decides which verdicts carry their exchange as a sample.
  std::set<std::string> keys;
  if (checks.empty() && verdict != "match") keys.insert("(" + verdict + ")");
  for (const auto& c : checks) keys.insert(c.key());
  bool sample = false;
  std::unique_lock aggregates(aggregates_mutex_);
  for (const auto& k : keys) {
    auto key = std::make_pair(endpoint, k);
    auto it = paths_.find(key);
    if (it == paths_.end()) {
      if (paths_.size() >= config_.max_paths) {
        paths_untracked_->add();
        continue;
      }
      it = paths_.emplace(std::move(key), PathStats{}).first;
      paths_gauge_->set(static_cast<std::int64_t>(paths_.size()));
    }
    ++it->second.count;
    if (it->second.sampled < config_.samples_per_path) {
      ++it->second.sampled;
      sample = true;
    }
  }
  aggregates.unlock();

  JsonWriter w;
  w.begin_object();
  w.field("id", id);
  w.field("verdict", verdict);
  w.field("endpoint", endpoint);
  w.field("rule", rule.label);
  w.field("method", j.method);
  w.field("path", j.path);
  w.field("target", truncate_for_display(j.target, config_.value_limit));
  w.field("timestamp_ns", join.request ? join.request->timestamp_ns : std::int64_t{0});
  write_side(w, "original", join.original);
  write_side(w, "replay", join.replay);
  if (!config_.baseline.empty()) write_side(w, "baseline", join.baseline);
  if (!error.empty()) w.field("error", error);
  w.field("expired", expired);
  if (!missing.empty()) {
    w.key("missing").begin_array();
    for (const auto& m : missing) w.value(m);
    w.end_array();
  }
  w.key("checks").begin_array();
  for (const auto& c : checks) {
    w.begin_object();
    w.field("comparator", c.comparator);
    w.field("severity", c.severity);
    w.field("path", c.difference.path);
    w.field("kind", c.difference.kind);
    w.field("original", c.difference.original);
    w.field("replay", c.difference.replay);
    if (!c.difference.message.empty()) w.field("message", c.difference.message);
    if (c.severity == "noise") {
      w.key("noise").begin_object();
      w.field("candidate", c.noise.raw);
      w.field("baseline", c.noise.noise);
      w.field("exchanges", c.noise.total);
      w.end_object();
    }
    w.end_object();
  }
  w.end_array();
  if (sample) {
    w.key("sample").begin_object();
    if (join.request) w.field("request", sample_text(*join.request, config_.sample_body_limit));
    if (join.original) w.field("original", sample_text(*join.original, config_.sample_body_limit));
    if (join.replay) w.field("replay", sample_text(*join.replay, config_.sample_body_limit));
    if (join.baseline) w.field("baseline", sample_text(*join.baseline, config_.sample_body_limit));
    w.end_object();
  }
  w.end_object();
  // The verdict is what the exchange became: its sources stay unacknowledged until it is released.
  auto lease = [](const MessagePtr& m) { return m ? m->lease : nullptr; };
  return {id, w.take(),
          join_leases({lease(join.request), lease(join.original), lease(join.replay), lease(join.baseline)})};
}

}  // namespace doppel::plugins
