#include "split_filter.hpp"

#include "doppel/hash.hpp"

namespace doppel::plugins {

std::uint64_t split_hash(std::string_view id) { return fnv1a64(id); }

void SplitFilter::process(const MessagePtr& message) {
  if (split_hash(message->id) % config_.ways == config_.index) context().emit(message);
  else context().drop("other_branch");
}

}  // namespace doppel::plugins
