#include "json_spans.hpp"

#include "doppel/hex.hpp"
#include "doppel/json_text.hpp"

namespace doppel::plugins {
namespace {

class SpanScanner {
 public:
  SpanScanner(std::string_view text, const json::JsonPathSet& fields, json::ConcretePath base)
      : t_(text), fields_(fields), path_(std::move(base)) {}

  std::vector<ValueSpan> run() {
    std::size_t pos = skip_ws(0);
    if (pos < t_.size()) value(pos);
    return std::move(spans_);
  }

 private:
  std::size_t skip_ws(std::size_t pos) const {
    while (pos < t_.size() && (t_[pos] == ' ' || t_[pos] == '\t' || t_[pos] == '\r' || t_[pos] == '\n')) ++pos;
    return pos;
  }

  // pos at the opening quote; returns the position after the closing quote.
  std::size_t string_end(std::size_t pos, std::string* decoded) const {
    ++pos;
    while (pos < t_.size()) {
      char c = t_[pos];
      if (c == '"') return pos + 1;
      if (c != '\\') {
        if (decoded) decoded->push_back(c);
        ++pos;
        continue;
      }
      if (pos + 1 >= t_.size()) return t_.size();
      char e = t_[pos + 1];
      pos += 2;
      if (!decoded) {
        continue;
      }
      switch (e) {
        case 'b': decoded->push_back('\b'); break;
        case 'f': decoded->push_back('\f'); break;
        case 'n': decoded->push_back('\n'); break;
        case 'r': decoded->push_back('\r'); break;
        case 't': decoded->push_back('\t'); break;
        case 'u': {
          std::uint32_t cp = hex4(pos);
          pos += 4;
          if (cp >= 0xD800 && cp <= 0xDBFF && pos + 6 <= t_.size() && t_[pos] == '\\' && t_[pos + 1] == 'u') {
            std::uint32_t low = hex4(pos + 2);
            if (low >= 0xDC00 && low <= 0xDFFF) {
              cp = 0x10000 + ((cp - 0xD800) << 10) + (low - 0xDC00);
              pos += 6;
            }
          }
          json::append_utf8(*decoded, cp);
          break;
        }
        default: decoded->push_back(e); break;  // " \ /
      }
    }
    return t_.size();
  }

  std::uint32_t hex4(std::size_t pos) const {
    std::uint32_t v = 0;
    for (std::size_t i = 0; i < 4 && pos + i < t_.size(); ++i) {
      int d = hex_digit_value(t_[pos + i]);
      v = (v << 4) | static_cast<std::uint32_t>(d < 0 ? 0 : d);
    }
    return v;
  }

  // pos at the first byte of a value; returns the position after it, without looking inside.
  std::size_t skip_value(std::size_t pos) const {
    if (pos >= t_.size()) return pos;
    char c = t_[pos];
    if (c == '"') return string_end(pos, nullptr);
    if (c == '{' || c == '[') {
      std::size_t depth = 0;
      while (pos < t_.size()) {
        char d = t_[pos];
        if (d == '"') {
          pos = string_end(pos, nullptr);
          continue;
        }
        if (d == '{' || d == '[') ++depth;
        else if ((d == '}' || d == ']') && --depth == 0) return pos + 1;
        ++pos;
      }
      return pos;
    }
    while (pos < t_.size() && t_[pos] != ',' && t_[pos] != '}' && t_[pos] != ']' && t_[pos] != ' ' &&
           t_[pos] != '\t' && t_[pos] != '\r' && t_[pos] != '\n')
      ++pos;
    return pos;
  }

  std::size_t value(std::size_t pos) {
    if (fields_.matches(path_)) {
      std::size_t end = skip_value(pos);
      ValueSpan span{pos, end, {}};
      if (t_[pos] == '"') string_end(pos, &span.value);
      else span.value = std::string(t_.substr(pos, end - pos));
      spans_.push_back(std::move(span));
      return end;
    }
    if (!fields_.may_match_below(path_)) return skip_value(pos);
    if (t_[pos] == '{') return object(pos);
    if (t_[pos] == '[') return array(pos);
    return skip_value(pos);
  }

  std::size_t object(std::size_t pos) {
    pos = skip_ws(pos + 1);
    if (pos < t_.size() && t_[pos] == '}') return pos + 1;
    while (pos < t_.size() && t_[pos] == '"') {
      std::string key;
      pos = skip_ws(string_end(pos, &key));
      if (pos >= t_.size() || t_[pos] != ':') return t_.size();
      pos = skip_ws(pos + 1);
      path_.push_back(json::PathStep::of_key(key));
      pos = skip_ws(value(pos));
      path_.pop_back();
      if (pos < t_.size() && t_[pos] == ',') pos = skip_ws(pos + 1);
      else break;
    }
    return pos < t_.size() ? pos + 1 : pos;  // the closing '}'
  }

  std::size_t array(std::size_t pos) {
    pos = skip_ws(pos + 1);
    if (pos < t_.size() && t_[pos] == ']') return pos + 1;
    std::size_t index = 0;
    while (pos < t_.size()) {
      path_.push_back(json::PathStep::of_index(index++));
      pos = skip_ws(value(pos));
      path_.pop_back();
      if (pos < t_.size() && t_[pos] == ',') pos = skip_ws(pos + 1);
      else break;
    }
    return pos < t_.size() ? pos + 1 : pos;  // the closing ']'
  }

  std::string_view t_;
  const json::JsonPathSet& fields_;
  json::ConcretePath path_;
  std::vector<ValueSpan> spans_;
};

}  // namespace

std::vector<ValueSpan> find_value_spans(std::string_view text, const json::JsonPathSet& fields,
                                        const json::ConcretePath& base) {
  return SpanScanner(text, fields, base).run();
}

}  // namespace doppel::plugins
