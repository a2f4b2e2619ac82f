#pragma once
// Exact JSON field paths, shared by every plugin that looks into JSON (json_field, redact,
// the json and nonempty comparators, compare's noise cancellation).
//
// Syntax (docs/guide/json.md has the full reference):
//   robot_id            a key of the top-level object
//   a.b                 nested keys
//   items[0].id         an array index (0-based)
//   items[*].id         [*] = every index of an array (never an object key)
//   meta.*              *   = every key of an object (never an array index)
//   **.password         **  = any number of steps (keys or indexes), zero included:
//                       `password` at the top level, `user.password`, `items[3].password`,
//                       `a[0][1].password`; `a.**.id` = `id` anywhere below `a`
//   $.a.b  $  $[0]      an optional leading `$` names the root; `$` alone is the root itself
//   a["x.y"]  a['k']    quoted keys, for keys with `.`, `[`, `]`, quotes, spaces or `*`
//                       (JSON string escapes allowed inside double quotes)
// Matching is exact, segment by segment: `items.id` never matches `items[0].id` nor
// `items.idempotency_key`; `items.0` is the key "0", not an index. A path never matches
// by substring or prefix; JsonPath::covers() is the explicit "this path or below it" test.
// `**` is the one segment that spans several steps, and only when written: `password`
// stays the top-level key alone. (`["**"]` is the literal key "**".)
//
// Duplicate keys: the last occurrence wins (as in Python, JavaScript and Go), both when a
// path is evaluated and when the json comparator walks an object.
//
// Parse once at configuration time (JsonPath::parse throws JsonPathError with the 0-based
// character position), then evaluate on any number of documents, from any thread.
#include <cstddef>
#include <cstdint>
#include <memory>
#include <optional>
#include <span>
#include <stdexcept>
#include <string>
#include <string_view>
#include <vector>

#include <simdjson.h>

namespace doppel::json {

// One step of a concrete location inside a document: an object key or an array index.
struct PathStep {
  enum class Type : std::uint8_t { key, index };
  Type type = Type::key;
  std::string key;        // Type::key
  std::size_t index = 0;  // Type::index

  static PathStep of_key(std::string_view k) { return {Type::key, std::string(k), 0}; }
  static PathStep of_index(std::size_t i) { return {Type::index, {}, i}; }
  bool operator==(const PathStep&) const = default;
};

// A concrete location, as a diff walk produces it: no wildcards.
using ConcretePath = std::vector<PathStep>;

// Canonical text of a concrete path: `a.b[0]["x.y"]`, `[2].id`, `$` for the root.
// JsonPath::parse(format_path(p)) matches p exactly.
std::string format_path(std::span<const PathStep> path);
// Appends the text of `step` to `out` as format_path would (for incremental walks).
void append_step(std::string& out, const PathStep& step, bool first);
// The inverse of format_path: nullopt when `text` does not parse or has wildcards.
std::optional<ConcretePath> parse_concrete_path(std::string_view text);

class JsonPathError : public std::invalid_argument {
 public:
  JsonPathError(std::size_t position, const std::string& message)
      : std::invalid_argument(message), position_(position) {}
  // 0-based character offset in the path text where the problem is.
  std::size_t position() const { return position_; }

 private:
  std::size_t position_;
};

// A parsed path pattern: steps with optional wildcards.
class JsonPath {
 public:
  struct Segment {
    enum class Type : std::uint8_t { key, index, any_key, any_index, any_depth };
    Type type = Type::key;
    std::string key;        // Type::key
    std::size_t index = 0;  // Type::index
    bool operator==(const Segment&) const = default;
  };

  JsonPath() = default;  // the root (`$`)
  // Throws JsonPathError, e.g. "unterminated quoted key at 4" (message includes the position).
  static JsonPath parse(std::string_view text);
  // Same, without throwing: nullopt and `error` set on failure.
  static std::optional<JsonPath> try_parse(std::string_view text, std::string* error = nullptr);

