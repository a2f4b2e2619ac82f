#pragma once
// Where replayed requests go, and the two edits made to their captured bytes on the way:
// the Host header and the target's base path. Every other byte is sent as captured.
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

#include "doppel/message.hpp"

namespace doppel::plugins {

struct TargetUrl {
  bool tls = false;
  std::string host;         // name or address, IPv6 without brackets
  std::uint16_t port = 0;
  std::string base_path;    // "" or "/base" (no trailing slash)
  std::string host_header;  // "host" or "host:port" when the port is not the scheme's default
};

// Parses "http://host[:port][/base]" or "https://..."; nullopt with `error` set otherwise.
std::optional<TargetUrl> parse_target_url(std::string_view url, std::string& error);

// The join rule: the base path, without its trailing slash, is prefixed to the request's
// target. An absolute-form target ("http://old/a?b") contributes its path and query only;
// "*" (OPTIONS *) is kept as is when there is no base path.
//   base "/base" + "/a?b" -> "/base/a?b";  base "" + "/a?b" -> "/a?b";  base "/base" + "*" -> "/base"
std::string join_target(std::string_view base_path, std::string_view target);

struct OutgoingRequest {
  std::string bytes;       // empty when the captured payload goes out unchanged
  bool head = false;       // HEAD: the response has no body whatever its headers say
  bool close = false;      // the request asked for Connection: close
};

// Builds the bytes to send for a captured request; nullopt when it is not an HTTP request.
std::optional<OutgoingRequest> prepare_request(const Message& request, const TargetUrl& target,
                                               bool original_host);

}  // namespace doppel::plugins
