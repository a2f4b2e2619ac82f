#include "noise_model.hpp"

#include <cmath>

namespace doppel::plugins {

void NoiseModel::bump(const std::string& endpoint, const std::string& path, bool raw) {
  auto key = std::make_pair(endpoint, path);
  auto it = paths_.find(key);
  if (it == paths_.end()) {
    if (paths_.size() >= max_keys_) {
      ++untracked_;
      return;
    }
    it = paths_.emplace(std::move(key), std::make_pair(0, 0)).first;
  }
  (raw ? it->second.first : it->second.second) += 1;
}

NoiseCounts NoiseModel::counts(const std::string& endpoint, const std::string& path) const {
  NoiseCounts c;
  if (auto t = totals_.find(endpoint); t != totals_.end()) c.total = t->second;
  if (auto p = paths_.find({endpoint, path}); p != paths_.end()) {
    c.raw = p->second.first;
    c.noise = p->second.second;
  }
  return c;
}

bool NoiseModel::is_noise(const NoiseCounts& c, const NoiseThresholds& t) {
  if (c.raw <= c.noise) return true;  // the old service disagrees with itself at least as often
  if (c.total == 0) return false;
  double diff = static_cast<double>(c.raw - c.noise);
  double absolute = diff / static_cast<double>(c.total) * 100.0;
  double relative = diff / static_cast<double>(c.raw + c.noise) * 100.0;
  return !(absolute > t.absolute && relative > t.relative);
}

bool NoiseModel::is_noise(const std::string& endpoint, const std::string& path) const {
  return is_noise(counts(endpoint, path), thresholds_);
}

}  // namespace doppel::plugins
