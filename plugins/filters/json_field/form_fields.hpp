#pragma once
// application/x-www-form-urlencoded pairs, as bodies and query strings carry them.
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace doppel::plugins {

// "%41+b" -> "A b". Malformed escapes are kept as written.
std::string percent_decode(std::string_view text);

// "a=1&b=%32&c" -> {a,1},{b,2},{c,""}; keys and values percent-decoded; empty pieces skipped.
std::vector<std::pair<std::string, std::string>> parse_form(std::string_view text);

}  // namespace doppel::plugins
