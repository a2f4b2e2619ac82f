#include "doppel/json_diff.hpp"

#include <algorithm>
#include <bit>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <iterator>
#include <limits>
#include <optional>
#include <span>
#include <stdexcept>
#include <string>
#include <unordered_map>
#include <utility>

#include "doppel/json_text.hpp"
#include "doppel/options.hpp"
#include "ignored_edits.hpp"
#include "json_tape.hpp"

namespace doppel::json {
namespace {

using simdjson::dom::element;

// No tape index, no count.
constexpr std::size_t kNone = std::numeric_limits<std::size_t>::max();
// Candidates tried per element when pairing unordered arrays.
constexpr std::size_t kMaxCandidates = 64;
// Differing positions of two ordered arrays after which the walk asks whether the arrays are a
// permutation of each other before it reports any of their differences. Fewer are cheaper to
// check once all are found (cannot_be_permutation), which needs the whole array walked.
constexpr std::size_t kOrderCheckAfter = 4;
// Bodies up to this size leave their buffers to the thread's next comparison; larger ones give
// them back. A document's buffers take about ten times its text (a tape word per structural,
// the strings, the parser's index), twice per comparison: 1 MiB keeps a judging thread at ~25 MB.
constexpr std::size_t kKeptCapacity = std::size_t{1} << 20;
// Likewise the list differences are collected in (max_differences can be set high).
constexpr std::size_t kKeptDifferences = 1024;

// A 64-bit hash of bytes, eight at a time (wyhash's multiply-fold). Only its agreement with
// equality matters: equal texts hash alike, unequal ones rarely do. std::hash (murmur, byte
// by byte at the ends, out of line) took a twentieth of a comparison of reordered arrays;
// this one is inlined into the hashing of every key and string.
std::uint64_t fold(std::uint64_t a, std::uint64_t b) {
  unsigned __int128 m = static_cast<unsigned __int128>(a) * b;
  return static_cast<std::uint64_t>(m) ^ static_cast<std::uint64_t>(m >> 64);
}
[[gnu::always_inline]] inline std::uint64_t hash_text(std::string_view s) {
  constexpr std::uint64_t k0 = 0xa0761d6478bd642fULL, k1 = 0xe7037ed1a0b428dbULL;
  const char* p = s.data();
  std::size_t n = s.size();
  std::uint64_t h = k0 ^ n;
  for (; n > 8; p += 8, n -= 8) {
    std::uint64_t w = 0;
    std::memcpy(&w, p, 8);
    h = fold(h ^ w, k1);
  }
  // The last 1 to 8 bytes, read as two overlapping halves (no byte loop, no read past the end).
  std::uint64_t w = 0;
  if (n >= 4) {
    std::uint32_t lo = 0, hi = 0;
    std::memcpy(&lo, p, 4);
    std::memcpy(&hi, p + n - 4, 4);
    w = (static_cast<std::uint64_t>(hi) << 32) | lo;
  } else if (n > 0) {
    auto byte = [&](std::size_t i) { return static_cast<std::uint64_t>(static_cast<unsigned char>(p[i])); };
    w = (byte(0) << 16) | (byte(n / 2) << 8) | byte(n - 1);
  }
  return fold(h ^ w, k1 ^ n);
}

// String equality without a call to memcmp for the short keys and values JSON is mostly made of.
bool equal_text(std::string_view x, std::string_view y) {
  std::size_t n = x.size();
  if (n != y.size()) return false;
  const char *p = x.data(), *q = y.data();
  auto same_at = [&]<class Word>(Word, std::size_t at) {
    Word u{}, v{};
    std::memcpy(&u, p + at, sizeof u);
    std::memcpy(&v, q + at, sizeof v);
    return u == v;
  };
  if (n >= 16) return std::memcmp(p, q, n) == 0;
  if (n >= 8) return same_at(std::uint64_t{}, 0) && same_at(std::uint64_t{}, n - 8);
  if (n >= 4) return same_at(std::uint32_t{}, 0) && same_at(std::uint32_t{}, n - 4);
  for (std::size_t i = 0; i < n; ++i)
    if (p[i] != q[i]) return false;
  return true;
}

// A member of an object on a tape: its key and the index of its value.
struct Member {
  std::string_view key;
  std::size_t value;
};

// Elements of an array; the tape's count saturates at 2^24 - 1, beyond which they are counted.
std::size_t length(const JsonTape& t, std::size_t array) {
  std::size_t n = t.count(array);
  if (n < 0xFFFFFF) return n;
  n = 0;
  for (std::size_t e = JsonTape::first(array), end = t.end(array); e != end; e = t.next(e)) ++n;
  return n;
}

// Members in document order, keeping the last occurrence of a duplicated key.
std::vector<Member> last_members(const JsonTape& t, std::size_t object) {
  std::vector<Member> all;
  for (std::size_t k = JsonTape::first(object), end = t.end(object); k != end; k = t.next(k + 1))
    all.push_back({t.string(k), k + 1});
  if (all.size() <= 1) return all;
  std::vector<Member> out;
  out.reserve(all.size());
  if (all.size() <= 16) {
    for (std::size_t i = 0; i < all.size(); ++i) {
      bool shadowed = false;
      for (std::size_t j = i + 1; j < all.size() && !shadowed; ++j) shadowed = all[j].key == all[i].key;
      if (!shadowed) out.push_back(all[i]);
    }
    return out;
  }
  std::unordered_map<std::string_view, std::size_t> last;
  last.reserve(all.size());
  for (std::size_t i = 0; i < all.size(); ++i) last[all[i].key] = i;
  if (last.size() == all.size()) return all;
  for (std::size_t i = 0; i < all.size(); ++i)
    if (last[all[i].key] == i) out.push_back(all[i]);
  return out;
}

// A small object's members with their keys hashed, when no key repeats (the rule): then its
// hash needs neither last_members() nor a second look at the keys.
struct HashedMember {
  std::uint64_t key_hash;
  std::size_t key;  // tape index of the key; the value follows it
};
constexpr std::size_t kMaxHashedMembers = 16;

// Fills `out` and returns the member count; kNone when a key repeats or there are more than
// kMaxHashedMembers members (a large object is taken to have repeats).
std::size_t unique_hashed_members(const JsonTape& t, std::size_t object, HashedMember (&out)[kMaxHashedMembers]) {
  if (t.count(object) > kMaxHashedMembers) return kNone;
  std::size_t n = 0;
  for (std::size_t k = JsonTape::first(object), end = t.end(object); k != end; k = t.next(k + 1)) {
    std::string_view key = t.string(k);
    std::uint64_t h = hash_text(key);
    for (std::size_t j = 0; j < n; ++j)
      if (out[j].key_hash == h && t.string(out[j].key) == key) return kNone;
    out[n++] = {h, k};
  }
  return n;
}

bool occurs_once(const JsonTape& t, std::size_t object, std::string_view key) {
  std::size_t n = 0;
  for (std::size_t k = JsonTape::first(object), end = t.end(object); k != end; k = t.next(k + 1))
    n += t.string(k) == key ? 1 : 0;
  return n == 1;
}

// Finds a key among members: linear for small objects, hashed for large ones.
class MemberIndex {
 public:
  explicit MemberIndex(const std::vector<Member>& members) : members_(members) {
    if (members.size() > 16) {
      map_.reserve(members.size());
      for (const auto& m : members) map_.emplace(m.key, &m);
    }
  }
  const Member* find(std::string_view key) const {
    if (members_.size() <= 16) {
      for (const auto& m : members_)
        if (m.key == key) return &m;
      return nullptr;
    }
    auto it = map_.find(key);
    return it == map_.end() ? nullptr : it->second;
  }

