#include "doppel/session_key.hpp"

#include "doppel/form.hpp"
#include "doppel/http.hpp"

namespace doppel {
namespace {

// RFC 7230 token characters: what a header or cookie name may be made of.
bool is_token(std::string_view s) {
  if (s.empty()) return false;
  for (char c : s) {
    auto u = static_cast<unsigned char>(c);
    if (u <= 0x20 || u >= 0x7f) return false;
    if (std::string_view("()<>@,;:\\\"/[]?={}").find(c) != std::string_view::npos) return false;
  }
  return true;
}

std::optional<std::string> cookie_value(const HttpView& view, std::string_view name) {
  for (const HttpHeader& header : view.headers()) {
    if (!iequals(header.name, "Cookie")) continue;
    std::string_view list = header.value;
    while (!list.empty()) {
      auto semi = list.find(';');
      std::string_view pair = trim_ows(list.substr(0, semi));
      list = semi == std::string_view::npos ? std::string_view() : list.substr(semi + 1);
      auto eq = pair.find('=');
      if (eq == std::string_view::npos || trim_ows(pair.substr(0, eq)) != name) continue;
      std::string_view value = trim_ows(pair.substr(eq + 1));
      if (value.size() >= 2 && value.front() == '"' && value.back() == '"') value = value.substr(1, value.size() - 2);
      if (value.empty()) return std::nullopt;
      return std::string(value);
    }
  }
  return std::nullopt;
}

std::optional<std::string> param_value(const HttpView& view, std::string_view name) {
  for (auto& [key, value] : parse_form(view.query())) {
    if (key != name) continue;
    if (value.empty()) return std::nullopt;
    return std::move(value);
  }
  return std::nullopt;
}

}  // namespace

std::optional<SessionKeySpec> parse_session_key(std::string_view text, std::string* error) {
  auto failed = [&](std::string message) -> std::optional<SessionKeySpec> {
    if (error) *error = std::move(message);
    return std::nullopt;
  };
  SessionKeySpec spec;
  if (text == "connection") return spec;
  auto colon = text.find(':');
  std::string_view source = text.substr(0, colon);
  if (source == "header") spec.source = SessionKeySpec::Source::header;
  else if (source == "cookie") spec.source = SessionKeySpec::Source::cookie;
  else if (source == "param") spec.source = SessionKeySpec::Source::param;
  else
    return failed("expected \"connection\", \"header:NAME\", \"cookie:NAME\" or \"param:NAME\", got \"" +
                  std::string(text) + "\"");
  if (colon == std::string_view::npos || colon + 1 == text.size())
    return failed("\"" + std::string(source) + ":\" needs a name, e.g. \"" + std::string(source) + ":session_id\"");
  std::string_view name = text.substr(colon + 1);
  if (spec.source != SessionKeySpec::Source::param && !is_token(name))
    return failed("\"" + std::string(name) + "\" is not a valid " + std::string(source) + " name");
  if (spec.source == SessionKeySpec::Source::param && name.find_first_of("&= \t") != std::string_view::npos)
    return failed("\"" + std::string(name) + "\" is not a valid query parameter name");
  spec.name.assign(name);
  return spec;
}

std::string to_string(const SessionKeySpec& spec) {
  switch (spec.source) {
    case SessionKeySpec::Source::connection: return "connection";
    case SessionKeySpec::Source::header: return "header:" + spec.name;
    case SessionKeySpec::Source::cookie: return "cookie:" + spec.name;
    case SessionKeySpec::Source::param: return "param:" + spec.name;
  }
  return "connection";
}

std::optional<std::string> session_key_of(const SessionKeySpec& spec, const Message& request) {
  if (spec.source == SessionKeySpec::Source::connection) {
    if (request.meta.connection_id == 0) return std::nullopt;
    // Ids are unique within one capture process; the endpoint keeps keys of messages that came
    // from different processes (NATS agents) apart.
    std::string key = std::to_string(request.meta.connection_id);
    const Endpoint& source = request.meta.source;
    if (!source.address.empty()) {
      key += '@';
      bool v6 = source.address.find(':') != std::string::npos;
      if (v6) key += '[';
      key += source.address;
      if (v6) key += ']';
      key += ':';
      key += std::to_string(source.port);
    }
    return key;
  }
  const HttpView& view = request.http();
  if (!view.is_request()) return std::nullopt;
  switch (spec.source) {
    case SessionKeySpec::Source::header: {
      auto value = view.header(spec.name);
      if (!value || trim_ows(*value).empty()) return std::nullopt;
      return std::string(trim_ows(*value));
    }
    case SessionKeySpec::Source::cookie: return cookie_value(view, spec.name);
    case SessionKeySpec::Source::param: return param_value(view, spec.name);
    case SessionKeySpec::Source::connection: break;
  }
  return std::nullopt;
}

}  // namespace doppel
