#pragma once
// Where a rule finds a dynamic value in a response (`from`): a JSON path, a header, a
// Set-Cookie cookie, or an RE2 pattern with one capture group over the decoded body.
#include <re2/re2.h>

#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "doppel/json_path.hpp"
#include "doppel/message.hpp"

namespace doppel::plugins {

struct ValueSource {
  enum class Type { json, header, cookie, regex };
  Type type = Type::json;
  std::string name;                 // header or cookie name
  json::JsonPath path;              // json
  std::shared_ptr<const RE2> regex; // regex: exactly one capture group
  std::string text;                 // as written, for messages
};

// "json:PATH", "header:NAME", "cookie:NAME", "regex:RE2"; nullopt and `error` set otherwise.
std::optional<ValueSource> parse_value_source(std::string_view text, std::string* error);

// Every value `source` finds in `response`, in the order they appear (at most `limit`).
// JSON strings give their text, JSON integers their digits; other JSON types give nothing.
std::vector<std::string> extract_values(const ValueSource& source, const Message& response, std::size_t limit);

}  // namespace doppel::plugins
