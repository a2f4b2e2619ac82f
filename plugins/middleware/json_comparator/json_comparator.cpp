#include "json_comparator.hpp"

#include "doppel/json_text.hpp"

namespace doppel::plugins {

std::vector<Difference> JsonComparator::compare(const Exchange& exchange) const {
  if (!exchange.original || !exchange.replay || !exchange.replay->meta.error.empty()) return {};
  const DecodedBody& original = exchange.original->body();
  const DecodedBody& replay = exchange.replay->body();
  if (!original.error.empty() || !replay.error.empty()) {
    if (original.error == replay.error && original.bytes == replay.bytes) return {};
    auto side = [&](const DecodedBody& body) {
      if (body.error.empty()) return json::truncate_for_display(body.bytes, config_.max_value_bytes);
      return "(undecodable body: " + body.error + ")";
    };
    return {Difference{"$", "invalid_json", side(original), side(replay)}};
  }
  return json::json_diff(original.bytes, replay.bytes, config_);
}

}  // namespace doppel::plugins
