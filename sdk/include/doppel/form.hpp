#pragma once
// Form data as request bodies and query strings carry it: application/x-www-form-urlencoded
// and multipart/form-data (RFC 7578).
#include <cstddef>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "doppel/json_path.hpp"

namespace doppel {

// "%41+b" -> "A b". Malformed escapes are kept as written.
std::string percent_decode(std::string_view text);

// "a=1&b=%32&c" -> {a,1},{b,2},{c,""}; keys and values percent-decoded; empty pieces skipped.
std::vector<std::pair<std::string, std::string>> parse_form(std::string_view text);

// True for "application/x-www-form-urlencoded", parameters (e.g. "; charset=utf-8") allowed.
bool is_form_content_type(std::string_view content_type);

// Without a Content-Type: a body of visible ASCII characters with a '=' reads as a form.
bool looks_like_form(std::string_view body);

// The path a bracketed form key stands for in PHP, Rack (Rails) and Express (qs):
// "user[password]" -> user.password, "items[0][name]" -> items[0].name, "tags[]" -> tags[0]
// (an appended element: a `[*]` pattern matches it). nullopt for a key without brackets or
// not of that shape ("a]b", "a[b]c"), which only has its flat reading (the key itself).
std::optional<json::ConcretePath> bracket_key_path(std::string_view decoded_key);

// True for "multipart/form-data", parameters allowed.
bool is_multipart_form_content_type(std::string_view content_type);
// The `boundary` parameter of a multipart Content-Type (quotes removed); nullopt when it is
// missing, empty or longer than 200 bytes.
std::optional<std::string> multipart_boundary(std::string_view content_type);

// One part of a multipart body, as byte offsets into the body it was parsed from.
struct MultipartPart {
  std::size_t headers_begin = 0, headers_end = 0;  // the part's header lines, each with its CRLF
  std::size_t content_begin = 0, content_end = 0;  // the content, without the CRLF before the next delimiter
  std::string name;                                 // Content-Disposition `name` ("" when absent)
  std::optional<std::string> filename;              // Content-Disposition `filename`: a file part
  std::string content_type;                         // the part's Content-Type ("" when absent)
};

struct MultipartBody {
  std::vector<MultipartPart> parts;
  std::string error;  // why the body is not a multipart body ("" when it is)
};

// Splits `body` at `boundary` (RFC 2046 §5.1.1: CRLF line breaks, an optional preamble and
// epilogue, transport padding after a delimiter). A body without its first delimiter or its
// closing one ("--boundary--") is an error: a truncated body is not read as complete.
MultipartBody parse_multipart(std::string_view body, std::string_view boundary);

}  // namespace doppel
