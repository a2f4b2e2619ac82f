#pragma once
#include <cstdint>

#include "doppel/stage.hpp"

namespace doppel::plugins {

struct SplitFilterConfig {
  std::uint64_t ways = 2;
  std::uint64_t index = 0;
};

// Keeps the share `index` of `ways` of the requests, chosen by a hash of the message id, so
// that N copies with index 0..N-1 split the traffic between N branches with no overlap
// (GoReplay's --split-output). A request's responses follow it to the same branch.
class SplitFilter : public Stage {
 public:
  explicit SplitFilter(SplitFilterConfig config) : config_(config) {}
  void process(const MessagePtr& message) override;

 private:
  SplitFilterConfig config_;
};

// FNV-1a: stable across runs and machines, so a branch gets the same ids every time.
std::uint64_t split_hash(std::string_view id);

}  // namespace doppel::plugins
