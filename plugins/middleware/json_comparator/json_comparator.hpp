#pragma once
#include "doppel/comparator.hpp"
#include "doppel/json_diff.hpp"

namespace doppel::plugins {

// Compares the JSON bodies (chunked/gzip undone) of the original and the replayed response.
// A missing side, or a replay that failed (meta.error), yields no differences: the compare
// stage reports those as missing_original / missing_replay / replay_error.
class JsonComparator : public Comparator {
 public:
  explicit JsonComparator(json::JsonDiffConfig config) : config_(std::move(config)) {}
  std::vector<Difference> compare(const Exchange& exchange) const override;

 private:
  json::JsonDiffConfig config_;
};

}  // namespace doppel::plugins
