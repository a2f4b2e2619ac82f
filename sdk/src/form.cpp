#include "doppel/form.hpp"

#include <algorithm>

#include "doppel/hex.hpp"
#include "doppel/http.hpp"

namespace doppel {
namespace {

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
