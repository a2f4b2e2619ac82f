#include "json_tape.hpp"

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
