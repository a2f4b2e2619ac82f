#include "value_source.hpp"

#include "doppel/http.hpp"

namespace doppel::plugins {
namespace {

std::optional<std::string> scalar_text(simdjson::dom::element value) {
  switch (value.type()) {
    case simdjson::dom::element_type::STRING: return std::string(value.get_string().value_unsafe());
    case simdjson::dom::element_type::INT64: return std::to_string(value.get_int64().value_unsafe());
    case simdjson::dom::element_type::UINT64: return std::to_string(value.get_uint64().value_unsafe());
    default: return std::nullopt;  // floats, booleans, null, objects and arrays are not ids
  }
}

// "name=value; Path=/" -> value, when the cookie is `name`.
std::optional<std::string_view> set_cookie_value(std::string_view header, std::string_view name) {
  std::string_view pair = trim_ows(header.substr(0, header.find(';')));
  auto eq = pair.find('=');
  if (eq == std::string_view::npos || trim_ows(pair.substr(0, eq)) != name) return std::nullopt;
  std::string_view value = trim_ows(pair.substr(eq + 1));
  if (value.size() >= 2 && value.front() == '"' && value.back() == '"') value = value.substr(1, value.size() - 2);
  return value;
}

}  // namespace

std::optional<ValueSource> parse_value_source(std::string_view text, std::string* error) {
  auto colon = text.find(':');
  std::string_view kind = text.substr(0, colon);
  std::string_view rest = colon == std::string_view::npos ? std::string_view() : text.substr(colon + 1);
  ValueSource source;
  source.text = std::string(text);
  auto fail = [&](std::string message) -> std::optional<ValueSource> {
    if (error) *error = std::move(message);
    return std::nullopt;
  };
  if (colon == std::string_view::npos || rest.empty())
    return fail("`from` is \"json:PATH\", \"header:NAME\", \"cookie:NAME\" or \"regex:PATTERN\", not \"" +
                std::string(text) + "\"");
  if (kind == "json") {
    std::string path_error;
    auto path = json::JsonPath::try_parse(rest, &path_error);
    if (!path) return fail("invalid JSON path \"" + std::string(rest) + "\": " + path_error);
    source.type = ValueSource::Type::json;
    source.path = std::move(*path);
  } else if (kind == "header" || kind == "cookie") {
    source.type = kind == "header" ? ValueSource::Type::header : ValueSource::Type::cookie;
    source.name = std::string(rest);
  } else if (kind == "regex") {
    RE2::Options options;
    options.set_log_errors(false);
    auto re = std::make_shared<RE2>(rest, options);
    if (!re->ok()) return fail("invalid pattern \"" + std::string(rest) + "\": " + re->error());
    if (re->NumberOfCapturingGroups() != 1)
      return fail("pattern \"" + std::string(rest) + "\" must have exactly one capture group (the value), it has " +
                  std::to_string(re->NumberOfCapturingGroups()));
    source.type = ValueSource::Type::regex;
    source.regex = std::move(re);
  } else {
    return fail("unknown `from` kind \"" + std::string(kind) + "\"; use json:, header:, cookie: or regex:");
  }
  return source;
}

std::vector<std::string> extract_values(const ValueSource& source, const Message& response, std::size_t limit) {
  std::vector<std::string> values;
  const HttpView& http = response.http();
  if (!http.is_response()) return values;
  switch (source.type) {
    case ValueSource::Type::header:
      for (const auto& h : http.headers())
        if (values.size() < limit && iequals(h.name, source.name) && !trim_ows(h.value).empty())
          values.emplace_back(trim_ows(h.value));
      break;
    case ValueSource::Type::cookie:
      for (const auto& h : http.headers()) {
        if (values.size() >= limit || !iequals(h.name, "Set-Cookie")) continue;
        if (auto v = set_cookie_value(h.value, source.name); v && !v->empty()) values.emplace_back(*v);
      }
      break;
    case ValueSource::Type::json: {
      const std::string& body = response.body().bytes;
      if (!json::looks_like_json(body)) break;
      auto doc = json::JsonDocument::parse(body);
      if (!doc.ok()) break;
      for (auto element : source.path.find(doc.root())) {
        if (values.size() >= limit) break;
        if (auto text = scalar_text(element); text && !text->empty()) values.push_back(std::move(*text));
      }
      break;
    }
    case ValueSource::Type::regex: {
      re2::StringPiece input(response.body().bytes);
      std::string value;
      while (values.size() < limit && RE2::FindAndConsume(&input, *source.regex, &value)) {
        if (!value.empty()) values.push_back(value);
        else if (input.empty()) break;
        else input.remove_prefix(1);  // an empty match: step on, never loop in place
      }
      break;
    }
  }
  return values;
}

}  // namespace doppel::plugins
