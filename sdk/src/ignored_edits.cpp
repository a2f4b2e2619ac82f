#include "ignored_edits.hpp"

#include <algorithm>
#include <bit>
#include <cstdint>
#include <cstring>
#include <optional>
#include <span>
#include <vector>

namespace doppel::json {
namespace {

constexpr std::size_t kNone = std::string_view::npos;
// Beyond this many changed values, parsing and walking is no slower than this shortcut.
constexpr std::size_t kMaxEdits = 64;
// Regions holding the other differences are worth parsing alone when together they are at most
// this share of the original (1/4): reading their text costs about as much per byte as parsing,
// and what it saves is parsing and walking the rest.
constexpr std::size_t kConfinedShare = 4;
// And when they are this few: more differing elements of one list are compared whole anyway
// (the diff then asks whether the lists are a permutation of each other).
constexpr std::size_t kMaxRegions = 3;

// Length of the common prefix of `a` and `b`, at most `n`: long equal runs (most of two bodies
// that differ in a field or two) at memcmp's speed, then eight bytes per step.
std::size_t common_prefix(const char* a, const char* b, std::size_t n) {
  constexpr std::size_t kRun = 256;
  std::size_t i = 0;
  while (i + kRun <= n && std::memcmp(a + i, b + i, kRun) == 0) i += kRun;
  if constexpr (std::endian::native == std::endian::little) {
    for (; i + 8 <= n; i += 8) {
      std::uint64_t x = 0, y = 0;
      std::memcpy(&x, a + i, 8);
      std::memcpy(&y, b + i, 8);
      if (x != y) return i + static_cast<std::size_t>(std::countr_zero(x ^ y)) / 8;
    }
  }
  while (i < n && a[i] == b[i]) ++i;
  return i;
}

bool is_digit(char c) { return c >= '0' && c <= '9'; }

// Reads a valid JSON text forward, token by token, and knows at each byte the path of the value
// it is in. The tokens are simdjson's structural index of the text (the offset of each bracket,
// comma, colon, string and number or literal, which its first stage finds while parsing), so
// that string contents and whitespace are never read; reading keeps track of brackets and
// commas only, and finds a key when a path needs it. Keys with escapes are not turned into paths.
class JsonCursor {
 public:
  // A container open where the reading is.
  struct Frame {
    bool object = false;
    std::size_t start = 0;      // where its opening bracket is
    std::size_t index = 0;      // array: the element being read
    std::size_t separator = 0;  // the token of its opening bracket or of its last comma
  };

  // `frames` is kept by the caller from one cursor to the next, so that reading allocates nothing
  // (its size only grows, for deeper texts).
  JsonCursor(std::string_view text, std::span<const std::uint32_t> tokens, std::vector<Frame>& frames)
      : text_(text), tokens_(tokens), frames_(frames) {
    if (frames_.size() < 16) frames_.resize(16);
    frames_[0] = Frame{};  // stands for the text around the outermost container
  }

  // Where the scalar value that byte `at` belongs to starts: `at` lies inside it, just past
  // a number or literal, or is its first byte. nullopt when `at` is in a key, between tokens,
  // in the middle of an escape or of a UTF-8 character: no scalar there can be swapped.
  std::optional<std::size_t> scalar_start(std::size_t at) {
    read_until(at);
    if (next_ > finished_) {  // the token read last, when `at` lies inside it (and it is not done with)
      std::size_t last = next_ - 1, p = tokens_[last];
      char c = text_[p];
      if (c == '"' && at <= closing_quote(last)) {
        if (is_key(last) || inside_escape(p, at) || (static_cast<unsigned char>(text_[at]) & 0xC0) == 0x80)
          return std::nullopt;
        scalar_ = last;
        return p;
      }
      if (is_scalar_token(c) && at <= scalar_end(p)) {
        scalar_ = last;
        return p;
      }
    }
    if (next_ == tokens_.size() || tokens_[next_] != at) return std::nullopt;  // between tokens
    char c = text_[at];
    bool accepted = c == '"' ? !is_key(next_) : c == '-' || is_digit(c) || c == 't' || c == 'f' || c == 'n';
    if (!accepted) return std::nullopt;
    read_token();
    scalar_ = next_ - 1;
    return at;
  }

