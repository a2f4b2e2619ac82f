#include "json_diff.hpp"

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <functional>
#include <string>
#include <unordered_map>
#include <utility>

#include "doppel/json_text.hpp"

namespace doppel::plugins {
namespace {

using simdjson::dom::element;
using simdjson::dom::element_type;
using Member = std::pair<std::string_view, element>;

// Candidates tried per element when pairing unordered arrays.
constexpr std::size_t kMaxCandidates = 64;

bool is_number(element_type t) {
  return t == element_type::INT64 || t == element_type::UINT64 || t == element_type::DOUBLE;
}

// Members in document order, keeping the last occurrence of a duplicated key.
std::vector<Member> last_members(simdjson::dom::object object) {
  std::vector<Member> all;
  for (auto field : object) all.emplace_back(field.key, field.value);
  if (all.size() <= 1) return all;
  std::vector<Member> out;
  out.reserve(all.size());
  if (all.size() <= 16) {
    for (std::size_t i = 0; i < all.size(); ++i) {
      bool shadowed = false;
      for (std::size_t j = i + 1; j < all.size() && !shadowed; ++j) shadowed = all[j].first == all[i].first;
      if (!shadowed) out.push_back(all[i]);
    }
    return out;
  }
  std::unordered_map<std::string_view, std::size_t> last;
  last.reserve(all.size());
  for (std::size_t i = 0; i < all.size(); ++i) last[all[i].first] = i;
  if (last.size() == all.size()) return all;
  for (std::size_t i = 0; i < all.size(); ++i)
    if (last[all[i].first] == i) out.push_back(all[i]);
  return out;
}

// Finds a key among members: linear for small objects, hashed for large ones.
class MemberIndex {
 public:
  explicit MemberIndex(const std::vector<Member>& members) : members_(members) {
    if (members.size() > 16) {
      map_.reserve(members.size());
      for (const auto& m : members) map_.emplace(m.first, m.second);
    }
  }
  const element* find(std::string_view key) const {
    if (members_.size() <= 16) {
      for (const auto& m : members_)
        if (m.first == key) return &m.second;
      return nullptr;
    }
    auto it = map_.find(key);
    return it == map_.end() ? nullptr : &it->second;
  }

 private:
  const std::vector<Member>& members_;
  std::unordered_map<std::string_view, element> map_;
};

std::uint64_t mix(std::uint64_t h, std::uint64_t v) {
  h ^= v + 0x9e3779b97f4a7c15ULL + (h << 6) + (h >> 2);
  return h;
}

class DiffWalker {
 public:
  DiffWalker(const JsonDiffConfig& config, std::vector<Difference>& out, std::size_t limit)
      : config_(config), out_(out), limit_(limit) {}
  DiffWalker(const JsonDiffConfig& config, std::vector<Difference>& out, std::size_t limit, json::ConcretePath path)
      : config_(config), out_(out), limit_(limit), path_(std::move(path)) {}

  bool full() const { return out_.size() >= limit_; }
  bool truncated() const { return truncated_; }

  void diff(element a, element b) {
    if (truncated_) return;
    if (!config_.ignore.empty() && config_.ignore.matches(path_)) return;
    element_type ta = a.type(), tb = b.type();
    if (ta != tb && !(is_number(ta) && is_number(tb))) {
      add("type", show(a), show(b));
      return;
    }
    switch (ta) {
      case element_type::OBJECT: diff_objects(a, b); return;
      case element_type::ARRAY:
        if (!config_.unordered.empty() && config_.unordered.matches(path_)) diff_unordered(a, b);
        else diff_ordered(a, b);
        return;
      case element_type::STRING:
        if (std::string_view(a) != std::string_view(b)) add("changed", show(a), show(b));
        return;
      case element_type::BOOL:
        if (bool(a) != bool(b)) add("changed", show(a), show(b));
        return;
      case element_type::NULL_VALUE: return;
      default:
        if (!numbers_equal(a, b)) add("changed", show(a), show(b));
        return;
    }
  }

 private:
  void add(std::string_view kind, std::string original, std::string replay) {
    if (full()) {
      truncated_ = true;
      return;
    }
    out_.push_back(Difference{json::format_path(path_), std::string(kind), std::move(original), std::move(replay)});
  }
  std::string show(element e) const { return json::display(e, config_.max_value_bytes); }

  bool numbers_equal(element a, element b) const {
    element_type ta = a.type(), tb = b.type();
    if (config_.tolerance <= 0) {
      if (ta == element_type::INT64 && tb == element_type::INT64) return std::int64_t(a) == std::int64_t(b);
      if (ta == element_type::UINT64 && tb == element_type::UINT64) return std::uint64_t(a) == std::uint64_t(b);
      // int64 and uint64 overlap only on non-negative values, which simdjson types INT64.
      if (ta != element_type::DOUBLE && tb != element_type::DOUBLE) return false;
    }
    double x = as_double(a), y = as_double(b);
    if (x == y) return true;
    // A hair of relative slack so that 1.01 - 1 (0.010000000000000009) is within 0.01.
    return std::fabs(x - y) <= config_.tolerance + 1e-12 * std::max(std::fabs(x), std::fabs(y));
  }
  static double as_double(element e) {
    switch (e.type()) {
      case element_type::INT64: return static_cast<double>(std::int64_t(e));
      case element_type::UINT64: return static_cast<double>(std::uint64_t(e));
      default: return double(e);
    }
  }

