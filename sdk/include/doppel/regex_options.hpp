#pragma once
// RE2 patterns from string-list options, compiled once at configure time. A pattern that
// does not compile is a ConfigError at the option's position, naming the pattern and why.
// Header-only so that only plugins using RE2 link it.
#include <re2/re2.h>

#include <memory>
#include <string>
#include <vector>

#include "doppel/options.hpp"

namespace doppel {

inline std::unique_ptr<RE2> compile_pattern(const Options& options, std::string_view name, const std::string& pattern) {
  RE2::Options re_options;
  re_options.set_log_errors(false);
  auto re = std::make_unique<RE2>(pattern, re_options);
  if (!re->ok()) options.fail(name, "invalid pattern \"" + pattern + "\" in \"" + std::string(name) + "\": " + re->error());
  return re;
}

inline std::vector<std::unique_ptr<RE2>> compile_patterns(const Options& options, std::string_view name) {
  std::vector<std::unique_ptr<RE2>> out;
  for (const auto& pattern : options.strings(name)) out.push_back(compile_pattern(options, name, pattern));
  return out;
}

}  // namespace doppel
