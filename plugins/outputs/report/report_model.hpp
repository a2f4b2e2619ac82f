#pragma once
// What the report keeps of a stream of verdicts: counts per endpoint and verdict, counts
// per endpoint x difference path with a few sample exchanges, latency reservoirs. Every
// collection is capped, so a report of a million verdicts stays small.
#include <cstdint>
#include <map>
#include <optional>
#include <random>
#include <string>
#include <string_view>
#include <vector>

namespace doppel::plugins {

// A uniform sample of at most `capacity` values (Vitter's algorithm R), for percentiles.
class Reservoir {
 public:
  explicit Reservoir(std::size_t capacity = 20000) : capacity_(capacity) {}
  void add(double v);
  std::uint64_t seen() const { return seen_; }
  // q in [0, 1]; nullopt when empty. Sorts lazily.
  std::optional<double> percentile(double q) const;
  const std::vector<double>& values() const { return values_; }

 private:
  std::size_t capacity_;
  std::uint64_t seen_ = 0;
  mutable std::vector<double> values_;
  mutable bool sorted_ = true;
  std::minstd_rand rng_{42};
};

struct ReportLimits {
  std::size_t samples_per_path = 5;
  std::size_t max_endpoints = 1000;
  std::size_t max_paths = 10000;
  std::size_t latency_samples = 20000;
  std::size_t sample_limit = 16 * 1024;  // bytes of each sample text kept
};

struct ReportTotals {
  std::uint64_t total = 0, match = 0, warn = 0, mismatch = 0, replay_error = 0, missing_original = 0,
                missing_replay = 0, other = 0, noise_checks = 0;
  Reservoir original_latency, replay_latency;
  void count(std::string_view verdict);
};

struct EndpointStats {
  ReportTotals totals;
};

struct PathSample {
  std::string id, verdict, kind, original_value, replay_value;
  std::string message;  // the comparator's words, when it gave any
  std::string request, original, replay, baseline;  // "" when the verdict carried no sample
};

struct PathStats {
  std::string endpoint, comparator, path;
  std::uint64_t count = 0, fail = 0, warn = 0, info = 0, noise = 0, other = 0;
  std::map<std::string, std::uint64_t> kinds;
  std::vector<PathSample> samples;
};

class ReportModel {
 public:
  explicit ReportModel(ReportLimits limits);
  // Adds one verdict (its JSON payload). False with `error` when it is not a verdict.
  bool add(std::string_view verdict_json, std::string& error);

  const ReportTotals& totals() const { return totals_; }
  const std::map<std::string, EndpointStats>& endpoints() const { return endpoints_; }
  // Paths by descending count.
  std::vector<const PathStats*> top_paths(std::size_t n) const;
  // The paths tracked for `endpoint` (as endpoints() names it), by comparator, then path.
  std::vector<const PathStats*> paths_of(const std::string& endpoint) const;
  std::size_t tracked_paths() const { return paths_.size(); }
  std::uint64_t untracked_paths() const { return untracked_paths_; }
  const ReportLimits& limits() const { return limits_; }

 private:
  EndpointStats& endpoint(const std::string& name);
  ReportLimits limits_;
  ReportTotals totals_;
  std::map<std::string, EndpointStats> endpoints_;
  std::map<std::pair<std::string, std::string>, PathStats> paths_;  // (endpoint, comparator:path)
  std::uint64_t untracked_paths_ = 0;
};

}  // namespace doppel::plugins