 private:
  const std::vector<Member>& members_;
  std::unordered_map<std::string_view, const Member*> map_;
};

std::uint64_t mix(std::uint64_t h, std::uint64_t v) {
  h ^= v + 0x9e3779b97f4a7c15ULL + (h << 6) + (h >> 2);
  return h;
}

// Whether a set of path patterns can still match here or below; once it cannot, a whole
// subtree is walked without asking the patterns again.
struct Scope {
  bool ignore = false;
  bool unordered = false;
};

// Where the walk is, as views into the documents: pushing a member costs no allocation. The
// SDK's matchers and formatter take json::PathSteps, built on demand and kept for the steps that
// did not change since; a thread keeps one WalkPath from one comparison to the next, so that
// those steps reuse their strings.
class WalkPath {
 public:
  using Step = TextStep;

  void clear() {
    steps_.clear();
    synced_ = text_steps_ = 0;
  }
  void push_key(std::string_view key) { steps_.push_back({key, 0, true}); }
  void push_index(std::size_t index) { steps_.push_back({{}, index, false}); }
  void pop() {
    steps_.pop_back();
    synced_ = std::min(synced_, steps_.size());
    text_steps_ = std::min(text_steps_, steps_.size());
  }

  std::span<const json::PathStep> concrete() {
    for (std::size_t i = synced_; i < steps_.size(); ++i) {
      if (i == concrete_.size()) concrete_.emplace_back();
      assign(concrete_[i], steps_[i]);
    }
    synced_ = steps_.size();
    return {concrete_.data(), synced_};
  }

  // json::format_path of the path, built step by step with the SDK's own append_step: the
  // differences of one element share its prefix, formatted once.
  std::string text() {
    if (steps_.empty()) return "$";
    std::size_t kept = std::min(text_steps_, steps_.size());
    text_ends_.resize(kept);
    text_.resize(kept ? text_ends_.back() : 0);
    for (std::size_t i = kept; i < steps_.size(); ++i) {
      assign(step_, steps_[i]);
      json::append_step(text_, step_, i == 0);
      text_ends_.push_back(text_.size());
    }
    text_steps_ = steps_.size();
    return text_;
  }

 private:
  // Reuses the step's string: json::PathStep::of_key would allocate one per long key.
  static void assign(json::PathStep& out, const Step& s) {
    out.type = s.is_key ? json::PathStep::Type::key : json::PathStep::Type::index;
    if (s.is_key) out.key.assign(s.key);
    else out.key.clear();
    out.index = s.is_key ? 0 : s.index;
  }

  std::vector<Step> steps_;
  std::vector<json::PathStep> concrete_;  // the first synced_ match steps_; the rest are spares
  std::size_t synced_ = 0;
  json::PathStep step_;  // text()'s scratch
  std::string text_;
  std::vector<std::size_t> text_ends_;  // where each step's text ends in text_
  std::size_t text_steps_ = 0;          // leading steps of steps_ that text_ still holds
};

// Walks two documents side by side and reports each difference. A dry run walks the same way
// and counts the differences it would report without building them: the walker uses it to
// test two values for equivalence where a path pattern reaches them (a dry run with room for
// no difference at all). Values are tape indexes: `a` in the original, `b` in the replay.
class DiffWalker {
 public:
  // `path` is cleared and then kept; `out` receives the differences.
  DiffWalker(const JsonDiffConfig& config, const JsonTape& original, const JsonTape& replay, WalkPath& path,
             std::vector<Difference>& out, std::size_t limit)
      : config_(config),
        ta_(original),
        tb_(replay),
        out_(out),
        limit_(limit),
        path_(path),
        scope_{!config.ignore.empty(), !config.unordered.empty()} {
    path_.clear();
  }

  bool truncated() const { return truncated_; }

