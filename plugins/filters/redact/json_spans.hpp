#pragma once
// Finds the byte ranges of the values at given paths in JSON text, so that they can be
// replaced without re-serializing (every other byte stays as it was).
#include <cstddef>
#include <string>
#include <string_view>
#include <vector>

#include "doppel/json_path.hpp"

namespace doppel::plugins {

struct ValueSpan {
  std::size_t begin = 0, end = 0;  // [begin, end) in the text, quotes included for strings
  std::string value;               // a string's decoded content, or the raw text of other values
};

// Every value whose path matches one of `fields`, in document order; a match is not looked
// into (a matched object is one span). Unlike path lookups, every occurrence of a duplicated
// key is returned: redaction must not miss one. `base` is where the document sits (a JSON
// part named "meta" of a multipart form: paths start at meta). `text` must be valid JSON
// (check with JsonDocument first); nesting is bounded by that check.
std::vector<ValueSpan> find_value_spans(std::string_view text, const json::JsonPathSet& fields,
                                        const json::ConcretePath& base = {});

}  // namespace doppel::plugins
