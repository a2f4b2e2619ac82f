#pragma once
// Exact difference-path patterns for a rule's `ignore` list: "results.trace_id",
// "items[*].id", "headers.*". Segments are compared whole, never as substrings, so
// "items.id" does not match "items.idempotency_key". A pattern also covers everything
// below the path it names ("results" ignores "results.a.b").
#include <string>
#include <string_view>
#include <vector>

namespace doppel::plugins {

class PathPattern {
 public:
  explicit PathPattern(std::string_view pattern);
  bool matches(std::string_view path) const;
  const std::string& text() const { return text_; }

 private:
  std::string text_;
  std::vector<std::string> segments_;
};

// "a.b[0].c" -> {"a", "b", "[0]", "c"}; a leading "$." or "$" is dropped.
std::vector<std::string> split_path(std::string_view path);

}  // namespace doppel::plugins