  // diff(a, b) where `b` is `a` with the children that `regions` name (members or elements)
  // replaced by the elements of `values`, an array of the replay, in the same order; `a` is
  // where descend() went. False when that cannot be told from those children alone: a key that
  // is repeated, an unordered array, or a list that may have been reordered.
  bool diff_regions(std::size_t a, std::span<const EditScan::Region> regions, std::size_t values) {
    if (tb_.type(values) != '[' || length(tb_, values) != regions.size()) return false;
    if (ignored_here()) return true;
    std::vector<Position> children;  // for a member, its index is that of its region
    std::size_t value = JsonTape::first(values), i = 0;
    bool object = ta_.type(a) == '{';
    if (!object && (ta_.type(a) != '[' || unordered_here())) return false;
    for (const EditScan::Region& r : regions) {
      std::size_t child = object ? unique_member(a, r.step.key) : element(a, r.step.index);
      if (child == kNone) return false;
      children.push_back({child, value, object ? i++ : r.step.index});
      value = tb_.next(value);
    }
    if (!object) return diff_ordered_at(children);
    // Objects are walked member by member in document order, as the regions are.
    Scope scope = child_scope();
    bool keep = keeps_path(scope);
    for (const Position& at : children) {
      {
        Into into(*this, regions[at.i].step.key, scope, keep);
        diff(at.ia, at.ib);
      }
      if (truncated_) break;
    }
    return true;
  }

  // Goes down from the root of the original along `steps`, as diff() would go down to the value
  // there if nothing on the way differed: returns that value, or kNone where diff() would not
  // go down alike (an ignored value or an unordered array on the way, a key missing or
  // repeated, an index out of range). Then diff() compares the value with one of the replay.
  std::size_t descend(std::span<const TextStep> steps) {
    std::size_t v = JsonTape::kRoot;
    for (const TextStep& step : steps) {
      if (ignored_here()) return kNone;
      std::size_t child = kNone;
      if (step.is_key) {
        if (ta_.type(v) == '{') child = unique_member(v, step.key);
      } else {
        if (ta_.type(v) == '[' && !unordered_here()) child = element(v, step.index);
      }
      if (child == kNone) return kNone;
      Scope scope = child_scope();
      if (step.is_key) path_.push_key(step.key);
      else path_.push_index(step.index);
      scope_ = scope;
      v = child;
    }
    return v;
  }

  void diff(std::size_t a, std::size_t b) {
    if (truncated_) return;
    if (ignored_here()) return;
    char ka = ta_.kind(a), kb = tb_.kind(b);
    if (ka != kb && !(JsonTape::is_number(ka) && JsonTape::is_number(kb))) {
      add_values("type", a, b);
      return;
    }
    switch (ka) {
      case '{': diff_objects(a, b); return;
      case '[':
        if (unordered_here()) diff_unordered(a, b);
        else diff_ordered(a, b);
        return;
      case '"':
        if (!equal_text(ta_.string(a), tb_.string(b))) add_values("changed", a, b);
        return;
      case 't':
        if (ta_.type(a) != tb_.type(b)) add_values("changed", a, b);
        return;
      case 'n': return;
      default:
        if (!numbers_equal(a, b)) add_values("changed", a, b);
        return;
    }
  }

 private:
  // The value of the member `key` of `object` when the key occurs once there; else kNone.
  std::size_t unique_member(std::size_t object, std::string_view key) const {
    std::size_t found = kNone;
    for (std::size_t k = JsonTape::first(object), end = ta_.end(object); k != end; k = ta_.next(k + 1)) {
      if (!equal_text(ta_.string(k), key)) continue;
      if (found != kNone) return kNone;
      found = k + 1;
    }
    return found;
  }
  // Element `index` of `array`, or kNone.
  std::size_t element(std::size_t array, std::size_t index) const {
    std::size_t e = JsonTape::first(array), end = ta_.end(array);
    for (std::size_t i = 0; i < index && e != end; ++i) e = ta_.next(e);
    return e == end ? kNone : e;
  }

  // Enters a dry run for as long as it lives, then puts the walk back as it was.
  class DryRun {
   public:
    // limit: differences the dry run has room for.
    DryRun(DiffWalker& w, std::size_t limit, std::size_t count)
        : w_(w), dry_(w.dry_), count_(w.dry_count_), limit_(w.limit_), truncated_(w.truncated_) {
      w.dry_ = true;
      w.dry_count_ = count;
      w.limit_ = limit;
      w.truncated_ = false;
    }
    ~DryRun() {
      w_.dry_ = dry_;
      w_.dry_count_ = count_;
      w_.limit_ = limit_;
      w_.truncated_ = truncated_;
    }
    DryRun(const DryRun&) = delete;
    DryRun& operator=(const DryRun&) = delete;

   private:
    DiffWalker& w_;
    bool dry_;
    std::size_t count_, limit_;
    bool truncated_;
  };

  // Steps into a member or an element, whose scope is `scope`, for as long as it lives. Only
  // reported differences and path patterns read the path: a dry run or a hash out of every
  // pattern's reach does not keep it.
  class Into {
   public:
    Into(DiffWalker& w, std::string_view key, Scope scope, bool keep) : w_(w), saved_(w.scope_), keep_(keep) {
      w.scope_ = scope;
      if (keep) w.path_.push_key(key);
    }
    Into(DiffWalker& w, std::size_t index, Scope scope, bool keep) : w_(w), saved_(w.scope_), keep_(keep) {
      w.scope_ = scope;
      if (keep) w.path_.push_index(index);
    }
    ~Into() {
      w_.scope_ = saved_;
      if (keep_) w_.path_.pop();
    }
    Into(const Into&) = delete;
    Into& operator=(const Into&) = delete;

   private:
    DiffWalker& w_;
    Scope saved_;
    bool keep_;
  };
  // Whenever a scope matters, so did every enclosing one: the path kept is then complete.
  bool keeps_path(Scope s) const { return !dry_ || matters(s); }
  static bool matters(Scope s) { return s.ignore || s.unordered; }

  std::size_t count() const { return dry_ ? dry_count_ : out_.size(); }
  void rewind(std::size_t n) {
    if (dry_) dry_count_ = n;
    else out_.resize(n);
  }
  bool full() const { return count() >= limit_; }

