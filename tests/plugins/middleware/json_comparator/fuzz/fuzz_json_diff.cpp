// libFuzzer target for the json comparator's diff (and the path parser it relies on).
// Also holds json_diff (with its shortcuts: bodies that differ only in ignored scalars, and
// bodies whose other differences lie in a few elements of a list, parsed alone) to
// json_diff_walk (without).
// Input: one selector byte, then the original and the replay separated by the first NUL
// (without a NUL the rest is cut in half). Built by doppel_add_fuzz_target (DOPPEL_FUZZ=ON).
#include <cstddef>
#include <cstdint>
#include <string_view>
#include <vector>

#include "doppel/json_path.hpp"
#include "doppel/json_diff.hpp"

namespace {
std::vector<doppel::json::JsonDiffConfig> make_configs() {
  using doppel::json::JsonPathSet;
  std::vector<doppel::json::JsonDiffConfig> c(4);
  c[1].tolerance = 0.5;
  c[1].unordered = JsonPathSet::parse({"$", "l", "a[*]", "*"});
  c[2].ignore = JsonPathSet::parse({"a.*", "items[*].id", "[0]"});
  c[2].max_differences = 3;
  c[2].max_value_bytes = 16;
  c[3].unordered = JsonPathSet::parse({"[*]", "a"});
  c[3].ignore = JsonPathSet::parse({"*.b", "[1]"});
  return c;
}
const doppel::json::JsonDiffConfig& config(std::uint8_t selector) {
  static const auto configs = make_configs();
  return configs[selector & 3];
}
}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  if (size < 1) return 0;
  std::uint8_t selector = data[0];
  std::string_view rest(reinterpret_cast<const char*>(data + 1), size - 1);
  std::size_t cut = rest.find('\0');
  std::string_view a = cut == std::string_view::npos ? rest.substr(0, rest.size() / 2) : rest.substr(0, cut);
  std::string_view b = cut == std::string_view::npos ? rest.substr(rest.size() / 2) : rest.substr(cut + 1);
  if (selector & 4) {
    std::string error;
    if (auto path = doppel::json::JsonPath::try_parse(a, &error)) {
      auto doc = doppel::json::JsonDocument::parse(b);
      if (doc.ok()) (void)path->find_with_paths(doc.root());
      (void)path->matches(b);
    }
    return 0;
  }
  auto diffs = doppel::json::json_diff(a, b, config(selector));
  // Equal inputs never differ, and every difference names a path and a kind.
  if (a == b && !diffs.empty()) __builtin_trap();
  for (const auto& d : diffs)
    if (d.path.empty() || d.kind.empty()) __builtin_trap();
  // The shortcuts change nothing.
  auto walked = doppel::json::json_diff_walk(a, b, config(selector));
  if (walked.size() != diffs.size()) __builtin_trap();
  for (std::size_t i = 0; i < diffs.size(); ++i)
    if (walked[i].path != diffs[i].path || walked[i].kind != diffs[i].kind || walked[i].original != diffs[i].original ||
        walked[i].replay != diffs[i].replay)
      __builtin_trap();
  return 0;
}
