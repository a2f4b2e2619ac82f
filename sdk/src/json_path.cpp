#include "doppel/json_path.hpp"

#include "doppel/hex.hpp"
#include "doppel/json_text.hpp"

#include <algorithm>
#include <charconv>
#include <unordered_map>

namespace doppel::json {
namespace {

using Segment = JsonPath::Segment;

[[noreturn]] void fail_at(std::size_t pos, const std::string& what) {
  throw JsonPathError(pos, what + " at " + std::to_string(pos));
}

bool bare_key_char(char c) {
  auto u = static_cast<unsigned char>(c);
  return u > 0x20 && c != '.' && c != '[' && c != ']' && c != '"' && c != '\'' && u != 0x7f;
}


class PathParser {
 public:
  explicit PathParser(std::string_view text) : t_(text) {}

  std::vector<Segment> parse() {
    if (t_.empty()) fail_at(0, "empty path (use \"$\" for the whole document)");
    std::vector<Segment> out;
    bool need_key = true;  // the next segment may be a bare key without a leading '.'
    if (t_[0] == '$' && (t_.size() == 1 || t_[1] == '.' || t_[1] == '[')) {
      pos_ = 1;
      need_key = false;
    } else if (t_[0] == '.') {
      need_key = false;  // jq style ".a.b"
    }
    if (need_key && t_[0] != '[') append(out, bare_key());
    while (pos_ < t_.size()) {
      char c = t_[pos_];
      if (c == '.') {
        ++pos_;
        if (pos_ >= t_.size()) fail_at(pos_, "expected a key after '.'");
        if (t_[pos_] == '[' || t_[pos_] == '.') fail_at(pos_, "expected a key after '.'");
        append(out, bare_key());
      } else if (c == '[') {
        out.push_back(bracket());
      } else {
        fail_at(pos_, std::string("expected '.' or '[' but found '") + c + "'");
      }
    }
    return out;
  }

 private:
  // `**.**` spans what `**` spans: one segment, so that a location is reached one way only.
  static void append(std::vector<Segment>& out, Segment seg) {
    if (seg.type == Segment::Type::any_depth && !out.empty() && out.back().type == Segment::Type::any_depth) return;
    out.push_back(std::move(seg));
  }

  Segment bare_key() {
    std::size_t start = pos_;
    while (pos_ < t_.size() && t_[pos_] != '.' && t_[pos_] != '[') {
      if (!bare_key_char(t_[pos_])) {
        fail_at(pos_, std::string("unexpected character '") + t_[pos_] +
                          "' in a key (quote keys like this: [\"a key\"])");
      }
      ++pos_;
    }
    std::string_view key = t_.substr(start, pos_ - start);
    if (key.empty()) fail_at(start, "empty key");
    if (key == "*") return Segment{Segment::Type::any_key, {}, 0};
    if (key == "**") return Segment{Segment::Type::any_depth, {}, 0};
    if (key.find('*') != std::string_view::npos) {
      fail_at(start + key.find('*'),
              "'*' and '**' match whole keys and cannot be part of one (quote the key to mean a literal '*')");
    }
    return Segment{Segment::Type::key, std::string(key), 0};
  }

  Segment bracket() {
    std::size_t open = pos_++;
    if (pos_ >= t_.size()) fail_at(open, "unterminated '['");
    Segment seg;
    char c = t_[pos_];
    if (c == '*') {
      ++pos_;
      seg.type = Segment::Type::any_index;
    } else if (c >= '0' && c <= '9') {
      std::size_t start = pos_;
      while (pos_ < t_.size() && t_[pos_] >= '0' && t_[pos_] <= '9') ++pos_;
      std::size_t value = 0;
      auto [ptr, ec] = std::from_chars(t_.data() + start, t_.data() + pos_, value);
      if (ec != std::errc() || ptr != t_.data() + pos_) fail_at(start, "array index out of range");
      seg.type = Segment::Type::index;
      seg.index = value;
    } else if (c == '"') {
      seg.type = Segment::Type::key;
      seg.key = double_quoted();
    } else if (c == '\'') {
      seg.type = Segment::Type::key;
      seg.key = single_quoted();
    } else if (c == '-') {
      fail_at(pos_, "negative array indexes are not supported");
    } else {
      fail_at(pos_, "expected an index, '*' or a quoted key after '['");
    }
    if (pos_ >= t_.size() || t_[pos_] != ']') fail_at(pos_, "expected ']'");
    ++pos_;
    return seg;
  }

