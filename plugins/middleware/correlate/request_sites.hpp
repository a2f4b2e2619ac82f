#pragma once
// Where a rule's values are used in requests (`in`), and the byte edits that put the replay's
// values there. Every byte not edited stays as captured; Content-Length follows the body.
#include <cstddef>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "doppel/http.hpp"
#include "doppel/json_path.hpp"

namespace doppel::plugins {

struct RequestSite {
  enum class Type {
    anywhere,  // whole tokens in the request target, header values and body (no `in`)
    header,    // whole tokens in the values of header `name`
    cookie,    // the value of cookie `name` in Cookie headers
    param,     // the value of query (or form body) parameter `name`
    json,      // string or number values of the JSON body at `path`
    path,      // a path segment: segment `segment` (1-based), or any when 0
  };
  Type type = Type::anywhere;
  std::string name;
  json::JsonPath path;
  std::size_t segment = 0;
  std::string text;  // as written
};

// "header:NAME", "cookie:NAME", "param:NAME", "json:PATH", "path", "path:N", "anywhere".
std::optional<RequestSite> parse_request_site(std::string_view text, std::string* error);

// The values a rule knows for one request: original -> the replay target's value.
class ValueLookup {
 public:
  virtual ~ValueLookup() = default;
  // The replacement of a value used whole (a cookie, a parameter, a path segment, a JSON value).
  virtual const std::string* exact(std::string_view original) const = 0;
  // For whole-token search: known originals that begin with the word run `run`, i.e. `run`
  // followed by the end of the value or a character that is not a word character.
  virtual void starting_with(std::string_view run, std::vector<std::string_view>& originals) const = 0;
};

// Word characters: a value is replaced as a whole token, never inside a longer run of them.
inline bool is_word_char(char c) {
  return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '_' || c == '-';
}
// The first run of word characters of `value` ("abc" of "abc.def"; "" when it starts otherwise).
std::string_view first_word_run(std::string_view value);

struct Edit {
  std::size_t offset = 0, length = 0;  // in the payload
  std::string text;                    // what replaces it
  std::size_t rule = 0;                // which rule made it
  bool in_body = false;
};

// Appends the edits that rule number `rule` makes at `site` in `request` (its parsed view over
// `payload`). Bodies are edited only when sent as is (not chunked, no Content-Encoding).
void find_edits(const RequestSite& site, const HttpView& request, std::string_view payload, const ValueLookup& lookup,
                std::size_t rule, std::vector<Edit>& out);

// Applies `edits`, skipping any that overlaps one before it in the list (earlier rules win),
// and sets Content-Length when the body changed size. `applied` gets the edits kept.
std::string apply_edits(std::string_view payload, const HttpView& request, const std::vector<Edit>& edits,
                        std::vector<const Edit*>& applied);

}  // namespace doppel::plugins
