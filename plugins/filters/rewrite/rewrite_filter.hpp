#pragma once
// The `rewrite` filter: edits requests before they are replayed, as GoReplay's
// --http-rewrite-url, --http-set-param, --http-rewrite-header, --http-set-header do.
// Edits keep every other byte of the request as it was.
#include <re2/re2.h>

#include <memory>
#include <string>
#include <vector>

#include "doppel/stage.hpp"

namespace doppel::plugins {

struct RegexRewrite {
  std::unique_ptr<RE2> pattern;
  std::string replacement;  // RE2 syntax (\1), converted from GoReplay's $1
};

struct HeaderRewrite {
  std::string name;
  RegexRewrite rewrite;
};

struct RewriteFilterConfig {
  std::vector<RegexRewrite> rewrite_url;                      // applied to the target, in order
  std::vector<std::pair<std::string, std::string>> set_param; // query parameter -> value
  std::vector<HeaderRewrite> rewrite_header;
  std::vector<std::pair<std::string, std::string>> set_header;
  std::vector<std::string> remove_header;
};

// Sets `name=value` in the query of `target`, replacing every existing value of `name`.
std::string set_query_param(std::string_view target, std::string_view name, std::string_view value);
// "$1", "${1}" -> "\1"; a literal backslash is escaped. For GoReplay-style replacements.
std::string dollar_to_re2(std::string_view replacement);

class RewriteFilter : public Stage {
 public:
  explicit RewriteFilter(RewriteFilterConfig config) : config_(std::move(config)) {}
  void process(const MessagePtr& message) override;

 private:
  RewriteFilterConfig config_;
};

}  // namespace doppel::plugins