  // `original` and `replay` make the shown values; they are called only when a difference is kept.
  template <class Original, class Replay>
  void add(std::string_view kind, Original&& original, Replay&& replay) {
    if (full()) {
      truncated_ = true;
      return;
    }
    if (dry_) {
      ++dry_count_;
      return;
    }
    out_.push_back(Difference{path_.text(), std::string(kind), original(), replay()});
  }
  void add_values(std::string_view kind, std::size_t a, std::size_t b) {
    add(kind, [&] { return show(ta_, a); }, [&] { return show(tb_, b); });
  }
  std::string show(const JsonTape& t, std::size_t v) const { return display(t, v, config_.max_value_bytes); }
  static std::string none() { return {}; }

  bool ignored_here() { return scope_.ignore && config_.ignore.matches(path_.concrete()); }
  bool unordered_here() { return scope_.unordered && config_.unordered.matches(path_.concrete()); }
  // The scope of the children of the value at the current path.
  Scope child_scope() {
    Scope s = scope_;
    if (s.ignore) s.ignore = config_.ignore.may_match_below(path_.concrete());
    if (s.unordered) s.unordered = config_.unordered.may_match_below(path_.concrete());
    return s;
  }

  // Before diff() on a child, this saves the walk's bookkeeping on an equal scalar or on a
  // container written alike. A container's own diff compares its children with same(): one
  // that differs would be walked twice, where identical() stops at its first difference.
  bool is_scalar(std::size_t a) const { return is_scalar_in(ta_, a); }
  bool skippable(std::size_t a, std::size_t b) const {
    return is_scalar(a) ? same(a, b) : ta_.identical(a, tb_, b);
  }

  bool numbers_equal(std::size_t a, std::size_t b) const {
    char ta = ta_.type(a), tb = tb_.type(b);
    if (config_.tolerance <= 0) {
      if (ta == 'l' && tb == 'l') return ta_.int64(a) == tb_.int64(b);
      if (ta == 'u' && tb == 'u') return ta_.uint64(a) == tb_.uint64(b);
      // int64 and uint64 overlap only on non-negative values, which simdjson types INT64.
      if (ta != 'd' && tb != 'd') return false;
    }
    double x = ta_.as_double(a), y = tb_.as_double(b);
    if (x == y) return true;
    // A hair of relative slack so that 1.01 - 1 (0.010000000000000009) is within 0.01.
    return std::fabs(x - y) <= config_.tolerance + 1e-12 * std::max(std::fabs(x), std::fabs(y));
  }

  // No difference between `a` and `b` where no path pattern reaches (the scope does not
  // matter): what diff() would find nothing in, without tracking anything, stopping at the
  // first difference.
  bool same(std::size_t a, std::size_t b) const {
    char ka = ta_.kind(a), kb = tb_.kind(b);
    if (ka != kb) return JsonTape::is_number(ka) && JsonTape::is_number(kb) && numbers_equal(a, b);
    switch (ka) {
      case '{': return same_objects(a, b);
      case '[': {
        if (ta_.count(a) != tb_.count(b)) return false;  // saturated counts are equal, and checked below
        std::size_t ea = ta_.end(a), eb = tb_.end(b);
        std::size_t ia = JsonTape::first(a), ib = JsonTape::first(b);
        for (; ia != ea && ib != eb; ia = ta_.next(ia), ib = tb_.next(ib))
          if (!same(ia, ib)) return false;
        return ia == ea && ib == eb;
      }
      case '"': return equal_text(ta_.string(a), tb_.string(b));
      case 't': return ta_.type(a) == tb_.type(b);
      case 'n': return true;
      default: return (ta_.type(a) == tb_.type(b) && ta_.payload_word(a) == tb_.payload_word(b)) || numbers_equal(a, b);
    }
  }

  // same(), first trying whether containers were written alike (common in the bodies compared,
  // and cheaper to tell than walking them).
  bool equal(std::size_t a, std::size_t b) const {
    return (!is_scalar(a) && ta_.identical(a, tb_, b)) || same(a, b);
  }

  // Keys first, so that objects listing their keys in another order are walked once, not
  // once per way of looking at them.
  bool same_objects(std::size_t a, std::size_t b) const {
    if (ta_.count(a) != tb_.count(b)) return same_last_members(a, b);  // or duplicate keys
    std::size_t ea = ta_.end(a), eb = tb_.end(b);
    std::size_t ka = JsonTape::first(a), kb = JsonTape::first(b);
    for (; ka != ea && kb != eb; ka = ta_.next(ka + 1), kb = tb_.next(kb + 1))
      if (!equal_text(ta_.string(ka), tb_.string(kb))) return same_last_members(a, b);
    if (ka != ea || kb != eb) return same_last_members(a, b);
    for (ka = JsonTape::first(a), kb = JsonTape::first(b); ka != ea; ka = ta_.next(ka + 1), kb = tb_.next(kb + 1)) {
      if (same(ka + 1, kb + 1)) continue;
      // A difference, unless a repeated key shadows one of the two values.
      std::string_view key = ta_.string(ka);
      return occurs_once(ta_, a, key) && occurs_once(tb_, b, key) ? false : same_last_members(a, b);
    }
    return true;
  }
  bool same_last_members(std::size_t a, std::size_t b) const {
    auto ma = last_members(ta_, a), mb = last_members(tb_, b);
    if (ma.size() != mb.size()) return false;
    MemberIndex ib(mb);
    for (const auto& m : ma) {
      const Member* other = ib.find(m.key);
      if (!other || !same(m.value, other->value)) return false;
    }
    return true;
  }