  // Where the scalar that scalar_start found ends (the reading goes on from there).
  std::size_t finish_scalar() {
    finished_ = next_;
    std::size_t p = tokens_[scalar_];
    return text_[p] == '"' ? closing_quote(scalar_) + 1 : scalar_end(p);
  }

  // The path of the value being read; nullopt when a key on the way has escapes.
  std::optional<json::ConcretePath> path() const {
    json::ConcretePath out;
    out.reserve(depth_);
    for (std::size_t d = 1; d <= depth_; ++d) {
      const Frame& f = frames_[d];
      if (!f.object) {
        out.push_back(json::PathStep::of_index(f.index));
      } else {
        std::string_view k = key(f);
        if (k.find('\\') != std::string_view::npos) return std::nullopt;
        out.push_back(json::PathStep::of_key(k));
      }
    }
    return out;
  }

  // Containers open where the reading is; the outermost is number 1.
  std::size_t depth() const { return depth_; }
  bool is_object(std::size_t number) const { return frames_[number].object; }
  // The step from container `number` to the value being read in it; false for a key with escapes.
  bool step_in(std::size_t number, TextStep& step) const {
    const Frame& f = frames_[number];
    if (!f.object) {
      step = {{}, f.index, false};
      return true;
    }
    step = {key(f), 0, true};
    return step.key.find('\\') == std::string_view::npos;
  }
  std::size_t container_start(std::size_t number) const { return frames_[number].start; }
  // The path of container `number`, as views into the text; false when a key on the way has escapes.
  bool container_path(std::size_t number, std::vector<TextStep>& out) const {
    out.clear();
    for (std::size_t k = 1; k < number; ++k)
      if (!step_in(k, out.emplace_back())) return false;
    return true;
  }

  // Reads the tokens before `end`.
  void read_until(std::size_t end) {
    while (next_ < tokens_.size() && tokens_[next_] < end) read_token();
  }

  // Reads on until container `number` closes, but not past `limit`: returns where it ends
  // (just past its closing bracket), or kNone.
  std::size_t read_to_close(std::size_t number, std::size_t limit) {
    while (depth_ >= number && next_ < tokens_.size() && tokens_[next_] < limit) read_token();
    return depth_ < number ? tokens_[next_ - 1] + 1 : kNone;
  }

 private:
  static bool is_scalar_token(char c) {
    return c != '{' && c != '[' && c != '}' && c != ']' && c != ',' && c != ':' && c != '"';
  }
  // Whether token `k`, a string, is a key: in an object, right after its bracket or a comma.
  bool is_key(std::size_t k) const {
    return depth_ > 0 && frames_[depth_].object && frames_[depth_].separator + 1 == k;
  }
  // The key of the member being read in object `f`, as written.
  std::string_view key(const Frame& f) const {
    std::size_t k = f.separator + 1, p = tokens_[k];
    return text_.substr(p + 1, closing_quote(k) - p - 1);
  }

  // Inlined into the loops that read token after token.
  [[gnu::always_inline]] void read_token() {
    std::size_t p = tokens_[next_];
    switch (text_[p]) {
      case '{':
      case '[': {
        if (depth_ + 1 == frames_.size()) frames_.resize(2 * frames_.size());
        Frame& f = frames_[++depth_];
        f.object = text_[p] == '{';
        f.start = p;
        f.index = 0;
        f.separator = next_;
        break;
      }
      case '}':
      case ']': --depth_; break;
      case ',': {
        Frame& f = frames_[depth_];
        f.separator = next_;
        ++f.index;
        break;
      }
      default: break;  // a key, a colon, a string, number or literal
    }
    ++next_;
  }


  // The closing quote of the string that token `k` opens: the last byte before the next token
  // that is no whitespace.
  std::size_t closing_quote(std::size_t k) const {
    std::size_t q = k + 1 < tokens_.size() ? tokens_[k + 1] : text_.size();
    do --q;
    while (text_[q] != '"');
    return q;
  }
  // Where the number or literal at `p` ends: at its delimiter, or the end of the text.
  std::size_t scalar_end(std::size_t p) const {
    while (p < text_.size() && !ends_scalar(text_[p])) ++p;
    return p;
  }
  static bool ends_scalar(char c) {
    return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == ',' || c == '}' || c == ']';
  }
  // Whether `at` is inside an escape (past its backslash) of the string opened at `p`.
  bool inside_escape(std::size_t p, std::size_t at) const {
    for (std::size_t i = p + 1;;) {
      std::size_t backslash = text_.substr(0, at).find('\\', i);
      if (backslash == std::string_view::npos) return false;
      std::size_t length = text_[backslash + 1] == 'u' ? 6 : 2;  // \uXXXX or \n, \", ...
      if (backslash + length > at) return true;
      i = backslash + length;
    }
  }

