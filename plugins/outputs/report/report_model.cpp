#include "report_model.hpp"

#include <algorithm>
#include <cmath>
#include <simdjson.h>

#include "doppel/json_writer.hpp"

namespace doppel::plugins {

void Reservoir::add(double v) {
  ++seen_;
  if (values_.size() < capacity_) {
    values_.push_back(v);
    sorted_ = false;
    return;
  }
  std::uniform_int_distribution<std::uint64_t> pick(0, seen_ - 1);
  std::uint64_t slot = pick(rng_);
  if (slot < capacity_) {
    values_[slot] = v;
    sorted_ = false;
  }
}

std::optional<double> Reservoir::percentile(double q) const {
  if (values_.empty()) return std::nullopt;
  if (!sorted_) {
    std::sort(values_.begin(), values_.end());
    sorted_ = true;
  }
  // Nearest rank: the smallest value with at least q of the values at or below it.
  std::size_t rank = static_cast<std::size_t>(std::ceil(q * static_cast<double>(values_.size())));
  return values_[std::clamp<std::size_t>(rank, 1, values_.size()) - 1];
}

void ReportTotals::count(std::string_view v) {
  ++total;
  if (v == "match") ++match;
  else if (v == "warn") ++warn;
  else if (v == "mismatch") ++mismatch;
  else if (v == "replay_error") ++replay_error;
  else if (v == "missing_original") ++missing_original;
  else if (v == "missing_replay") ++missing_replay;
  else ++other;
}

ReportModel::ReportModel(ReportLimits limits)
    : limits_(limits), totals_{.original_latency = Reservoir(limits.latency_samples * 5),
                               .replay_latency = Reservoir(limits.latency_samples * 5)} {}

EndpointStats& ReportModel::endpoint(const std::string& name) {
  auto it = endpoints_.find(name);
  if (it != endpoints_.end()) return it->second;
  std::string key = endpoints_.size() >= limits_.max_endpoints ? "(other endpoints)" : name;
  it = endpoints_.find(key);
  if (it == endpoints_.end()) {
    EndpointStats stats;
    stats.totals.original_latency = Reservoir(limits_.latency_samples);
    stats.totals.replay_latency = Reservoir(limits_.latency_samples);
    it = endpoints_.emplace(key, std::move(stats)).first;
  }
  return it->second;
}

namespace {
std::string text(simdjson::dom::element e, const char* key) {
  std::string_view s;
  if (e[key].get_string().get(s)) return {};
  return std::string(s);
}
std::optional<double> number(simdjson::dom::element e, const char* key) {
  double d;
  if (e[key].get_double().get(d)) return std::nullopt;
  return d;
}
}  // namespace

bool ReportModel::add(std::string_view json, std::string& error) {
  // A fresh parser per call keeps this thread-safe; verdicts are small.
  simdjson::dom::parser parser;
  simdjson::dom::element root;
  if (auto err = parser.parse(json.data(), json.size()).get(root)) {
    error = std::string("verdict is not JSON: ") + simdjson::error_message(err);
    return false;
  }
  std::string verdict = text(root, "verdict");
  if (verdict.empty()) {
    error = "verdict has no \"verdict\" field";
    return false;
  }
  std::string endpoint_name = text(root, "endpoint");
  if (endpoint_name.empty()) endpoint_name = "(unknown endpoint)";
  EndpointStats& ep = endpoint(endpoint_name);
  std::string ep_key = endpoints_.find(endpoint_name) != endpoints_.end() ? endpoint_name
                                                                                  : std::string("(other endpoints)");
  totals_.count(verdict);
  ep.totals.count(verdict);
  // Latencies of exchanges where both sides answered, so the two distributions compare.
  auto o = number(root, "original_latency_ms"), r = number(root, "replay_latency_ms");
  if (o && r && text(root, "error").empty()) {
    totals_.original_latency.add(*o);
    totals_.replay_latency.add(*r);
    ep.totals.original_latency.add(*o);
    ep.totals.replay_latency.add(*r);
  }

  simdjson::dom::object sample_obj;
  bool has_sample = !root["sample"].get_object().get(sample_obj);
  auto make_sample = [&](std::string kind, std::string ov, std::string rv, std::string message = {}) {
    PathSample s;
    s.id = text(root, "id");
    s.verdict = verdict;
    s.kind = std::move(kind);
    s.original_value = std::move(ov);
    s.replay_value = std::move(rv);
    s.message = std::move(message);
    if (has_sample) {
      auto side = [&](const char* k) {
        std::string_view v;
        if (sample_obj[k].get_string().get(v)) return std::string();
        return truncate_for_display(v, limits_.sample_limit);
      };
      s.request = side("request");
      s.original = side("original");
      s.replay = side("replay");
      s.baseline = side("baseline");
    }
    return s;
  };
  auto path_stats = [&](const std::string& comparator, const std::string& path) -> PathStats* {
    auto key = std::make_pair(ep_key, comparator + ":" + path);
    auto it = paths_.find(key);
    if (it == paths_.end()) {
      if (paths_.size() >= limits_.max_paths) {
        ++untracked_paths_;
        return nullptr;
      }
      it = paths_.emplace(key, PathStats{}).first;
      it->second.endpoint = ep_key;
      it->second.comparator = comparator;
      it->second.path = path;
    }
    return &it->second;
  };

  simdjson::dom::array checks;
  std::size_t n_checks = 0;
  if (!root["checks"].get_array().get(checks)) {
    for (simdjson::dom::element c : checks) {
      ++n_checks;
      std::string severity = text(c, "severity");
      if (severity == "noise") ++totals_.noise_checks;
      PathStats* p = path_stats(text(c, "comparator"), text(c, "path"));
      if (!p) continue;
      ++p->count;
      if (severity == "fail") ++p->fail;
      else if (severity == "warn") ++p->warn;
      else if (severity == "noise") ++p->noise;
      else if (severity == "info") ++p->info;
      else ++p->other;
      std::string kind = text(c, "kind");
      if (p->kinds.count(kind) || p->kinds.size() < 16) ++p->kinds[kind];
      bool useful = has_sample || p->samples.empty();
      if (useful && p->samples.size() < limits_.samples_per_path)
        p->samples.push_back(make_sample(kind, text(c, "original"), text(c, "replay"), text(c, "message")));
    }
  }
  if (n_checks == 0 && verdict != "match") {
    // Missing sides and replay errors are listed like a path, so their requests show up too.
    if (PathStats* p = path_stats("(" + verdict + ")", "")) {
      ++p->count;
      ++p->other;
      if (p->samples.size() < limits_.samples_per_path && (has_sample || p->samples.empty()))
        p->samples.push_back(make_sample(verdict, "", text(root, "error")));
    }
  }
  return true;
}

std::vector<const PathStats*> ReportModel::top_paths(std::size_t n) const {
  std::vector<const PathStats*> out;
  for (const auto& [k, v] : paths_) out.push_back(&v);
  std::stable_sort(out.begin(), out.end(), [](auto* a, auto* b) { return a->count > b->count; });
  if (out.size() > n) out.resize(n);
  return out;
}

std::vector<const PathStats*> ReportModel::paths_of(const std::string& endpoint) const {
  std::vector<const PathStats*> out;
  // Keys are (endpoint, "comparator:path"): an endpoint's paths are one run of the map.
  for (auto it = paths_.lower_bound({endpoint, std::string()}); it != paths_.end() && it->first.first == endpoint; ++it)
    out.push_back(&it->second);
  return out;
}

}  // namespace doppel::plugins