  // Fast path for the common case: both objects list the same keys in the same order and
  // no key repeats. Returns false (having compared nothing) when that does not hold.
  bool diff_aligned_objects(std::size_t a, std::size_t b, Scope scope) {
    std::size_t n = ta_.count(a);
    if (n != tb_.count(b) || n > 32) return false;
    std::string_view keys[32];
    std::size_t i = 0;
    std::size_t ea = ta_.end(a), eb = tb_.end(b);
    for (std::size_t ka = JsonTape::first(a), kb = JsonTape::first(b); ka != ea;
         ka = ta_.next(ka + 1), kb = tb_.next(kb + 1), ++i) {
      std::string_view key = ta_.string(ka);
      if (kb == eb || !equal_text(key, tb_.string(kb))) return false;
      for (std::size_t j = 0; j < i; ++j)
        if (keys[j].size() == key.size() && keys[j] == key) return false;
      keys[i] = key;
    }
    bool keep = keeps_path(scope);
    for (std::size_t ka = JsonTape::first(a), kb = JsonTape::first(b); ka != ea;
         ka = ta_.next(ka + 1), kb = tb_.next(kb + 1)) {
      if (!matters(scope) && skippable(ka + 1, kb + 1)) continue;
      {
        Into into(*this, ta_.string(ka), scope, keep);
        diff(ka + 1, kb + 1);
      }
      if (truncated_) break;
    }
    return true;
  }

  void diff_objects(std::size_t a, std::size_t b) {
    Scope scope = child_scope();
    if (diff_aligned_objects(a, b, scope)) return;
    auto ma = last_members(ta_, a);
    auto mb = last_members(tb_, b);
    MemberIndex ia(ma), ib(mb);
    bool keep = keeps_path(scope);
    for (const auto& m : ma) {
      {
        Into into(*this, m.key, scope, keep);
        if (const Member* other = ib.find(m.key)) {
          if (matters(scope) || !skippable(m.value, other->value)) diff(m.value, other->value);
        } else if (!ignored_here()) {
          add("missing", [&] { return show(ta_, m.value); }, none);
        }
      }
      if (truncated_) return;
    }
    for (const auto& m : mb) {
      if (ia.find(m.key)) continue;
      {
        Into into(*this, m.key, scope, keep);
        if (!ignored_here()) add("extra", none, [&] { return show(tb_, m.value); });
      }
      if (truncated_) return;
    }
  }

  static std::vector<std::size_t> elements(const JsonTape& t, std::size_t array) {
    std::vector<std::size_t> out;
    for (std::size_t e = JsonTape::first(array), end = t.end(array); e != end; e = t.next(e)) out.push_back(e);
    return out;
  }

  // Where a side-by-side walk of two arrays is: the elements' tape indexes and their position.
  struct Position {
    std::size_t ia, ib, i;
  };

  void diff_ordered(std::size_t a, std::size_t b) {
    std::size_t na = length(ta_, a), nb = length(tb_, b);
    if (na != nb) {
      add("length", [&] { return std::to_string(na); }, [&] { return std::to_string(nb); });
      diff_positions(a, b, first_position(a, b), nullptr);
      return;
    }
    // When the arrays hold the same elements in another order, one "order" entry says it
    // better than N "changed" ones; a permutation moves at least two elements. A dry run finds
    // the differing positions, up to kOrderCheckAfter of them: either they are all there is,
    // or enough to ask whether the arrays are a permutation before any difference is built.
    // Then the differences are reported: at those positions, then past them.
    // Inside a dry run the first pass counts what the report would, and is not repeated: each
    // level of nested arrays is walked once per dry run, not twice per level below it.
    std::vector<Position> differing;
    std::size_t before = count();
    Position resume;
    bool cut = false;
    {
      std::optional<DryRun> dry;
      if (!dry_) dry.emplace(*this, limit_, count());
      resume = diff_positions(a, b, first_position(a, b), &differing, kOrderCheckAfter);
      cut = truncated_;
    }
    if (may_be_permutation(differing, !cut && at_end(a, b, resume)) && is_permutation(a, b)) {
      rewind(before);
      truncated_ = false;
      add_values("order", a, b);
      return;
    }
    if (!dry_) report_positions(differing);
    if (!truncated_ && !at_end(a, b, resume)) diff_positions(a, b, resume, nullptr);
  }

  // diff_ordered of two arrays of the same length that differ at most at the positions
  // `candidates` (in increasing order), where they hold the given elements: false when that
  // cannot be told from those elements alone (the arrays may be a permutation).
  bool diff_ordered_at(std::span<const Position> candidates) {
    std::vector<Position> differing;
    bool cut = false;
    {
      DryRun dry(*this, limit_, count());  // called where the walk starts, never inside a dry run
      Scope scope = child_scope();
      bool keep = keeps_path(scope);
      for (const Position& at : candidates)
        if (diff_position(at, scope, keep)) {
          differing.push_back(at);
          if (truncated_ || differing.size() == kOrderCheckAfter) break;
        }
      cut = truncated_;
    }
    if (may_be_permutation(differing, !cut && differing.size() < kOrderCheckAfter)) return false;
    report_positions(differing);
    return true;
  }

  // Whether arrays that a dry run found `differing` at (up to kOrderCheckAfter positions;
  // `all_found` when it saw every position) must be asked is_permutation.
  bool may_be_permutation(std::span<const Position> differing, bool all_found) {
    return differing.size() > 1 && !(all_found && cannot_be_permutation(differing));
  }

  // Whether match_multiset pairs every element of one array with one of the other.
  bool is_permutation(std::size_t a, std::size_t b) {
    auto [left_a, left_b] = match_multiset(elements(ta_, a), elements(tb_, b), true);
    return left_a.empty() && left_b.empty();
  }

  // A quick proof that match_multiset would leave an element unpaired, where no pattern
  // reaches the elements: equal elements pair up, so the elements at the differing positions
  // must hash alike as multisets. The hash takes every number alike, to agree with equality
  // even where numbers are equal within its relative slack only.
  bool cannot_be_permutation(std::span<const Position> differing) {
    if (matters(child_scope())) return false;
    std::vector<std::uint64_t> ha, hb;
    ha.reserve(differing.size());
    hb.reserve(differing.size());
    for (const Position& at : differing) {
      ha.push_back(hash_clean(ta_, at.ia, true));
      hb.push_back(hash_clean(tb_, at.ib, true));
    }
    std::sort(ha.begin(), ha.end());
    std::sort(hb.begin(), hb.end());
    return ha != hb;
  }