  bool ignored_here() const { return !config_.ignore.empty() && config_.ignore.matches(path_); }

  // Fast path for the common case: both objects list the same keys in the same order and
  // no key repeats. Returns false (having compared nothing) when that does not hold.
  bool diff_aligned_objects(simdjson::dom::object a, simdjson::dom::object b) {
    std::size_t n = a.size();
    if (n != b.size() || n > 32) return false;
    std::string_view keys[32];
    std::size_t i = 0;
    for (auto ia = a.begin(), ib = b.begin(); ia != a.end(); ++ia, ++ib, ++i) {
      std::string_view key = ia.key();
      if (ib == b.end() || key != ib.key()) return false;
      for (std::size_t j = 0; j < i; ++j)
        if (keys[j].size() == key.size() && keys[j] == key) return false;
      keys[i] = key;
    }
    for (auto ia = a.begin(), ib = b.begin(); ia != a.end(); ++ia, ++ib) {
      path_.push_back(json::PathStep::of_key(ia.key()));
      diff(ia.value(), ib.value());
      path_.pop_back();
      if (truncated_) break;
    }
    return true;
  }

  void diff_objects(element a, element b) {
    if (diff_aligned_objects(simdjson::dom::object(a), simdjson::dom::object(b))) return;
    auto ma = last_members(simdjson::dom::object(a));
    auto mb = last_members(simdjson::dom::object(b));
    MemberIndex ia(ma), ib(mb);
    for (const auto& [key, value] : ma) {
      path_.push_back(json::PathStep::of_key(key));
      if (const element* other = ib.find(key)) diff(value, *other);
      else if (!ignored_here()) add("missing", show(value), "");
      path_.pop_back();
      if (truncated_) return;
    }
    for (const auto& [key, value] : mb) {
      if (ia.find(key)) continue;
      path_.push_back(json::PathStep::of_key(key));
      if (!ignored_here()) add("extra", "", show(value));
      path_.pop_back();
      if (truncated_) return;
    }
  }

  static std::vector<element> elements(element array) {
    std::vector<element> out;
    for (auto e : simdjson::dom::array(array)) out.push_back(e);
    return out;
  }

  void diff_ordered(element a, element b) {
    auto ea = elements(a), eb = elements(b);
    if (ea.size() != eb.size()) {
      add("length", std::to_string(ea.size()), std::to_string(eb.size()));
      diff_positions(ea, eb);
      return;
    }
    // When the arrays hold the same elements in another order, one "order" entry says it
    // better than N "changed" ones: compare by position, then take those entries back.
    std::size_t before = out_.size();
    std::size_t differing = diff_positions(ea, eb);
    // A permutation moves at least two elements; one differing element cannot be one.
    if (differing > 1) {
      auto [left_a, left_b] = match_multiset(ea, eb);
      if (left_a.empty() && left_b.empty()) {
        out_.resize(before);
        truncated_ = false;
        add("order", show(a), show(b));
      }
    }
  }

  // Compares elements position by position; returns how many positions differ (at least).
  std::size_t diff_positions(const std::vector<element>& ea, const std::vector<element>& eb) {
    std::size_t n = std::min(ea.size(), eb.size());
    std::size_t differing = 0;
    for (std::size_t i = 0; i < n; ++i) {
      std::size_t before = out_.size();
      path_.push_back(json::PathStep::of_index(i));
      diff(ea[i], eb[i]);
      path_.pop_back();
      if (out_.size() != before || truncated_) ++differing;
      if (truncated_) break;
    }
    return differing;
  }

  void diff_unordered(element a, element b) {
    auto ea = elements(a), eb = elements(b);
    auto [left_a, left_b] = match_multiset(ea, eb);
    for (std::size_t i : left_a) {
      path_.push_back(json::PathStep::of_index(i));
      if (!ignored_here()) add("missing", show(ea[i]), "");
      path_.pop_back();
    }
    for (std::size_t j : left_b) {
      path_.push_back(json::PathStep::of_index(j));
      if (!ignored_here()) add("extra", "", show(eb[j]));
      path_.pop_back();
    }
  }