  const std::string& text() const { return text_; }  // as written
  const std::vector<Segment>& segments() const { return segments_; }
  bool is_root() const { return segments_.empty(); }
  bool has_wildcard() const;  // `*`, `[*]` or `**`
  bool has_any_depth() const;  // `**`
  // A single object key (`robot_id`, `["a.b"]`) or `*`. (`**.robot_id` also matches the
  // one-step path [robot_id]: to ask whether a form or query key is named, match it as one.)
  bool is_single_key() const;

  // Exact match of a concrete path: same length, each step equal or matched by its wildcard.
  bool matches(std::span<const PathStep> concrete) const;
  // True when `concrete` is this path or lies below it (this path matches a prefix of it):
  // `results.trace` covers `results.trace` and `results.trace.id`, not `results.tracer`.
  bool covers(std::span<const PathStep> concrete) const;
  // Matches the path text a diff reported (a concrete path from format_path). False when
  // `concrete_text` does not parse or contains wildcards.
  bool matches(std::string_view concrete_text) const;
  bool covers(std::string_view concrete_text) const;

  // Could a path strictly below `concrete` match? (lets a walk skip whole subtrees)
  bool may_match_below(std::span<const PathStep> concrete) const;

  // Every element of `root` at this path, in document order. A key segment selects the last
  // member with that key; `*` selects each distinct key once (its last value). Nothing
  // matches on a type mismatch (a key on an array, an index on an object) — never an error.
  // With `**` each matching location is returned once, outer before inner (`**.a` on
  // {"a":{"a":1}} gives the outer object, then 1).
  std::vector<simdjson::dom::element> find(simdjson::dom::element root) const;
  // Same, with the concrete path of each match.
  struct Match {
    ConcretePath path;
    simdjson::dom::element value;
  };
  std::vector<Match> find_with_paths(simdjson::dom::element root) const;
  // The first match, if any (cheap for paths without wildcards).
  std::optional<simdjson::dom::element> find_first(simdjson::dom::element root) const;

 private:
  std::string text_;
  std::vector<Segment> segments_;
};

// A set of patterns (ignore lists, unordered lists); asks "does any pattern match P".
class JsonPathSet {
 public:
  JsonPathSet() = default;
  explicit JsonPathSet(std::vector<JsonPath> paths) : paths_(std::move(paths)) {}
  // Parses every text; throws JsonPathError naming the offending path text.
  static JsonPathSet parse(const std::vector<std::string>& texts);

  bool empty() const { return paths_.empty(); }
  const std::vector<JsonPath>& paths() const { return paths_; }
  bool matches(std::span<const PathStep> concrete) const;
  bool covers(std::span<const PathStep> concrete) const;
  // Could a path below `concrete` match some pattern? (lets a walk skip whole subtrees)
  bool may_match_below(std::span<const PathStep> concrete) const;

 private:
  std::vector<JsonPath> paths_;
};

// A parsed JSON document that owns its parser. Never throws: check ok().
// Nesting deeper than max_depth (default 1024) is an error ("too deeply nested"), never a
// stack overflow; bodies of any size the memory allows are accepted.
class JsonDocument {
 public:
  static constexpr std::size_t kDefaultMaxDepth = 1024;
  static JsonDocument parse(std::string_view text, std::size_t max_depth = kDefaultMaxDepth);

  JsonDocument(JsonDocument&&) noexcept;
  JsonDocument& operator=(JsonDocument&&) noexcept;
  ~JsonDocument();

  bool ok() const { return error_.empty(); }
  const std::string& error() const { return error_; }  // "" when ok
  bool too_deep() const { return too_deep_; }
  simdjson::dom::element root() const { return root_; }  // valid only when ok()

 private:
  JsonDocument() = default;
  std::unique_ptr<simdjson::dom::parser> parser_;
  simdjson::dom::element root_;
  std::string error_;
  bool too_deep_ = false;
};

// Type name as diffs report it: "null", "boolean", "number", "string", "array", "object".
std::string_view type_name(simdjson::dom::element value);

// Looks like a JSON body (first non-whitespace byte is `{` or `[`)?
bool looks_like_json(std::string_view body);
// Is this Content-Type a JSON one (application/json, application/*+json, text/json)?
bool is_json_content_type(std::string_view content_type);

}  // namespace doppel::json
