#pragma once
// Shortcuts of the JSON diff (doppel/json_diff.hpp), found by reading the two texts side by side
// before the replay is parsed: bodies that differ only in a few ignored scalars (a trace id, a
// timestamp) are shown equal byte by byte, without parsing the replay or walking either
// document; bodies whose other differences all lie inside one small container (an element of a
// long list) need only that container of the replay parsed and walked.
#include <cstddef>
#include <cstdint>
#include <span>
#include <string_view>
#include <vector>

#include <simdjson.h>

#include "doppel/json_path.hpp"

namespace doppel::json {

// One step of a path as a view into a text: an object key (as written; never one with escapes)
// or an array index.
struct TextStep {
  std::string_view key;
  std::size_t index;
  bool is_key;
};

// What reading `original` and `replay` side by side tells about their differences.
struct EditScan {
  enum class Outcome : std::uint8_t {
    // `replay` is `original` with some scalar values (strings, numbers, true, false, null)
    // replaced by other scalars, each at a path that `ignore` covers: then `replay` is valid
    // JSON too and the diff of the two is empty.
    ignored_only,
    // Besides such scalars, `replay` differs only inside a few children (members or elements
    // that are objects or arrays) of one container of `original`, the one at `path`: each
    // region's text is replaced by another text of the replay. The replay is valid JSON when
    // each of those is one JSON value; the diff of the two documents is then the diff of the
    // container with the same container holding those values, unless the walk would not reach
    // them alike (a repeated key, an unordered array or an ignored value on the way), or would
    // need the rest of the container (a list whose elements may have been reordered), which
    // the caller checks.
    confined,
    // Neither could be shown this way; the caller parses and walks both.
    unknown,
  };
  struct Region {
    TextStep step;  // the child's key or index in the container
    std::size_t original_begin, original_end, replay_begin, replay_end;
  };
  Outcome outcome = Outcome::unknown;
  std::vector<TextStep> path;    // confined: to the container (views into `original`)
  std::vector<Region> regions;   // confined: in document order
};

// The offsets simdjson's first stage found in the text `parser` parsed last: of each bracket,
// comma, colon, string and number or literal, in order. (simdjson keeps them for its second
// stage; the tests pin what they hold.)
std::span<const std::uint32_t> structural_tokens(const simdjson::dom::parser& parser);

// `original` must be the valid JSON text whose structural tokens are `tokens`. Bodies that
// differ in many places, or in a large part of them, are `unknown`: parsing them is no slower.
EditScan scan_edits(std::string_view original, std::span<const std::uint32_t> tokens, std::string_view replay,
                    const json::JsonPathSet& ignore);

// scan_edits(...).outcome == ignored_only, for an `original` that parses; false when it does not.
bool differs_only_at_ignored_scalars(std::string_view original, std::string_view replay,
                                     const json::JsonPathSet& ignore);

}  // namespace doppel::json