  // Pairs equal elements of `ea` and `eb` (under ignore and tolerance); returns the indexes
  // left without a partner on each side. Elements are bucketed by a hash that agrees with
  // equality, so each one is compared with a few candidates, not with all.
  std::pair<std::vector<std::size_t>, std::vector<std::size_t>> match_multiset(const std::vector<element>& ea,
                                                                               const std::vector<element>& eb) {
    std::unordered_map<std::uint64_t, std::vector<std::size_t>> buckets;
    buckets.reserve(eb.size());
    for (std::size_t j = 0; j < eb.size(); ++j) {
      path_.push_back(json::PathStep::of_index(j));
      buckets[hash(eb[j])].push_back(j);
      path_.pop_back();
    }
    std::vector<bool> used(eb.size(), false);
    std::vector<std::size_t> left_a, left_b;
    for (std::size_t i = 0; i < ea.size(); ++i) {
      path_.push_back(json::PathStep::of_index(i));
      bool paired = false;
      auto it = buckets.find(hash(ea[i]));
      if (it != buckets.end()) {
        // Partnered candidates leave the bucket, so runs of equal elements pair in O(1) each.
        auto& candidates = it->second;
        // Bounded, so that a bucket of look-alikes (numbers under a tolerance) stays linear.
        std::size_t tries = std::min(candidates.size(), kMaxCandidates);
        for (std::size_t k = 0; k < tries; ++k) {
          std::size_t j = candidates[k];
          if (!equivalent(ea[i], eb[j])) continue;
          used[j] = true;
          paired = true;
          candidates.erase(candidates.begin() + static_cast<std::ptrdiff_t>(k));
          break;
        }
      }
      path_.pop_back();
      if (!paired) left_a.push_back(i);
    }
    for (std::size_t j = 0; j < eb.size(); ++j)
      if (!used[j]) left_b.push_back(j);
    return {std::move(left_a), std::move(left_b)};
  }

  bool equivalent(element a, element b) const {
    std::vector<Difference> scratch;
    DiffWalker probe(config_, scratch, 1, path_);
    probe.diff(a, b);
    return scratch.empty() && !probe.truncated();
  }

  // A hash equal for equivalent values: ignored subtrees are skipped, duplicate keys count
  // once (last wins), object members are combined order-independently, and with a tolerance
  // every number hashes alike (equality then decides).
  std::uint64_t hash(element e) {
    if (!config_.ignore.empty() && config_.ignore.matches(path_)) return 0x1234;
    switch (e.type()) {
      case element_type::OBJECT: {
        std::uint64_t h = 0x0b7ec7;
        for (const auto& [key, value] : last_members(simdjson::dom::object(e))) {
          path_.push_back(json::PathStep::of_key(key));
          h += mix(std::hash<std::string_view>{}(key), hash(value));  // order-independent
          path_.pop_back();
        }
        return h;
      }
      case element_type::ARRAY: {
        bool unordered = !config_.unordered.empty() && config_.unordered.matches(path_);
        std::uint64_t h = 0xa7747;
        std::size_t i = 0;
        for (auto child : simdjson::dom::array(e)) {
          path_.push_back(json::PathStep::of_index(i++));
          if (unordered) h += mix(0x5eed, hash(child));
          else h = mix(h, hash(child));
          path_.pop_back();
        }
        return mix(h, i);
      }
      case element_type::STRING: return mix(0x57, std::hash<std::string_view>{}(std::string_view(e)));
      case element_type::BOOL: return bool(e) ? 0x7 : 0x8;
      case element_type::NULL_VALUE: return 0x9;
      default: {
        if (config_.tolerance > 0) return 0x4e;
        double d = as_double(e);
        if (d == 0) d = 0;  // -0.0 and 0.0
        return mix(0x4e, std::hash<double>{}(d));
      }
    }
  }

  const JsonDiffConfig& config_;
  std::vector<Difference>& out_;
  std::size_t limit_;
  json::ConcretePath path_;
  bool truncated_ = false;
};

std::string invalid_side(std::string_view text, const std::string& error, std::size_t max_bytes) {
  return "(invalid JSON: " + error + ") " + json::truncate_for_display(text, max_bytes);
}

}  // namespace

std::vector<Difference> json_diff(element original, element replay, const JsonDiffConfig& config) {
  std::vector<Difference> out;
  DiffWalker walker(config, out, std::max<std::size_t>(config.max_differences, 1));
  walker.diff(original, replay);
  if (walker.truncated())
    out.push_back(Difference{"$", "truncated", "", "more than " + std::to_string(out.size()) + " differences; the rest are not shown"});
  return out;
}

std::vector<Difference> json_diff(std::string_view original, std::string_view replay, const JsonDiffConfig& config) {
  if (original == replay) return {};
  auto a = json::JsonDocument::parse(original);
  auto b = json::JsonDocument::parse(replay);
  if (!a.ok() || !b.ok()) {
    Difference d{"$", "invalid_json", "", ""};
    d.original = a.ok() ? json::truncate_for_display(original, config.max_value_bytes)
                        : invalid_side(original, a.error(), config.max_value_bytes);
    d.replay = b.ok() ? json::truncate_for_display(replay, config.max_value_bytes)
                      : invalid_side(replay, b.error(), config.max_value_bytes);
    return {std::move(d)};
  }
  return json_diff(a.root(), b.root(), config);
}

}  // namespace doppel::plugins
