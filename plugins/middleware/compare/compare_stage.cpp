#include "compare_stage.hpp"

#include <algorithm>
#include <set>
#include <spdlog/spdlog.h>

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
  pending_gauge_ = &context.gauge("pending_joins");
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
    std::size_t before = s.table.size();
    added = s.table.add(message, decided);
    update_pending(static_cast<std::int64_t>(s.table.size()) - static_cast<std::int64_t>(before));
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
      std::size_t before = shard->table.size();
      swept = shard->table.sweep(now, everything, decided);
      update_pending(static_cast<std::int64_t>(shard->table.size()) - static_cast<std::int64_t>(before));
    }
    if (swept.orphans) context().drop("orphan_response", swept.orphans);
    if (swept.expired) joins_expired_->add(swept.expired);
    judge_all(decided);
  }
}

void CompareStage::judge_all(std::vector<DecidedJoin>& decided) {
  for (auto& d : decided) emit(decide(d));
}

void CompareStage::update_pending(std::int64_t delta) {
  std::int64_t now = pending_joins_.fetch_add(delta, std::memory_order_relaxed) + delta;
  pending_gauge_->set(now);
}

void CompareStage::flush() {
  // The runtime flushes a stage after everything upstream drained: no side of a pending
  // join can still arrive, so every join is decided now (incomplete ones as missing_*).
  if (workers_) workers_->wait_idle();
  sweep_all(true);
}

void CompareStage::stop() {
  {
    std::lock_guard lock(guard_->mutex);
    guard_->stage = nullptr;
  }
  if (timer_) timer_->cancel();
  if (workers_)
    if (std::size_t left = workers_->stop()) context().drop("shutdown", left);
}

std::size_t CompareStage::pending() const {
  std::size_t n = workers_ ? workers_->backlog() : 0;
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

std::string CompareStage::endpoint_for(const CompareRule& rule, std::string_view method, std::string_view path) {
  if (!rule.name.empty()) return rule.name;
  std::string endpoint = std::string(method) + " " + std::string(path);
  std::lock_guard lock(aggregates_mutex_);
  if (endpoints_.count(endpoint)) return endpoint;
  if (endpoints_.size() >= config_.max_endpoints) {
    endpoints_folded_->add();
    return std::string(method) + " (other)";
  }
  endpoints_.insert(endpoint);
  return endpoint;
}

CompareStage::Verdict CompareStage::decide(DecidedJoin& decided) {
  const std::string& id = decided.id;
  Join& join = decided.join;
  bool expired = decided.expired;
  std::string method, path, target;
  if (join.request && join.request->http().is_request()) {
    const HttpView& http = join.request->http();
    method = http.method();
    path = http.path();
    target = http.target();
  }
  const CompareRule& rule = rule_for(method, path);
  std::string endpoint = endpoint_for(rule, method, path);

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
    Exchange candidate{join.request, join.original, join.replay};
    auto run = [&](const std::vector<std::string>& names, const char* severity, const Exchange& exchange,
                   std::vector<Check>& out) {
      for (const auto& name : names) {
        const Comparator* comparator = context().comparator(name);
        std::vector<Difference> diffs;
        if (!comparator) {
          context().fail("unknown_comparator");
          diffs.push_back({"", "error", "", "no comparator named \"" + name + "\""});
        } else {
          try {
            diffs = comparator->compare(exchange);
          } catch (const std::exception& e) {
            context().fail("comparator_error");
            diffs.push_back({"", "error", "", truncate_for_display(e.what(), config_.value_limit)});
          }
        }
        for (auto& d : diffs) {
          if (ignored(rule, d)) continue;
          d.original = truncate_for_display(d.original, config_.value_limit);
          d.replay = truncate_for_display(d.replay, config_.value_limit);
          out.push_back({name, severity, std::move(d), {}});
        }
      }
    };
    run(rule.fail, "fail", candidate, checks);
    run(rule.warn, "warn", candidate, checks);
    run(rule.info, "info", candidate, checks);
    bool softer = std::any_of(checks.begin(), checks.end(),
                              [](const Check& c) { return c.severity == "warn" || c.severity == "info"; });
    if (softer) run(rule.escalate, "fail", candidate, checks);

    if (!config_.baseline.empty()) {
      if (join.baseline && join.baseline->meta.error.empty()) {
        // Diffy's model: the same comparators between the two copies of the old service.
        Exchange old_vs_old{join.request, join.original, join.baseline};
        std::vector<Check> noise_checks;
        run(rule.fail, "fail", old_vs_old, noise_checks);
        run(rule.warn, "warn", old_vs_old, noise_checks);
        run(rule.info, "info", old_vs_old, noise_checks);
        std::set<std::string> raw_keys, noise_keys;
        for (const auto& c : checks) raw_keys.insert(c.key());
        for (const auto& c : noise_checks) noise_keys.insert(c.key());
        std::lock_guard lock(aggregates_mutex_);
        noise_.count_exchange(endpoint);
        for (const auto& k : raw_keys) noise_.count_raw(endpoint, k);
        for (const auto& k : noise_keys) noise_.count_noise(endpoint, k);
        for (auto& c : checks) {
          if (c.difference.kind == "error") continue;
          NoiseCounts counts = noise_.counts(endpoint, c.key());
          if (NoiseModel::is_noise(counts, config_.noise)) {
            c.severity = "noise";
            c.noise = counts;
          }
        }
      } else {
        baseline_missing_->add();
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
      if (paths_.size() >= config_.max_paths) continue;
      it = paths_.emplace(std::move(key), PathStats{}).first;
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
  w.field("method", method);
  w.field("path", path);
  w.field("target", truncate_for_display(target, config_.value_limit));
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
