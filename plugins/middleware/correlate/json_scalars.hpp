#pragma once
// Where each string and number of a JSON text lies, byte by byte, with its concrete path:
// what substituting a value in a request body needs (a parsed DOM keeps no positions, and
// re-serializing the body would change bytes that were never meant to change).
#include <cstddef>
#include <functional>
#include <string>
#include <string_view>

#include "doppel/json_path.hpp"

namespace doppel::plugins {

struct JsonScalar {
  std::size_t begin = 0, end = 0;  // strings: inside the quotes; numbers: the digits
  bool is_string = false;
  std::string value;               // strings unescaped (\uXXXX kept as written)
};

// Calls `visit(path, scalar)` for every string and number value (not object keys) of `text`
// in document order. Returns false, having visited what came before, on malformed JSON or
// nesting deeper than `max_depth`.
bool scan_json_scalars(std::string_view text,
                       const std::function<void(const json::ConcretePath&, const JsonScalar&)>& visit,
                       std::size_t max_depth = 256);

// `value` as the inside of a JSON string (quotes, backslashes and control characters escaped;
// invalid UTF-8 becomes U+FFFD, so the body stays valid JSON).
std::string json_escape(std::string_view value);
// A JSON number as written in a document ("-12", "3.5e2")?
bool is_json_number(std::string_view text);

}  // namespace doppel::plugins
