#include "ignored_edits.hpp"

#include <algorithm>
#include <bit>
#include <cstdint>
#include <cstring>
#include <optional>
#include <vector>

namespace doppel::json {
namespace {

constexpr std::size_t kNone = std::string_view::npos;
// Beyond this many changed values, parsing and walking is no slower than this shortcut.
constexpr int kMaxEdits = 64;

// Length of the common prefix of `a` and `b`, at most `n`; eight bytes per step.
std::size_t common_prefix(const char* a, const char* b, std::size_t n) {
  std::size_t i = 0;
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

// Does one of the eight bytes of `w` end a run of string content: '"' or '\\'?
bool has_quote_or_backslash(std::uint64_t w) {
  constexpr std::uint64_t ones = 0x0101010101010101ULL, highs = 0x8080808080808080ULL;
  auto has_zero = [](std::uint64_t v) { return ((v - ones) & ~v & highs) != 0; };
  return has_zero(w ^ (ones * '"')) || has_zero(w ^ (ones * '\\'));
}

bool is_digit(char c) { return c >= '0' && c <= '9'; }

// Reads a valid JSON text forward and knows, at each byte, the path of the value it is in.
// Only what the shortcut needs: no validation (simdjson did it), and keys with escapes are
// not turned into paths.
class JsonCursor {
 public:
  explicit JsonCursor(std::string_view text) : text_(text) {}

  // Where the scalar value that byte `at` belongs to starts: `at` lies inside it, just past
  // a number or literal, or is its first byte. nullopt when `at` is in a key, between tokens,
  // in the middle of an escape or of a UTF-8 character: no scalar there can be swapped.
  std::optional<std::size_t> scalar_start(std::size_t at) {
    read_until(at, false);
    switch (state_) {
      case State::string:
        if (in_key_ || after_backslash_ || hex_left_ > 0 || (static_cast<unsigned char>(text_[at]) & 0xC0) == 0x80)
          return std::nullopt;
        return start_;
      case State::scalar: return start_;
      case State::between: break;
    }
    if (at >= text_.size()) return std::nullopt;
    char c = text_[at];
    if (c == '"') return key_expected() ? std::nullopt : std::optional<std::size_t>(at);
    if (c == '-' || is_digit(c) || c == 't' || c == 'f' || c == 'n') return at;
    return std::nullopt;
  }

  // Reads on to the end of the scalar that scalar_start found; returns where it ends.
  std::size_t finish_scalar() {
    if (state_ == State::between) read_until(pos_ + 1, false);  // its first byte
    read_until(text_.size(), true);
    if (state_ == State::scalar) state_ = State::between;  // a number or literal ending the text
    return pos_;
  }

  // The path of the value being read; nullopt when a key on the way has escapes.
  std::optional<json::ConcretePath> path() const {
    json::ConcretePath out;
    out.reserve(frames_.size());
    for (const auto& f : frames_) {
      if (!f.object) {
        out.push_back(json::PathStep::of_index(f.index));
      } else {
        if (f.key_escaped) return std::nullopt;
        out.push_back(json::PathStep::of_key(f.key));
      }
    }
    return out;
  }

 private:
  enum class State : std::uint8_t { between, string, scalar };
  struct Frame {
    bool object = false;
    std::string_view key;  // object: the last key read, as written (between the quotes)
    bool key_escaped = false;
    std::size_t index = 0;  // array: the element being read
  };

  bool key_expected() const { return !frames_.empty() && frames_.back().object && expect_key_; }

  // Reads the bytes before `end`; with `scalar_only`, stops as soon as a scalar is over.
  void read_until(std::size_t end, bool scalar_only) {
    while (pos_ < end) {
      char c = text_[pos_];
      switch (state_) {
        case State::string:
          if (after_backslash_) {
            after_backslash_ = false;
            if (c == 'u') hex_left_ = 4;
          } else if (hex_left_ > 0) {
            --hex_left_;
          } else if (c == '\\') {
            after_backslash_ = true;
            escaped_ = true;
          } else if (c == '"') {
            end_string();
            ++pos_;
            if (scalar_only) return;
            continue;
          } else {
            skip_plain_string_bytes(end);
            continue;
          }
          break;
        case State::scalar:
          if (c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == ',' || c == '}' || c == ']') {
            state_ = State::between;
            if (scalar_only) return;
            continue;  // the delimiter is read as such
          }
          break;
        case State::between: read_between(c); break;
      }
      ++pos_;
    }
  }

  // Inside a string, past bytes that neither end it nor escape: eight at a time.
  void skip_plain_string_bytes(std::size_t end) {
    ++pos_;
    while (pos_ + 8 <= end) {
      std::uint64_t w = 0;
      std::memcpy(&w, text_.data() + pos_, 8);
      if (has_quote_or_backslash(w)) break;
      pos_ += 8;
    }
    while (pos_ < end && text_[pos_] != '"' && text_[pos_] != '\\') ++pos_;
  }

  void read_between(char c) {
    switch (c) {
      case ' ':
      case '\t':
      case '\n':
      case '\r':
      case ':': return;
      case '{':
        frames_.push_back({true, {}, false, 0});
        expect_key_ = true;
        return;
      case '[': frames_.push_back({false, {}, false, 0}); return;
      case '}':
      case ']': frames_.pop_back(); return;
      case ',':
        if (frames_.back().object) expect_key_ = true;
        else ++frames_.back().index;
        return;
      case '"':
        in_key_ = key_expected();
        escaped_ = false;
        start_ = pos_;
        state_ = State::string;
        return;
      default:
        start_ = pos_;
        state_ = State::scalar;
        return;
    }
  }

  void end_string() {
    state_ = State::between;
    if (!in_key_) return;
    Frame& f = frames_.back();
    f.key = text_.substr(start_ + 1, pos_ - start_ - 1);
    f.key_escaped = escaped_;
    expect_key_ = false;
    in_key_ = false;
  }

  std::string_view text_;
  std::size_t pos_ = 0;  // bytes before it are read
  State state_ = State::between;
  std::size_t start_ = 0;  // of the string or scalar being read
  bool in_key_ = false, escaped_ = false, after_backslash_ = false;
  int hex_left_ = 0;  // of a \uXXXX escape
  bool expect_key_ = false;
  std::vector<Frame> frames_;
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

}  // namespace

bool differs_only_at_ignored_scalars(std::string_view original, std::string_view replay,
                                     const json::JsonPathSet& ignore) {
  JsonCursor cursor(original);
  std::size_t i = 0, j = 0;  // in original and replay; the bytes before them match, edits aside
  for (int edits = 0;; ++edits) {
    std::size_t same = common_prefix(original.data() + i, replay.data() + j,
                                     std::min(original.size() - i, replay.size() - j));
    i += same;
    j += same;
    if (i == original.size() && j == replay.size()) return true;
    if (edits == kMaxEdits) return false;
    auto start = cursor.scalar_start(i);
    if (!start) return false;
    std::size_t replay_start = j - (i - *start);
    std::size_t replay_end = accepted_scalar_end(replay, replay_start, j);
    if (replay_end == kNone) return false;
    auto path = cursor.path();
    if (!path || !ignore.covers(*path)) return false;
    i = cursor.finish_scalar();
    j = replay_end;
  }
}

}  // namespace doppel::json