  static Position first_position(std::size_t a, std::size_t b) { return {JsonTape::first(a), JsonTape::first(b), 0}; }
  bool at_end(std::size_t a, std::size_t b, Position p) const { return p.ia == ta_.end(a) || p.ib == tb_.end(b); }
  Position next_position(Position p) const { return {ta_.next(p.ia), tb_.next(p.ib), p.i + 1}; }

  // Compares the elements at one position of two arrays whose elements' scope is `scope`;
  // whether they differ (or the walk was cut short there).
  bool diff_position(Position at, Scope scope, bool keep) {
    if (!matters(scope) && equal(at.ia, at.ib)) return false;
    std::size_t before = count();
    {
      Into into(*this, at.i, scope, keep);
      diff(at.ia, at.ib);
    }
    return count() != before || truncated_;
  }

  // Compares elements position by position from `at` on, and records the positions that differ
  // in `differing` when given. Stops at the end of the shorter array, when the walk is cut
  // short, or once `stop_after` positions differed; returns the position after the last compared.
  Position diff_positions(std::size_t a, std::size_t b, Position at, std::vector<Position>* differing,
                          std::size_t stop_after = std::numeric_limits<std::size_t>::max()) {
    Scope scope = child_scope();
    bool keep = keeps_path(scope);
    std::size_t found = 0;
    for (; !at_end(a, b, at); at = next_position(at)) {
      if (!diff_position(at, scope, keep)) continue;
      if (differing) differing->push_back(at);
      if (truncated_ || ++found == stop_after) return next_position(at);
    }
    return at;
  }

  // Reports the differences at `positions`, which a dry run found.
  void report_positions(std::span<const Position> positions) {
    Scope scope = child_scope();
    bool keep = keeps_path(scope);
    for (const Position& at : positions) {
      {
        Into into(*this, at.i, scope, keep);
        diff(at.ia, at.ib);
      }
      if (truncated_) return;
    }
  }

  void diff_unordered(std::size_t a, std::size_t b) {
    auto ea = elements(ta_, a), eb = elements(tb_, b);
    auto [left_a, left_b] = match_multiset(ea, eb);
    Scope scope = child_scope();
    bool keep = keeps_path(scope);
    for (std::size_t i : left_a) {
      Into into(*this, i, scope, keep);
      if (!ignored_here()) add("missing", [&] { return show(ta_, ea[i]); }, none);
    }
    for (std::size_t j : left_b) {
      Into into(*this, j, scope, keep);
      if (!ignored_here()) add("extra", none, [&] { return show(tb_, eb[j]); });
    }
  }

  // Pairs equal elements of `ea` and `eb` (under ignore and tolerance); returns the indexes
  // left without a partner on each side. Elements are bucketed by a hash that agrees with
  // equality, so each one is compared with a few candidates, not with all. With
  // `first_unpaired_only`, stops at the first element of `ea` left without a partner (enough
  // to know the arrays are no permutation of each other).
  std::pair<std::vector<std::size_t>, std::vector<std::size_t>> match_multiset(const std::vector<std::size_t>& ea,
                                                                               const std::vector<std::size_t>& eb,
                                                                               bool first_unpaired_only = false) {
    Scope scope = child_scope();
    // Buckets as runs of (hash, index) sorted by both: candidates in index order, one allocation.
    std::vector<std::pair<std::uint64_t, std::size_t>> buckets(eb.size());
    for (std::size_t j = 0; j < eb.size(); ++j) {
      Into into(*this, j, scope, matters(scope));
      buckets[j] = {hash(tb_, eb[j]), j};
    }
    std::sort(buckets.begin(), buckets.end());
    // Partnered candidates leave their bucket: next[p] leads to the first position >= p still
    // free (path-halving), so runs of equal elements pair in O(1) each.
    std::vector<std::size_t> next(buckets.size() + 1);
    for (std::size_t p = 0; p < next.size(); ++p) next[p] = p;
    auto free_from = [&](std::size_t p) {
      while (next[p] != p) p = next[p] = next[next[p]];
      return p;
    };
    bool keep = keeps_path(scope);
    std::vector<bool> used(eb.size(), false);
    std::vector<std::size_t> left_a, left_b;
    for (std::size_t i = 0; i < ea.size(); ++i) {
      Into into(*this, i, scope, keep);
      bool paired = false;
      std::uint64_t h = hash(ta_, ea[i]);
      auto first = std::lower_bound(buckets.begin(), buckets.end(), std::make_pair(h, std::size_t{0}));
      // Bounded, so that a bucket of look-alikes (numbers under a tolerance) stays linear.
      std::size_t p = free_from(static_cast<std::size_t>(first - buckets.begin()));
      for (std::size_t tries = 0; p < buckets.size() && buckets[p].first == h && tries < kMaxCandidates; ++tries) {
        std::size_t j = buckets[p].second;
        if (equivalent(ea[i], eb[j])) {
          used[j] = true;
          paired = true;
          next[p] = p + 1;
          break;
        }
        p = free_from(p + 1);
      }
      if (!paired) {
        left_a.push_back(i);
        if (first_unpaired_only) return {std::move(left_a), {}};
      }
    }
    for (std::size_t j = 0; j < eb.size(); ++j)
      if (!used[j]) left_b.push_back(j);
    return {std::move(left_a), std::move(left_b)};
  }

  // No difference at all between `a` and `b` at the current path: a dry run with room for
  // none stops at the first one.
  bool equivalent(std::size_t a, std::size_t b) {
    if (!matters(scope_)) return equal(a, b);
    DryRun dry(*this, 0, 0);
    diff(a, b);
    return !truncated_;
  }

