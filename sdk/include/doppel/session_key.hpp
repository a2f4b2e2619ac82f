#pragma once
// Which session a captured request belongs to, for session-aware replay (`session = ...` on the
// http output) and for stages that keep per-session state (correlate): the captured TCP
// connection, or a value the request carries in a header, a cookie or a query parameter.
#include <optional>
#include <string>
#include <string_view>

#include "doppel/message.hpp"

namespace doppel {

struct SessionKeySpec {
  enum class Source { connection, header, cookie, param };
  Source source = Source::connection;
  std::string name;  // header/cookie/param name; empty for connection
};

// "connection", "header:NAME", "cookie:NAME", "param:NAME"; nullopt and *error set otherwise
// (error may be null).
std::optional<SessionKeySpec> parse_session_key(std::string_view text, std::string* error);

// The spec as written: parse_session_key(to_string(spec)) gives it back.
std::string to_string(const SessionKeySpec& spec);

// The session a request belongs to, as text:
//   connection -> meta.connection_id with the source endpoint ("17@10.0.0.1:5555", "17" when the
//                 source is unknown); nullopt when the connection id is 0 (unknown, e.g. .gor files)
//   header     -> the first header of that name (case-insensitive), trimmed
//   cookie     -> that cookie's value (exact name, first one over every Cookie header, quotes removed)
//   param      -> that query parameter's value, percent-decoded ('+' is a space)
// nullopt when absent, when the value is empty, or when the payload is not an HTTP request.
std::optional<std::string> session_key_of(const SessionKeySpec& spec, const Message& request);

}  // namespace doppel
