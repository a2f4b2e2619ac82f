#include "doppel/form.hpp"

#include <algorithm>
#include <charconv>

#include "doppel/hex.hpp"
#include "doppel/http.hpp"

namespace doppel {
namespace {

bool is_digits(std::string_view s) {
  return !s.empty() && std::all_of(s.begin(), s.end(), [](char c) { return c >= '0' && c <= '9'; });
}

// The value of parameter `name` in a header value like `form-data; name="a"; filename=b`
// (parameter names case-insensitive). A quoted value has its `\"` and `\\` escapes undone;
// browsers write `"` as %22 instead and never escape a backslash, so other escapes stay.
std::optional<std::string> header_parameter(std::string_view value, std::string_view name) {
  std::size_t pos = value.find(';');
  while (pos != std::string_view::npos && pos < value.size()) {
    ++pos;
    while (pos < value.size() && (value[pos] == ' ' || value[pos] == '\t')) ++pos;
    std::size_t eq = value.find('=', pos);
    std::size_t semi = value.find(';', pos);
    if (eq == std::string_view::npos || (semi != std::string_view::npos && semi < eq)) {
      pos = semi;
      continue;
    }
    bool wanted = iequals(trim_ows(value.substr(pos, eq - pos)), name);
    pos = eq + 1;
    while (pos < value.size() && (value[pos] == ' ' || value[pos] == '\t')) ++pos;
    std::string parsed;
    if (pos < value.size() && value[pos] == '"') {
      ++pos;
      while (pos < value.size() && value[pos] != '"') {
        if (value[pos] == '\\' && pos + 1 < value.size() && (value[pos + 1] == '"' || value[pos + 1] == '\\')) ++pos;
        parsed.push_back(value[pos++]);
      }
      pos = value.find(';', pos);
    } else {
      semi = value.find(';', pos);
      parsed = std::string(trim_ows(value.substr(pos, semi == std::string_view::npos ? semi : semi - pos)));
      pos = semi;
    }
    if (wanted) return parsed;
  }
  return std::nullopt;
}

}  // namespace

std::string percent_decode(std::string_view text) {
  std::string out;
  out.reserve(text.size());
  for (std::size_t i = 0; i < text.size(); ++i) {
    char c = text[i];
    if (c == '+') {
      out.push_back(' ');
    } else if (c == '%' && i + 2 < text.size() && hex_digit_value(text[i + 1]) >= 0 && hex_digit_value(text[i + 2]) >= 0) {
      out.push_back(static_cast<char>(hex_digit_value(text[i + 1]) * 16 + hex_digit_value(text[i + 2])));
      i += 2;
    } else {
      out.push_back(c);
    }
  }
  return out;
}

std::vector<std::pair<std::string, std::string>> parse_form(std::string_view text) {
  std::vector<std::pair<std::string, std::string>> out;
  std::size_t start = 0;
  while (start <= text.size()) {
    std::size_t end = text.find('&', start);
    if (end == std::string_view::npos) end = text.size();
    std::string_view piece = text.substr(start, end - start);
    if (!piece.empty()) {
      std::size_t eq = piece.find('=');
      if (eq == std::string_view::npos) out.emplace_back(percent_decode(piece), std::string());
      else out.emplace_back(percent_decode(piece.substr(0, eq)), percent_decode(piece.substr(eq + 1)));
    }
    start = end + 1;
  }
  return out;
}

bool is_form_content_type(std::string_view content_type) {
  return iequals(trim_ows(content_type.substr(0, content_type.find(';'))), "application/x-www-form-urlencoded");
}

bool looks_like_form(std::string_view body) {
  if (body.find('=') == std::string_view::npos) return false;
  return std::all_of(body.begin(), body.end(), [](char c) {
    auto u = static_cast<unsigned char>(c);
    return u > 0x20 && u < 0x7f;
  });
}

}  // namespace doppel

