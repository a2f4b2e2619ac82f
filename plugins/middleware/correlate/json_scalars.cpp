#include "json_scalars.hpp"

#include <cstdio>
#include <vector>

#include "doppel/json_text.hpp"

namespace doppel::plugins {
namespace {

class Scanner {
 public:
  Scanner(std::string_view text, const std::function<void(const json::ConcretePath&, const JsonScalar&)>& visit,
          std::size_t max_depth)
      : text_(text), visit_(visit), max_depth_(max_depth) {}

  bool run() {
    skip_space();
    if (!value()) return false;
    skip_space();
    return pos_ == text_.size();
  }

 private:
  void skip_space() {
    while (pos_ < text_.size() && (text_[pos_] == ' ' || text_[pos_] == '\t' || text_[pos_] == '\n' || text_[pos_] == '\r'))
      ++pos_;
  }
  bool at(char c) const { return pos_ < text_.size() && text_[pos_] == c; }

  // Reads a string at pos_ (on its opening quote); sets its span and unescaped value.
  bool string(JsonScalar& out) {
    ++pos_;
    out.begin = pos_;
    out.value.clear();
    while (pos_ < text_.size()) {
      char c = text_[pos_];
      if (c == '"') {
        out.end = pos_++;
        out.is_string = true;
        return true;
      }
      if (c == '\\') {
        if (pos_ + 1 >= text_.size()) return false;
        char e = text_[pos_ + 1];
        switch (e) {
          case '"': case '\\': case '/': out.value.push_back(e); break;
          case 'b': out.value.push_back('\b'); break;
          case 'f': out.value.push_back('\f'); break;
          case 'n': out.value.push_back('\n'); break;
          case 'r': out.value.push_back('\r'); break;
          case 't': out.value.push_back('\t'); break;
          case 'u': out.value.append(text_.substr(pos_, 2)); break;  // kept as written
          default: return false;
        }
        pos_ += 2;
        continue;
      }
      out.value.push_back(c);
      ++pos_;
    }
    return false;
  }

  bool value() {
    if (path_.size() > max_depth_) return false;
    skip_space();
    if (pos_ >= text_.size()) return false;
    char c = text_[pos_];
    if (c == '{') {
      ++pos_;
      skip_space();
      if (at('}')) return ++pos_, true;
      for (;;) {
        skip_space();
        if (!at('"')) return false;
        JsonScalar key;
        if (!string(key)) return false;
        skip_space();
        if (!at(':')) return false;
        ++pos_;
        path_.push_back(json::PathStep::of_key(key.value));
        if (!value()) return false;
        path_.pop_back();
        skip_space();
        if (at(',')) { ++pos_; continue; }
        if (at('}')) return ++pos_, true;
        return false;
      }
    }
    if (c == '[') {
      ++pos_;
      skip_space();
      if (at(']')) return ++pos_, true;
      for (std::size_t i = 0;; ++i) {
        path_.push_back(json::PathStep::of_index(i));
        if (!value()) return false;
        path_.pop_back();
        skip_space();
        if (at(',')) { ++pos_; continue; }
        if (at(']')) return ++pos_, true;
        return false;
      }
    }
    if (c == '"') {
      JsonScalar s;
      if (!string(s)) return false;
      visit_(path_, s);
      return true;
    }
    if (c == '-' || (c >= '0' && c <= '9')) {
      JsonScalar n;
      n.begin = pos_;
      while (pos_ < text_.size() && std::string_view("+-.eE0123456789").find(text_[pos_]) != std::string_view::npos) ++pos_;
      n.end = pos_;
      n.value = std::string(text_.substr(n.begin, n.end - n.begin));
      if (!is_json_number(n.value)) return false;
      visit_(path_, n);
      return true;
    }
    for (std::string_view word : {"true", "false", "null"})
      if (text_.substr(pos_, word.size()) == word) return pos_ += word.size(), true;
    return false;
  }

  std::string_view text_;
  const std::function<void(const json::ConcretePath&, const JsonScalar&)>& visit_;
  std::size_t max_depth_;
  std::size_t pos_ = 0;
  json::ConcretePath path_;
};

}  // namespace

bool scan_json_scalars(std::string_view text,
                       const std::function<void(const json::ConcretePath&, const JsonScalar&)>& visit,
                       std::size_t max_depth) {
  return Scanner(text, visit, max_depth).run();
}

std::string json_escape(std::string_view value) {
  std::string literal = json::quoted(value);  // the SDK's escaping, quotes stripped
  return literal.substr(1, literal.size() - 2);
}

bool is_json_number(std::string_view t) {
  std::size_t i = 0;
  auto digits = [&] {
    std::size_t start = i;
    while (i < t.size() && t[i] >= '0' && t[i] <= '9') ++i;
    return i > start;
  };
  if (i < t.size() && t[i] == '-') ++i;
  if (i < t.size() && t[i] == '0') ++i;
  else if (!digits()) return false;
  if (i < t.size() && t[i] == '.') {
    ++i;
    if (!digits()) return false;
  }
  if (i < t.size() && (t[i] == 'e' || t[i] == 'E')) {
    ++i;
    if (i < t.size() && (t[i] == '+' || t[i] == '-')) ++i;
    if (!digits()) return false;
  }
  return i == t.size() && !t.empty();
}

}  // namespace doppel::plugins