  // A hash equal for equivalent values: ignored subtrees are skipped, duplicate keys count
  // once (last wins), object members are combined order-independently, and with a tolerance
  // every number hashes alike (equality then decides).
  std::uint64_t hash(const JsonTape& t, std::size_t v) {
    if (!matters(scope_)) return hash_clean(t, v);
    if (ignored_here()) return 0x1234;
    switch (t.kind(v)) {
      case '{': {
        Scope scope = child_scope();
        std::uint64_t h = 0x0b7ec7;
        auto add_member = [&](std::string_view key, std::uint64_t key_hash, std::size_t value) {
          Into into(*this, key, scope, matters(scope));
          h += mix(key_hash, hash(t, value));  // order-independent
        };
        HashedMember members[kMaxHashedMembers];
        std::size_t n = unique_hashed_members(t, v, members);
        if (n != kNone) {
          for (std::size_t i = 0; i < n; ++i)
            add_member(t.string(members[i].key), members[i].key_hash, members[i].key + 1);
        } else {
          for (const auto& m : last_members(t, v)) add_member(m.key, hash_text(m.key), m.value);
        }
        return h;
      }
      case '[': {
        bool unordered = unordered_here();
        Scope scope = child_scope();
        bool keep = matters(scope);
        std::uint64_t h = 0xa7747;
        std::size_t i = 0;
        for (std::size_t e = JsonTape::first(v), end = t.end(v); e != end; e = t.next(e)) {
          Into into(*this, i++, scope, keep);
          if (unordered) h += mix(0x5eed, hash(t, e));
          else h = mix(h, hash(t, e));
        }
        return mix(h, i);
      }
      default: return hash_scalar(t, v, false);
    }
  }

  // hash() where the scope does not matter: nothing is ignored and no array is unordered below.
  // With `numbers_alike`, every number hashes the same (as under a tolerance).
  std::uint64_t hash_clean(const JsonTape& t, std::size_t v, bool numbers_alike = false) const {
    switch (t.kind(v)) {
      case '{': {
        std::uint64_t h = 0x0b7ec7;
        HashedMember members[kMaxHashedMembers];
        std::size_t n = unique_hashed_members(t, v, members);
        if (n != kNone) {
          for (std::size_t i = 0; i < n; ++i)
            h += mix(members[i].key_hash, hash_clean_child(t, members[i].key + 1, numbers_alike));
        } else {
          for (const auto& m : last_members(t, v))
            h += mix(hash_text(m.key), hash_clean_child(t, m.value, numbers_alike));
        }
        return h;
      }
      case '[': {
        std::uint64_t h = 0xa7747;
        std::size_t i = 0;
        for (std::size_t e = JsonTape::first(v), end = t.end(v); e != end; e = t.next(e), ++i)
          h = mix(h, hash_clean_child(t, e, numbers_alike));
        return mix(h, i);
      }
      default: return hash_scalar(t, v, numbers_alike);
    }
  }
  // A member's or element's hash_clean: scalars, most of them, without a call.
  std::uint64_t hash_clean_child(const JsonTape& t, std::size_t v, bool numbers_alike) const {
    return is_scalar_in(t, v) ? hash_scalar(t, v, numbers_alike) : hash_clean(t, v, numbers_alike);
  }
  static bool is_scalar_in(const JsonTape& t, std::size_t v) {
    char type = t.type(v);
    return type != '{' && type != '[';
  }

  [[gnu::always_inline]] std::uint64_t hash_scalar(const JsonTape& t, std::size_t v, bool numbers_alike) const {
    switch (t.kind(v)) {
      case '"': return mix(0x57, hash_text(t.string(v)));
      case 't': return t.type(v) == 't' ? 0x7 : 0x8;
      case 'n': return 0x9;
      default: {
        if (config_.tolerance > 0 || numbers_alike) return 0x4e;
        double d = t.as_double(v);
        if (d == 0) d = 0;  // -0.0 and 0.0
        return mix(0x4e, fold(std::bit_cast<std::uint64_t>(d), 0x9e3779b97f4a7c15ULL));
      }
    }
  }

  const JsonDiffConfig& config_;
  const JsonTape& ta_;
  const JsonTape& tb_;
  std::vector<Difference>& out_;
  std::size_t limit_;
  WalkPath& path_;
  Scope scope_;  // of the value at path_
  bool truncated_ = false;
  bool dry_ = false;
  std::size_t dry_count_ = 0;  // differences a dry run would have reported, as out_.size() would be
};

std::string invalid_side(std::string_view text, const std::string& error, std::size_t max_bytes) {
  return "(invalid JSON: " + error + ") " + json::truncate_for_display(text, max_bytes);
}

// Both sides as "invalid_json", with the SDK's wording of each parse error.
std::vector<Difference> invalid_json(std::string_view original, std::string_view replay, const JsonDiffConfig& config) {
  auto a = json::JsonDocument::parse(original);
  auto b = json::JsonDocument::parse(replay);
  // Only after this thread's parser failed: the SDK's, with the same depth limit, fails alike.
  if (a.ok() && b.ok()) throw std::runtime_error("cannot allocate a JSON parser");
  Difference d{"$", "invalid_json", "", ""};
  d.original = a.ok() ? json::truncate_for_display(original, config.max_value_bytes)
                      : invalid_side(original, a.error(), config.max_value_bytes);
  d.replay = b.ok() ? json::truncate_for_display(replay, config.max_value_bytes)
                    : invalid_side(replay, b.error(), config.max_value_bytes);
  return {std::move(d)};
}

// One parser and two documents per thread, reused from one comparison to the next, with the
// walk's path and a list the differences are collected in (copied out at their exact size).
struct ThreadDocuments {
  simdjson::dom::parser parser;
  simdjson::dom::document original, replay;
  bool allocated = false;
  WalkPath path;
  std::vector<Difference> found;
  std::string regions;  // regions_array()'s text

