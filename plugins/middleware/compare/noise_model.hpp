#pragma once
// Diffy's noise model. For each endpoint x difference path it counts, over the exchanges
// that have a baseline (a second copy of the old service), how often the candidate differs
// from the original (raw) and how often the baseline does (noise). A path is a real
// difference only when raw > noise and both
//   absolute = |raw - noise| / total * 100            > absolute_threshold (percent)
//   relative = |raw - noise| / (raw + noise) * 100    > relative_threshold (percent)
// hold; otherwise the old service disagrees with itself about as often, and it is noise.
#include <cstdint>
#include <map>
#include <string>
#include <utility>

namespace doppel::plugins {

struct NoiseThresholds {
  double relative = 20.0;   // percent
  double absolute = 0.03;   // percent of the endpoint's exchanges
};

struct NoiseCounts {
  std::uint64_t raw = 0;    // candidate differed from the original
  std::uint64_t noise = 0;  // baseline differed from the original
  std::uint64_t total = 0;  // exchanges of the endpoint with a baseline
};

class NoiseModel {
 public:
  explicit NoiseModel(NoiseThresholds thresholds, std::size_t max_keys = 100000)
      : thresholds_(thresholds), max_keys_(max_keys) {}

  // One more exchange of `endpoint` had a baseline.
  void count_exchange(const std::string& endpoint) { ++totals_[endpoint]; }
  // Records a path that differed between original and candidate (raw) or baseline (noise).
  void count_raw(const std::string& endpoint, const std::string& path) { bump(endpoint, path, true); }
  void count_noise(const std::string& endpoint, const std::string& path) { bump(endpoint, path, false); }

  NoiseCounts counts(const std::string& endpoint, const std::string& path) const;
  // True when a difference at `path` is noise by the counts so far.
  bool is_noise(const std::string& endpoint, const std::string& path) const;
  static bool is_noise(const NoiseCounts& counts, const NoiseThresholds& thresholds);
  // Paths no longer tracked because max_keys was reached (they count as real differences).
  std::uint64_t untracked() const { return untracked_; }
  std::size_t size() const { return paths_.size(); }  // endpoint x path counts kept

 private:
  void bump(const std::string& endpoint, const std::string& path, bool raw);
  NoiseThresholds thresholds_;
  std::size_t max_keys_;
  std::map<std::string, std::uint64_t> totals_;
  std::map<std::pair<std::string, std::string>, std::pair<std::uint64_t, std::uint64_t>> paths_;
  std::uint64_t untracked_ = 0;
};

}  // namespace doppel::plugins
