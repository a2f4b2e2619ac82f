#include "url_filter.hpp"

namespace doppel::plugins {
namespace {
bool any_match(const std::vector<std::unique_ptr<RE2>>& patterns, std::string_view target) {
  for (const auto& re : patterns)
    if (RE2::PartialMatch(target, *re)) return true;
  return false;
}
}  // namespace

void UrlFilter::process(const MessagePtr& message) {
  const HttpView& http = message->http();
  if (!http.is_request()) {
    context().drop("unparseable_request");
    return;
  }
  if (!config_.allow.empty() && !any_match(config_.allow, http.target())) {
    context().drop("url_not_allowed");
    return;
  }
  if (any_match(config_.deny, http.target())) {
    context().drop("url_denied");
    return;
  }
  context().emit(message);
}

}  // namespace doppel::plugins
