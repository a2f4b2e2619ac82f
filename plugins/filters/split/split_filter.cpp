#include "split_filter.hpp"

namespace doppel::plugins {

std::uint64_t split_hash(std::string_view id) {
  std::uint64_t h = 1469598103934665603ull;
  for (unsigned char c : id) {
    h ^= c;
    h *= 1099511628211ull;
  }
  return h;
}

void SplitFilter::process(const MessagePtr& message) {
  if (split_hash(message->id) % config_.ways == config_.index) context().emit(message);
  else context().drop("other_branch");
}

}  // namespace doppel::plugins
