#include "doppel/json_text.hpp"

#include "doppel/json_writer.hpp"

#include <charconv>
#include <cmath>
#include <cstdint>
#include <limits>
#include <optional>

namespace doppel::json {
namespace {

void append_number(std::string& out, double d) {
  if (!std::isfinite(d)) {
    out.append("null");
    return;
  }
  char buf[32];
  auto [ptr, ec] = std::to_chars(buf, buf + sizeof buf, d);
  if (ec == std::errc()) out.append(buf, ptr);
}

template <class Int>
void append_int(std::string& out, Int v) {
  char buf[24];
  auto [ptr, ec] = std::to_chars(buf, buf + sizeof buf, v);
  if (ec == std::errc()) out.append(buf, ptr);
}

// Serializes `value`, stopping once `out` grows past `limit` (the caller truncates). Depth is
// bounded by the document's parse depth and, with a limit, by the limit itself.
void serialize(std::string& out, simdjson::dom::element value, std::size_t limit) {
  if (out.size() > limit) return;
  switch (value.type()) {
    case simdjson::dom::element_type::ARRAY: {
      out.push_back('[');
      bool first = true;
      for (auto child : simdjson::dom::array(value)) {
        if (out.size() > limit) return;
        if (!first) out.push_back(',');
        first = false;
        serialize(out, child, limit);
      }
      out.push_back(']');
      return;
    }
    case simdjson::dom::element_type::OBJECT: {
      out.push_back('{');
      bool first = true;
      for (auto field : simdjson::dom::object(value)) {
        if (out.size() > limit) return;
        if (!first) out.push_back(',');
        first = false;
        append_quoted(out, field.key);
        out.push_back(':');
        serialize(out, field.value, limit);
      }
      out.push_back('}');
      return;
    }
    case simdjson::dom::element_type::INT64: append_int(out, std::int64_t(value)); return;
    case simdjson::dom::element_type::UINT64: append_int(out, std::uint64_t(value)); return;
    case simdjson::dom::element_type::DOUBLE: append_number(out, double(value)); return;
    case simdjson::dom::element_type::STRING: append_quoted(out, std::string_view(value)); return;
    case simdjson::dom::element_type::BOOL: out.append(bool(value) ? "true" : "false"); return;
    case simdjson::dom::element_type::NULL_VALUE: out.append("null"); return;
  }
}

std::optional<double> parse_double(std::string_view text) {
  double d = 0;
  auto [ptr, ec] = std::from_chars(text.data(), text.data() + text.size(), d);
  if (ec != std::errc() || ptr != text.data() + text.size() || text.empty()) return std::nullopt;
  return d;
}

}  // namespace

// Escaping and truncation are the JSON writer's: one implementation in the SDK.
void append_quoted(std::string& out, std::string_view text) { append_json_string(out, text); }

std::string quoted(std::string_view text) { return json_quote(text); }

void append_utf8(std::string& out, std::uint32_t cp) {
  if (cp < 0x80) {
    out.push_back(static_cast<char>(cp));
  } else if (cp < 0x800) {
    out.push_back(static_cast<char>(0xC0 | (cp >> 6)));
    out.push_back(static_cast<char>(0x80 | (cp & 0x3F)));
  } else if (cp < 0x10000) {
    out.push_back(static_cast<char>(0xE0 | (cp >> 12)));
    out.push_back(static_cast<char>(0x80 | ((cp >> 6) & 0x3F)));
    out.push_back(static_cast<char>(0x80 | (cp & 0x3F)));
  } else {
    out.push_back(static_cast<char>(0xF0 | (cp >> 18)));
    out.push_back(static_cast<char>(0x80 | ((cp >> 12) & 0x3F)));
    out.push_back(static_cast<char>(0x80 | ((cp >> 6) & 0x3F)));
    out.push_back(static_cast<char>(0x80 | (cp & 0x3F)));
  }
}

std::string to_json(simdjson::dom::element value) {
  std::string out;
  serialize(out, value, std::numeric_limits<std::size_t>::max());
  return out;
}

std::string truncate_for_display(std::string_view text, std::size_t max_bytes) {
  if (max_bytes == 0) return std::string(text);
  return doppel::truncate_for_display(text, max_bytes);
}

std::string display(simdjson::dom::element value, std::size_t max_bytes) {
  std::string out;
  std::size_t limit = max_bytes == 0 ? std::numeric_limits<std::size_t>::max() : max_bytes;
  serialize(out, value, limit);
  if (out.size() <= limit) return out;
  // The exact remaining size is unknown without serializing everything: say "…" only.
  std::size_t cut = max_bytes;
  while (cut > 0 && (static_cast<unsigned char>(out[cut]) & 0xC0) == 0x80) --cut;
  out.resize(cut);
  out.append("\xE2\x80\xA6");
  return out;
}

std::string scalar_text(simdjson::dom::element value) {
  std::string out;
  switch (value.type()) {
    case simdjson::dom::element_type::STRING: return std::string(std::string_view(value));
    case simdjson::dom::element_type::DOUBLE: {
      double d = double(value);
      // 664.0 reads as 664, as people write ids.
      if (std::isfinite(d) && d == std::trunc(d) && std::fabs(d) < 9.007199254740992e15) {
        append_int(out, static_cast<std::int64_t>(d));
        return out;
      }
      append_number(out, d);
      return out;
    }
    default: serialize(out, value, std::numeric_limits<std::size_t>::max()); return out;
  }
}

bool scalar_equals(simdjson::dom::element value, std::string_view text) {
  switch (value.type()) {
    case simdjson::dom::element_type::STRING: return std::string_view(value) == text;
    case simdjson::dom::element_type::INT64: {
      std::int64_t i = 0;
      auto [ptr, ec] = std::from_chars(text.data(), text.data() + text.size(), i);
      if (ec == std::errc() && ptr == text.data() + text.size() && !text.empty()) return i == std::int64_t(value);
      auto d = parse_double(text);
      return d && *d == static_cast<double>(std::int64_t(value));
    }
    case simdjson::dom::element_type::UINT64: {
      std::uint64_t u = 0;
      auto [ptr, ec] = std::from_chars(text.data(), text.data() + text.size(), u);
      if (ec == std::errc() && ptr == text.data() + text.size() && !text.empty()) return u == std::uint64_t(value);
      auto d = parse_double(text);
      return d && *d == static_cast<double>(std::uint64_t(value));
    }
    case simdjson::dom::element_type::DOUBLE: {
      auto d = parse_double(text);
      return d && *d == double(value);
    }
    case simdjson::dom::element_type::BOOL: return text == (bool(value) ? "true" : "false");
    case simdjson::dom::element_type::NULL_VALUE: return text == "null";
    default: return false;
  }
}

}  // namespace doppel::json
