#include "request_rewrite.hpp"

#include <charconv>

namespace doppel::plugins {

std::optional<TargetUrl> parse_target_url(std::string_view url, std::string& error) {
  TargetUrl t;
  std::string_view rest;
  if (url.starts_with("http://")) {
    rest = url.substr(7);
  } else if (url.starts_with("https://")) {
    t.tls = true;
    rest = url.substr(8);
  } else {
    error = "expected http://host[:port][/path] or https://..., got \"" + std::string(url) + "\"";
    return std::nullopt;
  }
  std::size_t slash = rest.find('/');
  std::string_view authority = rest.substr(0, slash);
  std::string_view path = slash == std::string_view::npos ? std::string_view{} : rest.substr(slash);
  if (path.find_first_of("?#") != std::string_view::npos) {
    error = "the target url may carry a base path but no query or fragment: \"" + std::string(url) + "\"";
    return std::nullopt;
  }
  std::string_view port_text;
  if (authority.starts_with('[')) {  // [::1]:8080
    auto close = authority.find(']');
    if (close == std::string_view::npos) {
      error = "unclosed '[' in \"" + std::string(url) + "\"";
      return std::nullopt;
    }
    t.host = std::string(authority.substr(1, close - 1));
    auto after = authority.substr(close + 1);
    if (after.starts_with(':')) port_text = after.substr(1);
    else if (!after.empty()) {
      error = "unexpected text after the address in \"" + std::string(url) + "\"";
      return std::nullopt;
    }
  } else {
    auto colon = authority.rfind(':');
    t.host = std::string(authority.substr(0, colon));
    if (colon != std::string_view::npos) port_text = authority.substr(colon + 1);
  }
  if (t.host.empty()) {
    error = "no host in \"" + std::string(url) + "\"";
    return std::nullopt;
  }
  std::uint16_t default_port = t.tls ? 443 : 80;
  t.port = default_port;
  if (!port_text.empty()) {
    unsigned value = 0;
    auto [ptr, ec] = std::from_chars(port_text.data(), port_text.data() + port_text.size(), value);
    if (ec != std::errc{} || ptr != port_text.data() + port_text.size() || value == 0 || value > 65535) {
      error = "invalid port \"" + std::string(port_text) + "\" in \"" + std::string(url) + "\"";
      return std::nullopt;
    }
    t.port = static_cast<std::uint16_t>(value);
  }
  while (path.ends_with('/')) path.remove_suffix(1);
  t.base_path = std::string(path);
  bool v6 = t.host.find(':') != std::string::npos;
  t.host_header = v6 ? "[" + t.host + "]" : t.host;
  if (t.port != default_port) t.host_header += ":" + std::to_string(t.port);
  return t;
}

std::string join_target(std::string_view base_path, std::string_view target) {
  if (auto scheme = target.find("://"); scheme != std::string_view::npos && target[0] != '/') {
    auto path_start = target.find('/', scheme + 3);
    target = path_start == std::string_view::npos ? std::string_view("/") : target.substr(path_start);
  }
  if (base_path.empty()) return std::string(target);
  if (target == "*") return std::string(base_path);
  std::string out(base_path);
  if (!target.starts_with('/')) out += '/';
  out += target;
  return out;
}

std::optional<OutgoingRequest> prepare_request(const Message& request, const TargetUrl& target,
                                               bool original_host) {
  const HttpView& http = request.http();
  if (!http.is_request() || !http.ok()) return std::nullopt;
  OutgoingRequest out;
  out.head = http.method() == "HEAD";
  if (auto conn = http.header("Connection")) out.close = iequals(*conn, "close");
  if (http.version() == "HTTP/1.0") {
    auto conn = http.header("Connection");
    out.close = !conn || !iequals(*conn, "keep-alive");
  }

  std::string_view payload = request.payload;
  std::string new_target;
  bool target_changes = false;
  if (!target.base_path.empty() || (http.target().find("://") != std::string_view::npos && !http.target().starts_with('/'))) {
    new_target = join_target(target.base_path, http.target());
    target_changes = new_target != http.target();
  }
  auto host = http.header("Host");
  bool host_changes = !original_host && (!host || *host != target.host_header);
  if (!target_changes && !host_changes) return out;  // sent as captured, no copy

  // Splice the edits into the captured bytes; views point into `payload`.
  std::string& bytes = out.bytes;
  bytes.reserve(payload.size() + new_target.size() + target.host_header.size() + 8);
  std::size_t pos = 0;
  if (target_changes) {
    auto t = http.target();
    std::size_t at = static_cast<std::size_t>(t.data() - payload.data());
    bytes.append(payload.substr(0, at));
    bytes.append(new_target);
    pos = at + t.size();
  }
  if (host_changes && host) {
    std::size_t at = static_cast<std::size_t>(host->data() - payload.data());
    bytes.append(payload.substr(pos, at - pos));
    bytes.append(target.host_header);
    pos = at + host->size();
  } else if (host_changes) {
    // No Host header (HTTP/1.0 style): add one right after the request line.
    std::size_t nl = payload.find('\n');
    bool crlf = nl != std::string_view::npos && nl > 0 && payload[nl - 1] == '\r';
    bytes.append(payload.substr(pos, nl + 1 - pos));
    bytes.append("Host: ");
    bytes.append(target.host_header);
    bytes.append(crlf ? "\r\n" : "\n");
    pos = nl + 1;
  }
  bytes.append(payload.substr(pos));
  return out;
}

}  // namespace doppel::plugins