  // The same limits as json::JsonDocument, so that the same texts parse.
  bool ready() {
    if (!allocated) allocated = parser.allocate(0, json::JsonDocument::kDefaultMaxDepth) == simdjson::SUCCESS;
    return allocated;
  }
  void release() {
    parser = simdjson::dom::parser();
    original = simdjson::dom::document();
    replay = simdjson::dom::document();
    allocated = false;
    found = std::vector<Difference>();
    regions = std::string();
  }
};

ThreadDocuments& thread_documents() {
  thread_local ThreadDocuments documents;
  return documents;
}

// Gives a thread's buffers back after a comparison of large documents.
class BufferLimit {
 public:
  explicit BufferLimit(ThreadDocuments& documents) : documents_(documents) {}
  ~BufferLimit() {
    if (documents_.parser.capacity() > kKeptCapacity || documents_.found.capacity() > kKeptDifferences)
      documents_.release();
  }
  BufferLimit(const BufferLimit&) = delete;
  BufferLimit& operator=(const BufferLimit&) = delete;

 private:
  ThreadDocuments& documents_;
};

// A bound on how deep `text` nests: the brackets it opens.
std::size_t nesting_bound(std::string_view text) {
  auto opened = std::count(text.begin(), text.end(), '{') + std::count(text.begin(), text.end(), '[');
  return static_cast<std::size_t>(opened);
}

// The replay's texts of the regions of a confined scan as the elements of one JSON array,
// "[r1,r2,...]", into `out`: parsed once, it gives the values the regions hold in the replay.
// False when one of them could nest deeper, below the container, than the whole text may.
bool regions_array(std::string_view replay, const EditScan& scan, std::string& out) {
  std::size_t max_depth = json::JsonDocument::kDefaultMaxDepth;
  std::size_t room = max_depth - std::min(scan.path.size() + 1, max_depth);  // the array stands for the container
  out.assign(1, '[');
  for (const EditScan::Region& r : scan.regions) {
    std::string_view text = replay.substr(r.replay_begin, r.replay_end - r.replay_begin);
    if (text.size() / 2 >= room && nesting_bound(text) >= room) return false;
    if (out.size() > 1) out.push_back(',');
    out.append(text);
  }
  out.push_back(']');
  return true;
}

// The differences between docs.original and docs.replay. With `confined`, docs.replay holds the
// array regions_array() made of its regions: nullopt when they cannot tell the differences.
std::optional<std::vector<Difference>> walk(ThreadDocuments& docs, const JsonDiffConfig& config,
                                            const EditScan* confined) {
  std::vector<Difference>& found = docs.found;
  found.clear();
  JsonTape a(docs.original), b(docs.replay);
  DiffWalker walker(config, a, b, docs.path, found, std::max<std::size_t>(config.max_differences, 1));
  if (!confined) {
    walker.diff(JsonTape::kRoot, JsonTape::kRoot);
  } else {
    std::size_t container = walker.descend(confined->path);
    if (container == kNone || !walker.diff_regions(container, confined->regions, JsonTape::kRoot))
      return std::nullopt;
  }
  if (walker.truncated())
    found.push_back(Difference{"$", "truncated", "",
                               "more than " + std::to_string(found.size()) + " differences; the rest are not shown"});
  std::vector<Difference> out(std::make_move_iterator(found.begin()), std::make_move_iterator(found.end()));
  found.clear();
  return out;
}

std::vector<Difference> diff_texts(std::string_view original, std::string_view replay, const JsonDiffConfig& config,
                                   bool shortcut) {
  if (original == replay) return {};
  ThreadDocuments& docs = thread_documents();
  BufferLimit limit(docs);
  element root_a, root_b;
  if (!docs.ready() || docs.parser.parse_into_document(docs.original, original.data(), original.size()).get(root_a))
    return invalid_json(original, replay, config);
  if (shortcut) {
    // Responses often differ only in a trace id or a timestamp that is ignored: then the
    // replay needs no parsing and there is nothing to walk. Or they differ in an element or
    // two of a long list: then those elements are all of the replay to parse and walk. Regions
    // that do not parse are left to the full parse, which tells what is wrong with the replay.
    EditScan scan = scan_edits(original, structural_tokens(docs.parser), replay, config.ignore);
    if (scan.outcome == EditScan::Outcome::ignored_only) return {};
    if (scan.outcome == EditScan::Outcome::confined && regions_array(replay, scan, docs.regions) &&
        !docs.parser.parse_into_document(docs.replay, docs.regions.data(), docs.regions.size()).get(root_b))
      if (auto out = walk(docs, config, &scan)) return std::move(*out);
  }
  if (docs.parser.parse_into_document(docs.replay, replay.data(), replay.size()).get(root_b))
    return invalid_json(original, replay, config);
  return std::move(*walk(docs, config, nullptr));
}

}  // namespace

std::vector<Difference> json_diff(std::string_view original, std::string_view replay, const JsonDiffConfig& config) {
  return diff_texts(original, replay, config, true);
}

std::vector<Difference> json_diff_walk(std::string_view original, std::string_view replay,
                                       const JsonDiffConfig& config) {
  return diff_texts(original, replay, config, false);
}

namespace {
JsonPathSet parse_paths(const Options& options, std::string_view name) {
  try {
    return JsonPathSet::parse(options.strings(name));
  } catch (const JsonPathError& e) {
    options.fail(name, e.what());
  }
}
}  // namespace

JsonDiffConfig json_diff_config(const Options& options) {
  JsonDiffConfig config;
  config.ignore = parse_paths(options, "ignore");
  config.unordered = parse_paths(options, "unordered");
  config.tolerance = options.number("tolerance");
  if (config.tolerance < 0) options.fail("tolerance", "tolerance must be >= 0");
  auto max_differences = options.integer("max_differences");
  if (max_differences < 1) options.fail("max_differences", "max_differences must be >= 1");
  config.max_differences = static_cast<std::size_t>(max_differences);
  auto max_value = options.integer("max_value_length");
  if (max_value < 16) options.fail("max_value_length", "max_value_length must be >= 16");
  config.max_value_bytes = static_cast<std::size_t>(max_value);
  return config;
}

}  // namespace doppel::json
