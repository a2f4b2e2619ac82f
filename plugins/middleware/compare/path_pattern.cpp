#include "path_pattern.hpp"

namespace doppel::plugins {

std::vector<std::string> split_path(std::string_view path) {
  if (path.starts_with("$.")) path.remove_prefix(2);
  else if (path.starts_with("$")) path.remove_prefix(1);
  std::vector<std::string> out;
  std::string current;
  for (std::size_t i = 0; i < path.size(); ++i) {
    char c = path[i];
    if (c == '.') {
      if (!current.empty()) out.push_back(std::move(current));
      current.clear();
    } else if (c == '[') {
      if (!current.empty()) out.push_back(std::move(current));
      current.clear();
      std::size_t close = path.find(']', i);
      if (close == std::string_view::npos) close = path.size() - 1;
      out.emplace_back(path.substr(i, close - i + 1));
      i = close;
    } else {
      current.push_back(c);
    }
  }
  if (!current.empty()) out.push_back(std::move(current));
  return out;
}

PathPattern::PathPattern(std::string_view pattern) : text_(pattern), segments_(split_path(pattern)) {}

bool PathPattern::matches(std::string_view path) const {
  if (text_ == path) return true;
  auto segments = split_path(path);
  if (segments.size() < segments_.size()) return false;
  for (std::size_t i = 0; i < segments_.size(); ++i) {
    const std::string& want = segments_[i];
    const std::string& got = segments[i];
    if (want == got) continue;
    if (want == "[*]" && got.starts_with('[')) continue;
    if (want == "*" && !got.starts_with('[')) continue;
    return false;
  }
  return true;
}

}  // namespace doppel::plugins
