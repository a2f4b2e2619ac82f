#pragma once
// application/x-www-form-urlencoded data, as request bodies and query strings carry it.
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace doppel {

// "%41+b" -> "A b". Malformed escapes are kept as written.
std::string percent_decode(std::string_view text);

// "a=1&b=%32&c" -> {a,1},{b,2},{c,""}; keys and values percent-decoded; empty pieces skipped.
std::vector<std::pair<std::string, std::string>> parse_form(std::string_view text);

// True for "application/x-www-form-urlencoded", parameters (e.g. "; charset=utf-8") allowed.
bool is_form_content_type(std::string_view content_type);

// Without a Content-Type: a body of visible ASCII characters with a '=' reads as a form.
bool looks_like_form(std::string_view body);

}  // namespace doppel
