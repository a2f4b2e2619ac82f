#include "request_sites.hpp"

#include <algorithm>
#include <cstdio>

#include "doppel/form.hpp"
#include "doppel/hex.hpp"
#include "json_scalars.hpp"

namespace doppel::plugins {
namespace {

std::size_t offset_in(std::string_view payload, std::string_view part) {
  return static_cast<std::size_t>(part.data() - payload.data());
}

// A body is edited only when its bytes are what the server reads: not chunked, not compressed.
bool body_editable(const HttpView& request) {
  if (request.raw_body().empty() || request.chunked()) return false;
  auto encoding = request.header("Content-Encoding");
  return !encoding || trim_ows(*encoding).empty() || iequals(trim_ows(*encoding), "identity");
}

enum class Encoding { none, target, query, segment };

bool keep_char(char c, Encoding encoding) {
  auto u = static_cast<unsigned char>(c);
  bool unreserved = is_word_char(c) || c == '.' || c == '~';
  switch (encoding) {
    case Encoding::none: return true;
    case Encoding::query: return unreserved;
    case Encoding::segment:
      return unreserved || std::string_view("!$&'()*+,;=:@").find(c) != std::string_view::npos;
    case Encoding::target:
      return u > 0x20 && u < 0x7f && std::string_view("\"<>\\^`{|}#").find(c) == std::string_view::npos;
  }
  return true;
}

std::string encode(std::string_view value, Encoding encoding) {
  std::string out;
  for (char c : value) {
    if (keep_char(c, encoding)) {
      out.push_back(c);
    } else {
      char buf[4];
      std::snprintf(buf, sizeof buf, "%%%02X", static_cast<unsigned>(static_cast<unsigned char>(c)));
      out += buf;
    }
  }
  return out;
}

// Percent-decoding as paths need it: '+' is a plus sign there, not a space.
std::string path_decode(std::string_view text) {
  std::string out;
  for (std::size_t i = 0; i < text.size(); ++i) {
    if (text[i] == '%' && i + 2 < text.size() && hex_digit_value(text[i + 1]) >= 0 && hex_digit_value(text[i + 2]) >= 0) {
      out.push_back(static_cast<char>(hex_digit_value(text[i + 1]) * 16 + hex_digit_value(text[i + 2])));
      i += 2;
    } else {
      out.push_back(text[i]);
    }
  }
  return out;
}

// Whole-token search: every known original that appears in `region` as a whole token.
void search_tokens(std::string_view payload, std::string_view region, const ValueLookup& lookup, std::size_t rule,
                   Encoding encoding, bool in_body, std::vector<Edit>& out) {
  std::vector<std::string_view> candidates;
  std::size_t n = region.size();
  for (std::size_t i = 0; i < n; ++i) {
    if (!is_word_char(region[i]) || (i > 0 && is_word_char(region[i - 1]))) continue;
    std::size_t j = i;
    while (j < n && is_word_char(region[j])) ++j;
    candidates.clear();
    lookup.starting_with(region.substr(i, j - i), candidates);
    std::string_view best;
    for (auto original : candidates) {
      if (original.size() <= best.size() || region.substr(i, original.size()) != original) continue;
      std::size_t end = i + original.size();
      if (end < n && is_word_char(region[end]) && is_word_char(original.back())) continue;
      best = original;
    }
    if (best.empty()) {
      i = j - 1;
      continue;
    }
    if (const std::string* replacement = lookup.exact(best)) {
      out.push_back(Edit{offset_in(payload, region) + i, best.size(), encode(*replacement, encoding), rule, in_body});
    }
    i += best.size() - 1;
  }
}

// `name=value` pairs separated by `separator`; calls visit(name, value) with views into `text`.
template <class Visit>
void for_each_pair(std::string_view text, char separator, Visit visit) {
  std::size_t start = 0;
  while (start <= text.size()) {
    std::size_t end = text.find(separator, start);
    if (end == std::string_view::npos) end = text.size();
    std::string_view piece = trim_ows(text.substr(start, end - start));
    auto eq = piece.find('=');
    if (eq != std::string_view::npos) visit(trim_ows(piece.substr(0, eq)), trim_ows(piece.substr(eq + 1)));
    start = end + 1;
  }
}

void exact_edit(std::string_view payload, std::string_view value, const std::string& decoded, const ValueLookup& lookup,
                std::size_t rule, Encoding encoding, bool in_body, std::vector<Edit>& out) {
  if (decoded.empty()) return;
  if (const std::string* replacement = lookup.exact(decoded))
    out.push_back(Edit{offset_in(payload, value), value.size(), encode(*replacement, encoding), rule, in_body});
}

void param_edits(std::string_view payload, std::string_view text, const std::string& name, const ValueLookup& lookup,
                 std::size_t rule, bool in_body, std::vector<Edit>& out) {
  for_each_pair(text, '&', [&](std::string_view key, std::string_view value) {
    if (percent_decode(key) == name)
      exact_edit(payload, value, percent_decode(value), lookup, rule, Encoding::query, in_body, out);
  });
}

bool skipped_anywhere(std::string_view header) {
  // Framing and routing headers are never values to replace (an id "42" is not a Content-Length).
  return iequals(header, "Host") || iequals(header, "Content-Length") || iequals(header, "Transfer-Encoding") ||
         iequals(header, "Content-Encoding");
}

}  // namespace

std::string_view first_word_run(std::string_view value) {
  std::size_t i = 0;
  while (i < value.size() && is_word_char(value[i])) ++i;
  return value.substr(0, i);
}

std::optional<RequestSite> parse_request_site(std::string_view text, std::string* error) {
  RequestSite site;
  site.text = std::string(text);
  auto colon = text.find(':');
  std::string_view kind = text.substr(0, colon);
  std::string_view rest = colon == std::string_view::npos ? std::string_view() : text.substr(colon + 1);
  auto fail = [&](std::string message) -> std::optional<RequestSite> {
    if (error) *error = std::move(message);
    return std::nullopt;
  };
  if (text == "anywhere") return site;
  if (kind == "path") {
    site.type = RequestSite::Type::path;
    if (colon == std::string_view::npos) return site;
    std::size_t n = 0;
    for (char c : rest) {
      if (c < '0' || c > '9' || n > 1000) return fail("`path:N` takes a segment number from 1, not \"" + std::string(rest) + "\"");
      n = n * 10 + static_cast<std::size_t>(c - '0');
    }
    if (rest.empty() || n == 0) return fail("`path:N` takes a segment number from 1, not \"" + std::string(rest) + "\"");
    site.segment = n;
    return site;
  }
  if (colon == std::string_view::npos || rest.empty())
    return fail("`in` entries are \"header:NAME\", \"cookie:NAME\", \"param:NAME\", \"json:PATH\", \"path\", "
                "\"path:N\" or \"anywhere\", not \"" + std::string(text) + "\"");
  if (kind == "header") site.type = RequestSite::Type::header;
  else if (kind == "cookie") site.type = RequestSite::Type::cookie;
  else if (kind == "param") site.type = RequestSite::Type::param;
  else if (kind == "json") {
    std::string path_error;
    auto path = json::JsonPath::try_parse(rest, &path_error);
    if (!path) return fail("invalid JSON path \"" + std::string(rest) + "\": " + path_error);
    site.type = RequestSite::Type::json;
    site.path = std::move(*path);
    return site;
  } else {
    return fail("unknown `in` kind \"" + std::string(kind) + "\"; use header:, cookie:, param:, json:, path or anywhere");
  }
  site.name = std::string(rest);
  return site;
}

void find_edits(const RequestSite& site, const HttpView& request, std::string_view payload, const ValueLookup& lookup,
                std::size_t rule, std::vector<Edit>& out) {
  if (!request.is_request()) return;
  bool editable_body = body_editable(request);
  switch (site.type) {
    case RequestSite::Type::anywhere:
      search_tokens(payload, request.target(), lookup, rule, Encoding::target, false, out);
      for (const auto& h : request.headers())
        if (!skipped_anywhere(h.name)) search_tokens(payload, trim_ows(h.value), lookup, rule, Encoding::none, false, out);
      if (editable_body) search_tokens(payload, request.raw_body(), lookup, rule, Encoding::none, true, out);
      break;
    case RequestSite::Type::header:
      for (const auto& h : request.headers())
        if (iequals(h.name, site.name))
          search_tokens(payload, trim_ows(h.value), lookup, rule, Encoding::none, false, out);
      break;
    case RequestSite::Type::cookie:
      for (const auto& h : request.headers()) {
        if (!iequals(h.name, "Cookie")) continue;
        for_each_pair(h.value, ';', [&](std::string_view name, std::string_view value) {
          if (name != site.name) return;
          if (value.size() >= 2 && value.front() == '"' && value.back() == '"') value = value.substr(1, value.size() - 2);
          exact_edit(payload, value, std::string(value), lookup, rule, Encoding::none, false, out);
        });
      }
      break;
    case RequestSite::Type::param: {
      param_edits(payload, request.query(), site.name, lookup, rule, false, out);
      auto type = request.header("Content-Type");
      if (editable_body && type && is_form_content_type(*type))
        param_edits(payload, request.raw_body(), site.name, lookup, rule, true, out);
      break;
    }
    case RequestSite::Type::json: {
      std::string_view body = request.raw_body();
      if (!editable_body || !json::looks_like_json(body)) break;
      std::size_t base = offset_in(payload, body);
      scan_json_scalars(body, [&](const json::ConcretePath& path, const JsonScalar& scalar) {
        if (scalar.value.empty() || !site.path.matches(path)) return;
        const std::string* replacement = lookup.exact(scalar.value);
        if (!replacement) return;
        std::string text = scalar.is_string || !is_json_number(*replacement) ? json_escape(*replacement) : *replacement;
        if (!scalar.is_string && !is_json_number(*replacement)) text = "\"" + text + "\"";
        out.push_back(Edit{base + scalar.begin, scalar.end - scalar.begin, std::move(text), rule, true});
      });
      break;
    }
    case RequestSite::Type::path: {
      std::string_view path = request.path();
      std::size_t start = path.starts_with('/') ? 1 : 0, index = 0;
      while (start <= path.size()) {
        std::size_t end = path.find('/', start);
        if (end == std::string_view::npos) end = path.size();
        ++index;
        if (site.segment == 0 || site.segment == index) {
          std::string_view segment = path.substr(start, end - start);
          exact_edit(payload, segment, path_decode(segment), lookup, rule, Encoding::segment, false, out);
        }
        start = end + 1;
      }
      break;
    }
  }
}

std::string apply_edits(std::string_view payload, const HttpView& request, const std::vector<Edit>& edits,
                        std::vector<const Edit*>& applied) {
  applied.clear();
  for (const auto& e : edits) {
    bool overlaps = std::any_of(applied.begin(), applied.end(), [&](const Edit* a) {
      return e.offset < a->offset + a->length && a->offset < e.offset + e.length;
    });
    if (!overlaps) applied.push_back(&e);
  }
  std::vector<const Edit*> ordered = applied;
  std::sort(ordered.begin(), ordered.end(), [](const Edit* a, const Edit* b) { return a->offset < b->offset; });
  std::string out;
  out.reserve(payload.size() + 64);
  std::size_t at = 0;
  std::ptrdiff_t body_delta = 0;
  for (const Edit* e : ordered) {
    out.append(payload.substr(at, e->offset - at));
    out.append(e->text);
    at = e->offset + e->length;
    if (e->in_body) body_delta += static_cast<std::ptrdiff_t>(e->text.size()) - static_cast<std::ptrdiff_t>(e->length);
  }
  out.append(payload.substr(at));
  if (body_delta != 0 && request.header("Content-Length")) {
    auto length = static_cast<std::ptrdiff_t>(request.raw_body().size()) + body_delta;
    out = http_set_header(out, "Content-Length", std::to_string(length));
  }
  return out;
}

}  // namespace doppel::plugins
