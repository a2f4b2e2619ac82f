#pragma once
// The structural diff behind the `json` comparator, kept free of messages and stages so that
// the fuzzer and the benchmark drive it directly.
#include <cstddef>
#include <string_view>
#include <vector>

#include "doppel/comparator.hpp"
#include "doppel/json_path.hpp"

namespace doppel::plugins {

struct JsonDiffConfig {
  json::JsonPathSet ignore;      // subtrees never compared
  json::JsonPathSet unordered;   // arrays compared as multisets
  double tolerance = 0;          // numbers within this absolute distance are equal
  std::size_t max_differences = 100;  // then one "truncated" entry
  std::size_t max_value_bytes = 200;  // each shown value is cut there (UTF-8 safe)
};

// Differences between two JSON texts. Kinds: "changed" (same type, other value), "type",
// "missing" (only in the original), "extra" (only in the replay), "length" (array sizes),
// "order" (same elements in another order), "invalid_json" (either side does not parse or
// nests deeper than 1024 levels; byte-identical texts are never reported), "truncated".
// Each side is parsed once, by a parser and into documents this thread keeps for the next call.
std::vector<Difference> json_diff(std::string_view original, std::string_view replay, const JsonDiffConfig& config);

// The same, always walking both documents: without the shortcut for bodies that differ only in
// ignored scalars (ignored_edits.hpp). The tests and the fuzzer hold the shortcut to it.
std::vector<Difference> json_diff_walk(std::string_view original, std::string_view replay,
                                       const JsonDiffConfig& config);

}  // namespace doppel::plugins