  std::string_view text_;
  std::span<const std::uint32_t> tokens_;
  std::size_t next_ = 0;    // the next token to read
  std::size_t scalar_ = 0;  // the token scalar_start found
  std::size_t finished_ = 0;  // tokens read when that scalar was done with: `at` past it is between tokens
  std::vector<Frame>& frames_;  // [1, depth_] are open; [0] stands for the text around them
  std::size_t depth_ = 0;
};

// `-?(0|[1-9][0-9]*)(.[0-9]+)?` with at most 18 digits on either side of the point: a number
// simdjson reads without overflow.
bool plain_number(std::string_view t) {
  std::size_t i = t.starts_with('-') ? 1 : 0;
  std::size_t int_start = i;
  while (i < t.size() && is_digit(t[i])) ++i;
  std::size_t int_digits = i - int_start;
  if (int_digits == 0 || int_digits > 18 || (int_digits > 1 && t[int_start] == '0')) return false;
  if (i == t.size()) return true;
  if (t[i] != '.') return false;
  std::size_t frac_start = ++i;
  while (i < t.size() && is_digit(t[i])) ++i;
  return i == t.size() && i > frac_start && i - frac_start <= 18;
}

// The end of the scalar of `text` at `start` when it is one the shortcut accepts: a string of
// printable ASCII without escapes, a plain number, true, false or null. Bytes before `from`
// are a copy of valid JSON (the start of the same string in the original). kNone otherwise.
std::size_t accepted_scalar_end(std::string_view text, std::size_t start, std::size_t from) {
  if (start >= text.size()) return kNone;
  if (text[start] == '"') {
    for (std::size_t p = std::max(from, start + 1); p < text.size(); ++p) {
      char ch = text[p];
      if (ch == '"') return p + 1;
      if (ch < 0x20 || ch > 0x7E || ch == '\\') return kNone;
    }
    return kNone;
  }
  std::size_t p = start;
  auto scalar_byte = [](char ch) {
    return is_digit(ch) || (ch >= 'a' && ch <= 'z') || ch == '-' || ch == '+' || ch == '.' || ch == 'E';
  };
  while (p < text.size() && scalar_byte(text[p])) ++p;
  std::string_view token = text.substr(start, p - start);
  if (token == "true" || token == "false" || token == "null" || plain_number(token)) return p;
  return kNone;
}

// Offsets where the original and the replay line up again: just past a scalar swapped or a
// region replaced; the bytes that follow match up to the next difference.
struct Aligned {
  std::size_t original, replay;
};

// The end (just past its closing bracket) of the object or array that opens at `begin` of a
// text not known to be valid, not reading past `limit`: kNone when none closes there.
std::size_t container_end(std::string_view text, std::size_t begin, std::size_t limit) {
  if (begin >= limit || (text[begin] != '{' && text[begin] != '[')) return kNone;
  std::size_t depth = 0;
  for (std::size_t p = begin; p < limit; ++p) {
    switch (text[p]) {
      case '"':
        for (++p; p < limit && text[p] != '"'; ++p)
          if (text[p] == '\\') ++p;
        if (p >= limit) return kNone;
        break;
      case '{':
      case '[': ++depth; break;
      case '}':
      case ']':
        if (--depth == 0) return p + 1;
        break;
      default: break;
    }
  }
  return kNone;
}

// Collects the regions of a scan: the children (objects or arrays) of one container of the
// original that the differences which are no ignored scalar lie in.
class RegionFinder {
 public:
  RegionFinder(std::string_view original, std::string_view replay, EditScan& out)
      : original_(original), replay_(replay), out_(out), budget_(original.size() / kConfinedShare) {}

