#pragma once
#include <re2/re2.h>

#include <memory>
#include <vector>

#include "doppel/stage.hpp"

namespace doppel::plugins {

struct UrlFilterConfig {
  std::vector<std::unique_ptr<RE2>> allow;  // empty: every target is allowed
  std::vector<std::unique_ptr<RE2>> deny;
};

// Keeps requests whose target (path and query, as in the request line) matches one `allow`
// pattern and no `deny` pattern, like GoReplay's --http-allow-url / --http-disallow-url.
class UrlFilter : public Stage {
 public:
  explicit UrlFilter(UrlFilterConfig config) : config_(std::move(config)) {}
  void process(const MessagePtr& message) override;

 private:
  UrlFilterConfig config_;
};

}  // namespace doppel::plugins
