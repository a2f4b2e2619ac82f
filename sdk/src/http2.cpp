#include "doppel/http2.hpp"

#include <charconv>

#include "doppel/http.hpp"

namespace doppel::h2 {
namespace {

bool is_tchar(char c) {
  if ((c >= '0' && c <= '9') || (c >= 'a' && c <= 'z')) return true;
  switch (c) {
    case '!': case '#': case '$': case '%': case '&': case '\'': case '*': case '+': case '-': case '.':
    case '^': case '_': case '`': case '|': case '~':
      return true;
    default:
      return false;
  }
}

// RFC 9113 8.2.1: lower-case token names; values without NUL, CR, LF or surrounding whitespace.
bool valid_name(std::string_view name) {
  if (name.empty()) return false;
  for (char c : name)
    if (!is_tchar(c)) return false;
  return true;
}

bool valid_value(std::string_view value) {
  for (char c : value)
    if (c == '\0' || c == '\r' || c == '\n') return false;
  return value.empty() || (value.front() != ' ' && value.front() != '\t' && value.back() != ' ' && value.back() != '\t');
}

// Fields HTTP/2 forbids (RFC 9113 8.2.2): they describe an HTTP/1.1 connection.
bool connection_specific(std::string_view name) {
  return iequals(name, "connection") || iequals(name, "keep-alive") || iequals(name, "proxy-connection") ||
         iequals(name, "transfer-encoding") || iequals(name, "upgrade");
}

bool parse_length(std::string_view text, std::uint64_t& out) {
  auto [ptr, ec] = std::from_chars(text.data(), text.data() + text.size(), out);
  return !text.empty() && ec == std::errc{} && ptr == text.data() + text.size();
}

void append_field(std::string& out, std::string_view name, std::string_view value) {
  out += name;
  out += ": ";
  out += value;
  out += "\r\n";
}

bool no_content_status(int status) { return (status >= 100 && status < 200) || status == 204 || status == 304; }

}  // namespace

std::string_view reason_phrase(int status) {
  switch (status) {
    case 100: return "Continue";
    case 101: return "Switching Protocols";
    case 200: return "OK";
    case 201: return "Created";
    case 202: return "Accepted";
    case 203: return "Non-Authoritative Information";
    case 204: return "No Content";
    case 205: return "Reset Content";
    case 206: return "Partial Content";
    case 300: return "Multiple Choices";
    case 301: return "Moved Permanently";
    case 302: return "Found";
    case 303: return "See Other";
    case 304: return "Not Modified";
    case 307: return "Temporary Redirect";
    case 308: return "Permanent Redirect";
    case 400: return "Bad Request";
    case 401: return "Unauthorized";
    case 403: return "Forbidden";
    case 404: return "Not Found";
    case 405: return "Method Not Allowed";
    case 406: return "Not Acceptable";
    case 408: return "Request Timeout";
    case 409: return "Conflict";
    case 410: return "Gone";
    case 411: return "Length Required";
    case 412: return "Precondition Failed";
    case 413: return "Content Too Large";
    case 414: return "URI Too Long";
    case 415: return "Unsupported Media Type";
    case 416: return "Range Not Satisfiable";
    case 421: return "Misdirected Request";
    case 422: return "Unprocessable Content";
    case 425: return "Too Early";
    case 426: return "Upgrade Required";
    case 428: return "Precondition Required";
    case 429: return "Too Many Requests";
    case 431: return "Request Header Fields Too Large";
    case 500: return "Internal Server Error";
    case 501: return "Not Implemented";
    case 502: return "Bad Gateway";
    case 503: return "Service Unavailable";
    case 504: return "Gateway Timeout";
    case 505: return "HTTP Version Not Supported";
    default: return "";
  }
}

std::optional<std::string> to_http1(const StreamMessage& message, std::string& error, bool answers_head) {
  const Field *method = nullptr, *path = nullptr, *authority = nullptr, *scheme = nullptr, *status = nullptr;
  std::size_t regular = 0;  // index of the first regular field
  for (; regular < message.headers.size(); ++regular) {
    const Field& f = message.headers[regular];
    if (f.name.empty() || f.name.front() != ':') break;
    const Field** slot = f.name == ":method"      ? &method
                         : f.name == ":path"      ? &path
                         : f.name == ":authority" ? &authority
                         : f.name == ":scheme"    ? &scheme
                         : f.name == ":status"    ? &status
                                                  : nullptr;
    if (slot == nullptr) {
      error = "unsupported pseudo-header " + f.name;
      return std::nullopt;
    }
    if (*slot != nullptr) {
      error = "repeated pseudo-header " + f.name;
      return std::nullopt;
    }
    if (!valid_value(f.value)) {
      error = "invalid value of " + f.name;
      return std::nullopt;
    }
    *slot = &f;
  }
  const bool request = method != nullptr;
  if (request == (status != nullptr)) {
    error = request ? "both :method and :status" : "neither :method nor :status";
    return std::nullopt;
  }

  int status_code = 0;
  std::string out;
  out.reserve(256 + message.body.size());
  if (request) {
    const bool connect = method->value == "CONNECT";
    if (method->value.empty() || (!connect && (path == nullptr || path->value.empty() || scheme == nullptr)) ||
        (connect && (authority == nullptr || path != nullptr || scheme != nullptr))) {
      error = "malformed request pseudo-headers";
      return std::nullopt;
    }
    for (char c : method->value)
      if (!is_tchar(c) && !(c >= 'A' && c <= 'Z')) {
        error = "invalid :method";
        return std::nullopt;
      }
    for (char c : connect ? authority->value : path->value)
      if (c <= ' ' || c == 0x7f) {
        error = connect ? "invalid :authority" : "invalid :path";
        return std::nullopt;
      }
    out += method->value;
    out += ' ';
    out += connect ? authority->value : path->value;
    out += " HTTP/1.1\r\n";
    if (authority != nullptr) append_field(out, "host", authority->value);
  } else {
    std::uint64_t code = 0;
    if (path != nullptr || authority != nullptr || scheme != nullptr || status->value.size() != 3 ||
        !parse_length(status->value, code) || code < 100) {
      error = "malformed :status";
      return std::nullopt;
    }
    status_code = static_cast<int>(code);
    out += "HTTP/1.1 ";
    out += status->value;
    out += ' ';
    out += reason_phrase(status_code);
    out += "\r\n";
  }

  const bool chunked = !message.trailers.empty();
  const std::string* content_length = nullptr;
  std::string cookies;  // RFC 9113 8.2.3: split cookie fields are joined for HTTP/1.1
  std::size_t cookie_at = std::string::npos;
  for (std::size_t i = regular; i < message.headers.size(); ++i) {
    const Field& f = message.headers[i];
    if (!f.name.empty() && f.name.front() == ':') {
      error = "pseudo-header " + f.name + " after a regular field";
      return std::nullopt;
    }
    if (!valid_name(f.name) || !valid_value(f.value)) {
      error = "invalid header field";
      return std::nullopt;
    }
    if (connection_specific(f.name) || (f.name == "te" && f.value != "trailers")) {
      error = "connection-specific header field " + f.name;
      return std::nullopt;
    }
    if (f.name == "host" && authority != nullptr) {
      if (f.value != authority->value) {
        error = "host differs from :authority";
        return std::nullopt;
      }
      continue;  // written first, from :authority
    }
    if (f.name == "content-length") {
      if (content_length != nullptr && *content_length != f.value) {
        error = "conflicting content-length";
        return std::nullopt;
      }
      content_length = &f.value;
      if (chunked) continue;  // HTTP/1.1 allows only one framing
    }
    if (f.name == "cookie") {
      if (cookie_at == std::string::npos) {
        cookie_at = out.size();
      } else {
        cookies += "; ";
      }
      cookies += f.value;
      continue;
    }
    append_field(out, f.name, f.value);
  }
  if (cookie_at != std::string::npos) {
    std::string line = "cookie: " + cookies + "\r\n";
    out.insert(cookie_at, line);
  }

  if (content_length != nullptr) {
    std::uint64_t declared = 0;
    if (!parse_length(*content_length, declared)) {
      error = "malformed content-length";
      return std::nullopt;
    }
    const bool bodiless = answers_head || status_code == 304;
    if (declared != message.body.size() && !(bodiless && message.body.empty())) {
      error = "content-length differs from the DATA received";
      return std::nullopt;
    }
  }
  for (const Field& f : message.trailers) {
    if (!valid_name(f.name) || !valid_value(f.value)) {
      error = f.name.starts_with(':') ? "pseudo-header in trailers" : "invalid trailer field";
      return std::nullopt;
    }
  }

  if (chunked) {
    append_field(out, "transfer-encoding", "chunked");
    out += "\r\n";
    if (!message.body.empty()) {
      char size[20];
      out.append(size, std::to_chars(size, size + sizeof size, message.body.size(), 16).ptr);
      out += "\r\n";
      out += message.body;
      out += "\r\n";
    }
    out += "0\r\n";
    for (const Field& f : message.trailers) append_field(out, f.name, f.value);
    out += "\r\n";
    return out;
  }
  // Without a content-length the HTTP/1.1 form must say where the body ends: a response would
  // otherwise run to the end of the connection, a request with a body would have none.
  if (content_length == nullptr && !(request ? message.body.empty() : no_content_status(status_code))) {
    char size[20];
    append_field(out, "content-length",
                 std::string_view(size, std::to_chars(size, size + sizeof size, message.body.size()).ptr - size));
  }
  out += "\r\n";
  out += message.body;
  return out;
}

std::optional<StreamMessage> request_from_http1(std::string_view payload, std::string_view scheme,
                                                std::string& error) {
  HttpView view = HttpView::parse(payload);
  if (!view.ok() || !view.is_request()) {
    error = view.ok() ? "not a request" : view.error();
    return std::nullopt;
  }
  StreamMessage out;
  std::string_view target = view.target();
  std::string_view authority;
  if (auto host = view.header("host")) authority = *host;
  // absolute-form (a request sent to a proxy): the authority and path come from the URL
  if (auto sep = target.find("://"); sep != std::string_view::npos && !target.starts_with("/")) {
    std::string_view rest = target.substr(sep + 3);
    auto slash = rest.find('/');
    if (authority.empty()) authority = rest.substr(0, slash);
    target = slash == std::string_view::npos ? std::string_view("/") : rest.substr(slash);
  }
  const bool connect = iequals(view.method(), "CONNECT");
  out.headers.push_back({":method", std::string(view.method())});
  if (!connect) out.headers.push_back({":scheme", std::string(scheme)});
  if (!authority.empty() || connect) out.headers.push_back({":authority", std::string(connect ? target : authority)});
  if (!connect) out.headers.push_back({":path", std::string(target)});

  auto lower = [](std::string_view name) {
    std::string s(name);
    for (char& c : s)
      if (c >= 'A' && c <= 'Z') c = static_cast<char>(c - 'A' + 'a');
    return s;
  };
  for (const HttpHeader& h : view.headers()) {
    std::string name = lower(h.name);
    if (name == "host" || name == "http2-settings" || connection_specific(name)) continue;
    if (name == "te" && !iequals(h.value, "trailers")) continue;
    out.headers.push_back({std::move(name), std::string(h.value)});
  }
  FramedBody body = unframe_body(view);
  if (!body.error.empty()) {
    error = body.error;
    return std::nullopt;
  }
  out.body = std::move(body.bytes);
  for (const HttpHeader& t : body.trailers) out.trailers.push_back({lower(t.name), std::string(t.value)});
  return out;
}

}  // namespace doppel::h2
