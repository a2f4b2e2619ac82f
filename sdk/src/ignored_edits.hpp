#pragma once
// A shortcut of the JSON diff (doppel/json_diff.hpp): bodies that differ only in a few ignored
// scalars (a trace id, a timestamp) are shown equal byte by byte, without parsing the replay or
// walking either document.
#include <string_view>

#include "doppel/json_path.hpp"

namespace doppel::json {

// True when `replay` is `original` with some scalar values (strings, numbers, true, false,
// null) replaced by other scalars, each at a path that `ignore` covers: then `replay` is valid
// JSON too and the diff of the two is empty. `original` must be valid JSON (the caller parsed
// it). False whenever that cannot be shown this way; the caller then parses and walks both.
bool differs_only_at_ignored_scalars(std::string_view original, std::string_view replay,
                                     const json::JsonPathSet& ignore);

}  // namespace doppel::json