namespace doppel {

std::optional<json::ConcretePath> bracket_key_path(std::string_view key) {
  std::size_t open = key.find('[');
  if (open == std::string_view::npos || open == 0) return std::nullopt;
  json::ConcretePath path;
  path.push_back(json::PathStep::of_key(key.substr(0, open)));
  std::size_t pos = open;
  while (pos < key.size()) {
    if (key[pos] != '[') return std::nullopt;
    std::size_t close = key.find(']', pos);
    if (close == std::string_view::npos) return std::nullopt;
    std::string_view inner = key.substr(pos + 1, close - pos - 1);
    if (inner.find('[') != std::string_view::npos) return std::nullopt;
    std::size_t index = 0;
    bool numeric = is_digits(inner) && (inner.size() == 1 || inner[0] != '0') &&
                   std::from_chars(inner.data(), inner.data() + inner.size(), index).ec == std::errc();
    if (inner.empty()) path.push_back(json::PathStep::of_index(0));
    else if (numeric) path.push_back(json::PathStep::of_index(index));
    else path.push_back(json::PathStep::of_key(inner));
    pos = close + 1;
  }
  return path;
}

bool is_multipart_form_content_type(std::string_view content_type) {
  return iequals(trim_ows(content_type.substr(0, content_type.find(';'))), "multipart/form-data");
}

std::optional<std::string> multipart_boundary(std::string_view content_type) {
  auto boundary = header_parameter(content_type, "boundary");
  if (!boundary || boundary->empty() || boundary->size() > 200) return std::nullopt;
  return boundary;
}

MultipartBody parse_multipart(std::string_view body, std::string_view boundary) {
  MultipartBody out;
  const std::string delimiter = "\r\n--" + std::string(boundary);
  const std::string_view dash_boundary = std::string_view(delimiter).substr(2);
  auto fail = [&](std::string why) {
    out.parts.clear();
    out.error = std::move(why);
    return std::move(out);
  };
  auto headers_unterminated = [&] {
    return "the headers of part " + std::to_string(out.parts.size() + 1) + " do not end before the next delimiter";
  };
  std::size_t pos = 0;
  if (!body.starts_with(dash_boundary)) {
    std::size_t first = body.find(delimiter);
    if (first == std::string_view::npos) return fail("no \"--" + std::string(boundary) + "\" delimiter");
    pos = first + 2;
  }
  while (true) {
    pos += dash_boundary.size();
    if (body.substr(pos, 2) == "--") return out;  // the closing delimiter; the epilogue is not read
    while (pos < body.size() && (body[pos] == ' ' || body[pos] == '\t')) ++pos;
    if (body.substr(pos, 2) != "\r\n") return fail("a delimiter line does not end in CRLF");
    pos += 2;
    MultipartPart part;
    part.headers_begin = pos;
    std::size_t next = body.find(delimiter, pos);
    if (body.substr(pos, 2) == "\r\n") {
      part.headers_end = pos;
      part.content_begin = pos + 2;
    } else {
      // The blank line must come before any delimiter: a header line's CRLF may start one.
      std::size_t blank = body.find("\r\n\r\n", pos);
      if (blank == std::string_view::npos || blank > next) return fail(headers_unterminated());
      part.headers_end = blank + 2;
      part.content_begin = blank + 4;
    }
    if (next != std::string_view::npos && next < part.content_begin) next = body.find(delimiter, part.content_begin);
    if (next == std::string_view::npos) return fail("no closing \"--" + std::string(boundary) + "--\" delimiter");
    part.content_end = next;
    std::string_view headers = body.substr(part.headers_begin, part.headers_end - part.headers_begin);
    while (!headers.empty()) {
      std::size_t eol = headers.find("\r\n");
      std::string_view line = headers.substr(0, eol);
      headers = eol == std::string_view::npos ? std::string_view{} : headers.substr(eol + 2);
      std::size_t colon = line.find(':');
      if (colon == std::string_view::npos) continue;
      std::string_view name = trim_ows(line.substr(0, colon));
      std::string_view value = trim_ows(line.substr(colon + 1));
      if (iequals(name, "Content-Disposition")) {
        part.name = header_parameter(value, "name").value_or("");
        part.filename = header_parameter(value, "filename");
      } else if (iequals(name, "Content-Type")) {
        part.content_type = std::string(value);
      }
    }
    out.parts.push_back(std::move(part));
    pos = next + 2;
  }
}

}  // namespace doppel