  std::uint32_t hex4() {
    if (pos_ + 4 > t_.size()) fail_at(pos_, "incomplete \\u escape");
    std::uint32_t v = 0;
    for (int i = 0; i < 4; ++i) {
      int digit = hex_digit_value(t_[pos_++]);
      if (digit < 0) fail_at(pos_ - 1, "invalid hex digit in \\u escape");
      v = (v << 4) | static_cast<std::uint32_t>(digit);
    }
    return v;
  }

  std::string double_quoted() {
    std::size_t open = pos_++;
    std::string key;
    while (true) {
      if (pos_ >= t_.size()) fail_at(open, "unterminated quoted key");
      char c = t_[pos_++];
      if (c == '"') return key;
      if (c != '\\') {
        key.push_back(c);
        continue;
      }
      if (pos_ >= t_.size()) fail_at(open, "unterminated quoted key");
      char e = t_[pos_++];
      switch (e) {
        case '"': key.push_back('"'); break;
        case '\\': key.push_back('\\'); break;
        case '/': key.push_back('/'); break;
        case 'b': key.push_back('\b'); break;
        case 'f': key.push_back('\f'); break;
        case 'n': key.push_back('\n'); break;
        case 'r': key.push_back('\r'); break;
        case 't': key.push_back('\t'); break;
        case 'u': {
          std::uint32_t cp = hex4();
          if (cp >= 0xD800 && cp <= 0xDBFF && pos_ + 6 <= t_.size() && t_[pos_] == '\\' && t_[pos_ + 1] == 'u') {
            pos_ += 2;
            std::uint32_t low = hex4();
            if (low >= 0xDC00 && low <= 0xDFFF) cp = 0x10000 + ((cp - 0xD800) << 10) + (low - 0xDC00);
            else fail_at(pos_ - 6, "invalid surrogate pair");
          }
          append_utf8(key, cp);
          break;
        }
        default: fail_at(pos_ - 2, std::string("invalid escape '\\") + e + "'");
      }
    }
  }

  std::string single_quoted() {
    std::size_t open = pos_++;
    std::string key;
    while (true) {
      if (pos_ >= t_.size()) fail_at(open, "unterminated quoted key");
      char c = t_[pos_++];
      if (c == '\'') return key;
      if (c == '\\' && pos_ < t_.size() && (t_[pos_] == '\'' || t_[pos_] == '\\')) c = t_[pos_++];
      key.push_back(c);
    }
  }

