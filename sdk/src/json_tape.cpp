#include "json_tape.hpp"

#include <algorithm>
#include <charconv>
#include <cmath>
#include <limits>

#include "doppel/json_text.hpp"

namespace doppel::json {
namespace {

template <class Number>
void append_number(std::string& out, Number n) {
  char buf[32];
  auto [end, ec] = std::to_chars(buf, buf + sizeof buf, n);
  if (ec == std::errc()) out.append(buf, end);
}

// As the SDK serializes a DOM value for display: stops once `out` is longer than `limit`.
void serialize(std::string& out, const JsonTape& t, std::size_t v, std::size_t limit) {
  if (out.size() > limit) return;
  switch (t.type(v)) {
    case '[': {
      out.push_back('[');
      bool first = true;
      for (std::size_t e = JsonTape::first(v), end = t.end(v); e != end; e = t.next(e)) {
        if (out.size() > limit) return;
        if (!first) out.push_back(',');
        first = false;
        serialize(out, t, e, limit);
      }
      out.push_back(']');
      return;
    }
    case '{': {
      out.push_back('{');
      bool first = true;
      for (std::size_t k = JsonTape::first(v), end = t.end(v); k != end; k = t.next(k + 1)) {
        if (out.size() > limit) return;
        if (!first) out.push_back(',');
        first = false;
        json::append_quoted(out, t.string(k));
        out.push_back(':');
        serialize(out, t, k + 1, limit);
      }
      out.push_back('}');
      return;
    }
    case 'l': append_number(out, t.int64(v)); return;
    case 'u': append_number(out, t.uint64(v)); return;
    case 'd': {
      double d = t.real(v);
      if (std::isfinite(d)) append_number(out, d);
      else out.append("null");
      return;
    }
    case '"': json::append_quoted(out, t.string(v)); return;
    case 't': out.append("true"); return;
    case 'f': out.append("false"); return;
    default: out.append("null"); return;
  }
}

}  // namespace

bool JsonTape::identical(std::size_t v, const JsonTape& other, std::size_t w) const {
  std::size_t n = next(v) - v;
  if (other.next(w) - w != n) return false;
  constexpr std::uint64_t kPayload = 0x00FFFFFFFFFFFFFFULL;
  const std::uint64_t* x = words_ + v;
  const std::uint64_t* y = other.words_ + w;
  // The strings of a value lie together in the string buffer: compared in one go at the end.
  bool strings = false;
  std::uint64_t string_shift = 0, first = 0, end = 0;
  for (std::size_t i = 0; i < n; ++i) {
    std::uint64_t a = x[i], b = y[i];
    if ((a >> 56) != (b >> 56)) return false;
    switch (static_cast<char>(a >> 56)) {
      case '{':
      case '[':  // the index after the matching close (low 32 bits), the count (bits 32-55)
        if ((a >> 32) != (b >> 32) || static_cast<std::uint32_t>(a) - v != static_cast<std::uint32_t>(b) - w)
          return false;
        break;
      case '}':
      case ']':  // the index of the matching open
        if ((a & kPayload) - v != (b & kPayload) - w) return false;
        break;
      case '"': {
        std::uint64_t sa = a & kPayload, sb = b & kPayload;
        std::uint32_t length = 0;
        std::memcpy(&length, strings_ + sa, sizeof length);
        if (!strings) {
          strings = true;
          string_shift = sb - sa;
          first = sa;
        } else if (sb - sa != string_shift) {
          return false;
        }
        first = std::min(first, sa);
        end = std::max(end, sa + sizeof length + length);
        break;
      }
      case 'l':
      case 'u':
      case 'd':  // the number is the next word
        if (x[i + 1] != y[i + 1]) return false;
        ++i;
        break;
      default:  // true, false, null
        if (a != b) return false;
    }
  }
  // Each string's length and bytes, at the same place on both sides (the shift wraps around as
  // an offset, never as a pointer).
  return !strings || std::memcmp(strings_ + first, other.strings_ + (first + string_shift), end - first) == 0;
}

std::string display(const JsonTape& tape, std::size_t v, std::size_t max_bytes) {
  std::string out;
  std::size_t limit = max_bytes == 0 ? std::numeric_limits<std::size_t>::max() : max_bytes;
  serialize(out, tape, v, limit);
  if (out.size() <= limit) return out;
  // The exact remaining size is unknown without serializing everything: say "…" only.
  std::size_t cut = max_bytes;
  while (cut > 0 && (static_cast<unsigned char>(out[cut]) & 0xC0) == 0x80) --cut;
  out.resize(cut);
  out.append("\xE2\x80\xA6");
  return out;
}

}  // namespace doppel::json