  // The difference at `i` in the original (`j` in the replay; the cursor has read up to it) lies
  // in a child of the parent container: records that child as a region and moves `i` and `j`
  // past it. False when it does not, or when the regions grow too many or too large.
  bool add(JsonCursor& cursor, std::size_t& i, std::size_t& j, std::span<const Aligned> aligned) {
    if (out_.regions.size() == kMaxRegions) return false;
    cursor.read_until(i);
    std::size_t depth = cursor.depth();
    if (out_.regions.empty()) {
      // The first one decides the parent: the innermost array the difference is in an element
      // of (elements of a list are what usually change one by one), else the container around
      // the innermost one.
      parent_ = depth - std::min<std::size_t>(depth, 1);
      for (std::size_t k = depth - std::min<std::size_t>(depth, 1); k > 0; --k)
        if (!cursor.is_object(k)) {
          parent_ = k;
          break;
        }
      if (parent_ == 0 || !cursor.container_path(parent_, out_.path)) return false;
      parent_start_ = cursor.container_start(parent_);
    } else if (depth <= parent_ || cursor.container_start(parent_) != parent_start_) {
      return false;
    }
    std::size_t child = parent_ + 1;
    TextStep step{};
    if (!cursor.step_in(parent_, step)) return false;
    std::size_t begin = cursor.container_start(child);
    std::size_t end = cursor.read_to_close(child, begin + budget_);
    if (end == kNone) return false;
    // The replay's text of the child: it starts where the original's does, counted from the last
    // place the two line up, and ends where its brackets close.
    Aligned before{0, 0};
    for (const Aligned& a : aligned)
      if (a.original <= begin) before = a;
    std::size_t replay_begin = before.replay + (begin - before.original);
    std::size_t replay_end = container_end(replay_, replay_begin, std::min(replay_.size(), replay_begin + budget_));
    if (replay_end == kNone) return false;
    budget_ -= end - begin;
    out_.regions.push_back({step, begin, end, replay_begin, replay_end});
    i = end;
    j = replay_end;
    return true;
  }

 private:
  std::string_view original_, replay_;
  EditScan& out_;
  std::size_t budget_;     // bytes of the original the regions may still take
  std::size_t parent_ = 0;  // its container number (1: the outermost)
  std::size_t parent_start_ = 0;
};

}  // namespace

std::span<const std::uint32_t> structural_tokens(const simdjson::dom::parser& parser) {
  return {parser.implementation->structural_indexes.get(), parser.implementation->n_structural_indexes};
}

EditScan scan_edits(std::string_view original, std::span<const std::uint32_t> tokens, std::string_view replay,
                    const json::JsonPathSet& ignore) {
  EditScan out;
  thread_local std::vector<JsonCursor::Frame> frames;
  JsonCursor cursor(original, tokens, frames);
  RegionFinder regions(original, replay, out);
  Aligned aligned[kMaxEdits];
  std::size_t i = 0, j = 0;  // in original and replay; the bytes before them match, edits aside
  for (std::size_t n = 0;; ++n) {
    std::size_t same = common_prefix(original.data() + i, replay.data() + j,
                                     std::min(original.size() - i, replay.size() - j));
    i += same;
    j += same;
    if (i == original.size() && j == replay.size()) {
      out.outcome = out.regions.empty() ? EditScan::Outcome::ignored_only : EditScan::Outcome::confined;
      return out;
    }
    if (n == kMaxEdits) break;
    // A scalar swapped for an accepted one, at a path `ignore` covers, is skipped; any other
    // difference must lie in a region.
    bool skipped = false;
    if (auto start = ignore.empty() ? std::nullopt : cursor.scalar_start(i)) {
      std::size_t replay_start = j - (i - *start);
      std::size_t replay_end = accepted_scalar_end(replay, replay_start, j);
      if (replay_end != kNone) {
        auto path = cursor.path();
        if (path && ignore.covers(*path)) {
          i = cursor.finish_scalar();
          j = replay_end;
          skipped = true;
        }
      }
    }
    if (!skipped && !regions.add(cursor, i, j, std::span<const Aligned>(aligned, n))) break;
    aligned[n] = {i, j};
  }
  return EditScan{};
}

bool differs_only_at_ignored_scalars(std::string_view original, std::string_view replay,
                                     const json::JsonPathSet& ignore) {
  simdjson::dom::parser parser;
  simdjson::dom::element root;
  if (parser.parse(original.data(), original.size()).get(root) != simdjson::SUCCESS) return false;
  return scan_edits(original, structural_tokens(parser), replay, ignore).outcome == EditScan::Outcome::ignored_only;
}

}  // namespace doppel::json