  std::string_view t_;
  std::size_t pos_ = 0;
};

bool segment_matches(const Segment& seg, const PathStep& step) {
  switch (seg.type) {
    case Segment::Type::key: return step.type == PathStep::Type::key && step.key == seg.key;
    case Segment::Type::index: return step.type == PathStep::Type::index && step.index == seg.index;
    case Segment::Type::any_key: return step.type == PathStep::Type::key;
    case Segment::Type::any_index: return step.type == PathStep::Type::index;
    case Segment::Type::any_depth: return false;  // spans steps: glob_matches handles it
  }
  return false;
}

bool is_any_depth(const Segment& seg) { return seg.type == Segment::Type::any_depth; }

bool contains_any_depth(const std::vector<Segment>& segs) {
  return std::any_of(segs.begin(), segs.end(), is_any_depth);
}

// Does `concrete` match `segs`, where `**` spans any number of steps? With `open_end`, the
// pattern is read as followed by one more `**` (this path or anything below it). The classic
// wildcard match with one backtracking point: every other segment matches exactly one step,
// so retrying from the latest `**` only is enough. O(steps x segments) at worst, no allocation.
bool glob_matches(std::span<const Segment> segs, std::span<const PathStep> concrete, bool open_end) {
  const std::size_t m = segs.size() + (open_end ? 1 : 0);
  auto star_at = [&](std::size_t i) { return i == segs.size() || is_any_depth(segs[i]); };
  constexpr std::size_t none = static_cast<std::size_t>(-1);
  std::size_t p = 0, s = 0, star = none, resume = 0;
  while (s < concrete.size()) {
    if (p < m && star_at(p)) {
      star = p++;
      resume = s;
    } else if (p < m && segment_matches(segs[p], concrete[s])) {
      ++p;
      ++s;
    } else if (star != none) {
      p = star + 1;
      s = ++resume;
    } else {
      return false;
    }
  }
  while (p < m && star_at(p)) ++p;
  return p == m;
}

// Could some non-empty continuation of `concrete` match `segs` (with `**`)? True when
// `concrete` is matched by a proper prefix of the pattern (a segment is left to match the
// continuation), or by the whole pattern when it ends in `**` (which can go on spanning).
bool any_depth_may_match_below(std::span<const Segment> segs, std::span<const PathStep> concrete) {
  if (!segs.empty() && is_any_depth(segs.back()) && glob_matches(segs, concrete, false)) return true;
  for (std::size_t j = 0; j < segs.size(); ++j)
    if (glob_matches(segs.first(j), concrete, false)) return true;
  return false;
}

bool prefix_matches(const std::vector<Segment>& segs, std::span<const PathStep> concrete, std::size_t n) {
  for (std::size_t i = 0; i < n; ++i)
    if (!segment_matches(segs[i], concrete[i])) return false;
  return true;
}

bool key_needs_quotes(std::string_view key, bool first) {
  if (key.empty() || key == "*") return true;
  if (first && key[0] == '$') return true;
  return !std::all_of(key.begin(), key.end(), bare_key_char) || key.find('*') != std::string_view::npos;
}

void append_quoted_key(std::string& out, std::string_view key) {
  static const char* hex = "0123456789abcdef";
  out.append("[\"");
  for (char c : key) {
    auto u = static_cast<unsigned char>(c);
    if (c == '"' || c == '\\') {
      out.push_back('\\');
      out.push_back(c);
    } else if (u < 0x20) {
      out.append("\\u00");
      out.push_back(hex[u >> 4]);
      out.push_back(hex[u & 15]);
    } else {
      out.push_back(c);
    }
  }
  out.append("\"]");
}

// Members of `object` in document order, keeping only the last occurrence of each key.
template <class Fn>
void for_each_last_member(simdjson::dom::object object, Fn&& fn) {
  std::size_t n = object.size();
  if (n <= 16) {
    std::string_view keys[16];
    std::size_t i = 0;
    for (auto field : object)
      if (i < n) keys[i++] = field.key;
    i = 0;
    for (auto field : object) {
      bool shadowed = false;
      for (std::size_t j = i + 1; j < n && !shadowed; ++j) shadowed = keys[j] == field.key;
      if (!shadowed) fn(field.key, field.value);
      ++i;
    }
    return;
  }
  std::unordered_map<std::string_view, std::size_t> last;
  last.reserve(n);
  std::size_t i = 0;
  for (auto field : object) last[field.key] = i++;
  i = 0;
  for (auto field : object) {
    if (last[field.key] == i) fn(field.key, field.value);
    ++i;
  }
}

std::optional<simdjson::dom::element> last_member(simdjson::dom::object object, std::string_view key) {
  std::optional<simdjson::dom::element> found;
  for (auto field : object)
    if (field.key == key) found = field.value;
  return found;
}

template <class Fn>
void walk(const std::vector<Segment>& segs, std::size_t i, simdjson::dom::element node, ConcretePath* path, Fn& fn) {
  if (i == segs.size()) {
    fn(node);
    return;
  }
  const Segment& seg = segs[i];
  switch (seg.type) {
    case Segment::Type::key: {
      simdjson::dom::object object;
      if (node.get_object().get(object) != simdjson::SUCCESS) return;
      auto child = last_member(object, seg.key);
      if (!child) return;
      if (path) path->push_back(PathStep::of_key(seg.key));
      walk(segs, i + 1, *child, path, fn);
      if (path) path->pop_back();
      return;
    }
    case Segment::Type::index: {
      simdjson::dom::array array;
      if (node.get_array().get(array) != simdjson::SUCCESS) return;
      simdjson::dom::element child;
      if (array.at(seg.index).get(child) != simdjson::SUCCESS) return;
      if (path) path->push_back(PathStep::of_index(seg.index));
      walk(segs, i + 1, child, path, fn);
      if (path) path->pop_back();
      return;
    }
    case Segment::Type::any_key: {
      simdjson::dom::object object;
      if (node.get_object().get(object) != simdjson::SUCCESS) return;
      for_each_last_member(object, [&](std::string_view key, simdjson::dom::element child) {
        if (path) path->push_back(PathStep::of_key(key));
        walk(segs, i + 1, child, path, fn);
        if (path) path->pop_back();
      });
      return;
    }
    case Segment::Type::any_index: {
      simdjson::dom::array array;
      if (node.get_array().get(array) != simdjson::SUCCESS) return;
      std::size_t index = 0;
      for (auto child : array) {
        if (path) path->push_back(PathStep::of_index(index));
        walk(segs, i + 1, child, path, fn);
        if (path) path->pop_back();
        ++index;
      }
      return;
    }
    case Segment::Type::any_depth: return;  // patterns with `**` go through walk_any_depth
  }
}

// The walk for patterns with `**`: visits the document in order and asks the pattern at each
// location, so that a location two readings of the pattern reach is still returned once.
// Objects are read as everywhere else (the last member of a duplicated key). Recursion is
// bounded by the parser's depth limit.
template <class Fn>
void walk_any_depth(const JsonPath& pattern, simdjson::dom::element node, ConcretePath& path, Fn& fn) {
  if (pattern.matches(path)) fn(node);
  if (!pattern.may_match_below(path)) return;
  simdjson::dom::object object;
  simdjson::dom::array array;
  if (node.get_object().get(object) == simdjson::SUCCESS) {
    for_each_last_member(object, [&](std::string_view key, simdjson::dom::element child) {
      path.push_back(PathStep::of_key(key));
      walk_any_depth(pattern, child, path, fn);
      path.pop_back();
    });
  } else if (node.get_array().get(array) == simdjson::SUCCESS) {
    std::size_t index = 0;
    for (auto child : array) {
      path.push_back(PathStep::of_index(index++));
      walk_any_depth(pattern, child, path, fn);
      path.pop_back();
    }
  }
}

// Parsers are reused per thread: allocating simdjson's buffers dominates small documents.
constexpr std::size_t kPooledCapacity = std::size_t{4} << 20;
constexpr std::size_t kPoolSize = 8;
thread_local bool pool_destroyed = false;
struct ParserPool {
  std::vector<std::unique_ptr<simdjson::dom::parser>> parsers;
  ~ParserPool() { pool_destroyed = true; }
};
ParserPool& parser_pool() {
  thread_local ParserPool pool;
  return pool;
}

std::unique_ptr<simdjson::dom::parser> take_parser(std::size_t max_depth) {
  if (max_depth == JsonDocument::kDefaultMaxDepth && !pool_destroyed) {
    auto& pool = parser_pool().parsers;
    if (!pool.empty()) {
      auto p = std::move(pool.back());
      pool.pop_back();
      return p;
    }
  }
  auto p = std::make_unique<simdjson::dom::parser>();
  // Capacity grows on the first parse; only the depth is fixed here.
  if (p->allocate(0, max_depth) != simdjson::SUCCESS) return nullptr;
  return p;
}

void give_back(std::unique_ptr<simdjson::dom::parser> p) {
  if (!p || pool_destroyed || p->max_depth() != JsonDocument::kDefaultMaxDepth || p->capacity() > kPooledCapacity) return;
  auto& pool = parser_pool().parsers;
  if (pool.size() < kPoolSize) pool.push_back(std::move(p));
}

}  // namespace

void append_step(std::string& out, const PathStep& step, bool first) {
  if (step.type == PathStep::Type::index) {
    out.push_back('[');
    out.append(std::to_string(step.index));
    out.push_back(']');
  } else if (key_needs_quotes(step.key, first)) {
    append_quoted_key(out, step.key);
  } else {
    if (!first) out.push_back('.');
    out.append(step.key);
  }
}

std::string format_path(std::span<const PathStep> path) {
  if (path.empty()) return "$";
  std::string out;
  for (std::size_t i = 0; i < path.size(); ++i) append_step(out, path[i], i == 0);
  return out;
}

JsonPath JsonPath::parse(std::string_view text) {
  JsonPath p;
  p.text_ = std::string(text);
  p.segments_ = PathParser(text).parse();
  return p;
}

std::optional<JsonPath> JsonPath::try_parse(std::string_view text, std::string* error) {
  try {
    return parse(text);
  } catch (const JsonPathError& e) {
    if (error) *error = e.what();
    return std::nullopt;
  }
}

bool JsonPath::has_wildcard() const {
  return std::any_of(segments_.begin(), segments_.end(), [](const Segment& s) {
    return s.type == Segment::Type::any_key || s.type == Segment::Type::any_index ||
           s.type == Segment::Type::any_depth;
  });
}

bool JsonPath::has_any_depth() const { return contains_any_depth(segments_); }

bool JsonPath::is_single_key() const {
  return segments_.size() == 1 &&
         (segments_[0].type == Segment::Type::key || segments_[0].type == Segment::Type::any_key);
}

bool JsonPath::matches(std::span<const PathStep> concrete) const {
  if (contains_any_depth(segments_)) return glob_matches(segments_, concrete, false);
  return concrete.size() == segments_.size() && prefix_matches(segments_, concrete, segments_.size());
}

bool JsonPath::covers(std::span<const PathStep> concrete) const {
  if (contains_any_depth(segments_)) return glob_matches(segments_, concrete, true);
  return concrete.size() >= segments_.size() && prefix_matches(segments_, concrete, segments_.size());
}

bool JsonPath::may_match_below(std::span<const PathStep> concrete) const {
  if (contains_any_depth(segments_)) return any_depth_may_match_below(segments_, concrete);
  return segments_.size() > concrete.size() && prefix_matches(segments_, concrete, concrete.size());
}

std::optional<ConcretePath> parse_concrete_path(std::string_view text) {
  auto parsed = JsonPath::try_parse(text);
  if (!parsed || parsed->has_wildcard()) return std::nullopt;
  ConcretePath out;
  for (const auto& s : parsed->segments())
    out.push_back(s.type == Segment::Type::key ? PathStep::of_key(s.key) : PathStep::of_index(s.index));
  return out;
}

bool JsonPath::matches(std::string_view concrete_text) const {
  auto c = parse_concrete_path(concrete_text);
  return c && matches(*c);
}

bool JsonPath::covers(std::string_view concrete_text) const {
  auto c = parse_concrete_path(concrete_text);
  return c && covers(*c);
}

std::vector<simdjson::dom::element> JsonPath::find(simdjson::dom::element root) const {
  std::vector<simdjson::dom::element> out;
  auto fn = [&](simdjson::dom::element e) { out.push_back(e); };
  if (contains_any_depth(segments_)) {
    ConcretePath path;
    walk_any_depth(*this, root, path, fn);
  } else {
    walk(segments_, 0, root, nullptr, fn);
  }
  return out;
}

std::vector<JsonPath::Match> JsonPath::find_with_paths(simdjson::dom::element root) const {
  std::vector<Match> out;
  ConcretePath path;
  auto fn = [&](simdjson::dom::element e) { out.push_back(Match{path, e}); };
  if (contains_any_depth(segments_)) walk_any_depth(*this, root, path, fn);
  else walk(segments_, 0, root, &path, fn);
  return out;
}

std::optional<simdjson::dom::element> JsonPath::find_first(simdjson::dom::element root) const {
  if (!has_wildcard()) {
    std::optional<simdjson::dom::element> out;
    auto fn = [&](simdjson::dom::element e) { out = e; };
    walk(segments_, 0, root, nullptr, fn);
    return out;
  }
  auto all = find(root);
  if (all.empty()) return std::nullopt;
  return all.front();
}

JsonPathSet JsonPathSet::parse(const std::vector<std::string>& texts) {
  std::vector<JsonPath> paths;
  paths.reserve(texts.size());
  for (const auto& t : texts) {
    try {
      paths.push_back(JsonPath::parse(t));
    } catch (const JsonPathError& e) {
      throw JsonPathError(e.position(), "invalid path \"" + t + "\": " + e.what());
    }
  }
  return JsonPathSet(std::move(paths));
}

bool JsonPathSet::matches(std::span<const PathStep> concrete) const {
  return std::any_of(paths_.begin(), paths_.end(), [&](const JsonPath& p) { return p.matches(concrete); });
}

bool JsonPathSet::covers(std::span<const PathStep> concrete) const {
  return std::any_of(paths_.begin(), paths_.end(), [&](const JsonPath& p) { return p.covers(concrete); });
}

bool JsonPathSet::may_match_below(std::span<const PathStep> concrete) const {
  return std::any_of(paths_.begin(), paths_.end(), [&](const JsonPath& p) { return p.may_match_below(concrete); });
}

JsonDocument JsonDocument::parse(std::string_view text, std::size_t max_depth) {
  JsonDocument doc;
  doc.parser_ = take_parser(max_depth);
  if (!doc.parser_) {
    doc.error_ = "cannot allocate a JSON parser";
    return doc;
  }
  auto error = doc.parser_->parse(text.data(), text.size(), true).get(doc.root_);
  if (error == simdjson::SUCCESS) return doc;
  switch (error) {
    case simdjson::DEPTH_ERROR:
      doc.too_deep_ = true;
      doc.error_ = "nested deeper than " + std::to_string(max_depth) + " levels";
      break;
    case simdjson::EMPTY: doc.error_ = "empty body"; break;
    default: doc.error_ = simdjson::error_message(error); break;
  }
  return doc;
}

JsonDocument::JsonDocument(JsonDocument&& o) noexcept
    : parser_(std::move(o.parser_)), root_(o.root_), error_(std::move(o.error_)), too_deep_(o.too_deep_) {}

JsonDocument& JsonDocument::operator=(JsonDocument&& o) noexcept {
  if (this != &o) {
    give_back(std::move(parser_));
    parser_ = std::move(o.parser_);
    root_ = o.root_;
    error_ = std::move(o.error_);
    too_deep_ = o.too_deep_;
  }
  return *this;
}

JsonDocument::~JsonDocument() { give_back(std::move(parser_)); }

std::string_view type_name(simdjson::dom::element value) {
  switch (value.type()) {
    case simdjson::dom::element_type::ARRAY: return "array";
    case simdjson::dom::element_type::OBJECT: return "object";
    case simdjson::dom::element_type::INT64:
    case simdjson::dom::element_type::UINT64:
    case simdjson::dom::element_type::DOUBLE: return "number";
    case simdjson::dom::element_type::STRING: return "string";
    case simdjson::dom::element_type::BOOL: return "boolean";
    case simdjson::dom::element_type::NULL_VALUE: return "null";
  }
  return "unknown";
}

bool looks_like_json(std::string_view body) {
  for (char c : body) {
    if (c == ' ' || c == '\t' || c == '\r' || c == '\n') continue;
    return c == '{' || c == '[';
  }
  return false;
}

bool is_json_content_type(std::string_view content_type) {
  std::string media;
  for (char c : content_type.substr(0, content_type.find(';'))) {
    if (c == ' ' || c == '\t') continue;
    media.push_back(static_cast<char>(c >= 'A' && c <= 'Z' ? c - 'A' + 'a' : c));
  }
  return media == "application/json" || media == "text/json" || media == "application/x-json" ||
         (media.size() > 5 && media.compare(media.size() - 5, 5, "+json") == 0);
}

}  // namespace doppel::json
