#pragma once
// The structural diff of two JSON texts behind the `json` and `grpc` comparators: one engine,
// so that both report the same kinds, paths and values and take the same ignore/unordered/
// tolerance options. Free of messages and stages, so that fuzzers and benchmarks drive it directly.
#include <cstddef>
#include <string_view>
#include <vector>

#include "doppel/comparator.hpp"
#include "doppel/json_path.hpp"

namespace doppel {
class Options;
}

namespace doppel::json {

struct JsonDiffConfig {
  json::JsonPathSet ignore;      // subtrees never compared
  json::JsonPathSet unordered;   // arrays compared as multisets
  double tolerance = 0;          // numbers within this absolute distance are equal
  std::size_t max_differences = 100;  // then one "truncated" entry
  std::size_t max_value_bytes = 200;  // each shown value is cut there (UTF-8 safe)
};

// A comparator's diff options, read the same way by every comparator built on json_diff:
// `ignore` and `unordered` (path lists), `tolerance` (>= 0), `max_differences` (>= 1) and
// `max_value_length` (>= 16). Fails at the offending key (Options::fail) with the reason.
JsonDiffConfig json_diff_config(const doppel::Options& options);

// Differences between two JSON texts. Kinds: "changed" (same type, other value), "type",
// "missing" (only in the original), "extra" (only in the replay), "length" (array sizes),
// "order" (same elements in another order), "invalid_json" (either side does not parse or
// nests deeper than 1024 levels; byte-identical texts are never reported), "truncated".
// The original is parsed once; of the replay, only what differs from the original beyond
// ignored fields is parsed when the differences lie in a few children of one container
// (otherwise all of it, and a region that falls back is parsed again whole). Parsers and
// documents are kept by this thread for the next call.
std::vector<Difference> json_diff(std::string_view original, std::string_view replay, const JsonDiffConfig& config);

// The same, always walking both documents: without the shortcuts for bodies that differ only in
// ignored scalars or in a few regions (ignored_edits.hpp). The tests and the fuzzer hold the
// shortcuts to it.
std::vector<Difference> json_diff_walk(std::string_view original, std::string_view replay,
                                       const JsonDiffConfig& config);

}  // namespace doppel::json
