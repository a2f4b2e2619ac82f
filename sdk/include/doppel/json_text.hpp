#pragma once
// Writing JSON text and showing JSON values to people: escaping (for verdicts and reports),
// minified serialization, and truncation that never cuts a UTF-8 character in half.
#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

#include <simdjson.h>

namespace doppel::json {

// Appends `text` as a JSON string literal, quotes included. Control characters are escaped;
// bytes that are not valid UTF-8 become U+FFFD, so the output is always valid JSON.
void append_quoted(std::string& out, std::string_view text);
std::string quoted(std::string_view text);

// Appends the UTF-8 encoding of a code point (for decoding \uXXXX escapes).
void append_utf8(std::string& out, std::uint32_t code_point);

// Minified JSON of `value` (as simdjson::minify would write it).
std::string to_json(simdjson::dom::element value);

// `text` cut to at most `max_bytes` bytes on a UTF-8 boundary, followed by
// "…(+N bytes)" when something was cut. max_bytes = 0 means no limit.
std::string truncate_for_display(std::string_view text, std::size_t max_bytes);

// A value for a Difference: minified JSON, truncated (strings keep their quotes, so that
// "664" and 664 read differently).
std::string display(simdjson::dom::element value, std::size_t max_bytes = 200);

// The text a filter compares against `in = [...]` lists: the content of a string (no quotes),
// a number as written canonically (664, -1.5, 1e+300), true/false/null. Arrays and objects
// return their minified JSON.
std::string scalar_text(simdjson::dom::element value);

// Numeric equality of a value and a configured text: 664, 664.0 and "664" all equal "664";
// strings compare exactly, numbers compare numerically when `text` parses as a number.
bool scalar_equals(simdjson::dom::element value, std::string_view text);

}  // namespace doppel::json
