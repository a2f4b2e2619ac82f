#pragma once
// Escaping text for HTML and XML (reports, JUnit files).
#include <string>
#include <string_view>

namespace doppel {

// Escapes <, >, & and " so that text is safe in element content and in quoted attributes.
inline std::string escape_markup(std::string_view text) {
  std::string out;
  out.reserve(text.size());
  for (char c : text) {
    switch (c) {
      case '<': out += "&lt;"; break;
      case '>': out += "&gt;"; break;
      case '&': out += "&amp;"; break;
      case '"': out += "&quot;"; break;
      default: out += c;
    }
  }
  return out;
}

}  // namespace doppel
