// Comparator `exact`: the replay's body is byte for byte the original's.
#include <algorithm>
#include <string>

#include "doppel/json_writer.hpp"
#include "doppel/plugin.hpp"

namespace doppel::plugins {
namespace {

constexpr std::size_t kContext = 24;   // bytes shown before the first difference
constexpr std::size_t kSnippet = 200;  // bytes shown from there on

class ExactComparator : public Comparator {
 public:
  explicit ExactComparator(bool decoded) : decoded_(decoded) {}

  std::vector<Difference> compare(const Exchange& e) const override {
    std::string_view original = body(e.original);
    std::string_view replay = body(e.replay);
    if (original == replay) return {};
    auto mismatch = std::mismatch(original.begin(), original.end(), replay.begin(), replay.end());
    std::size_t at = static_cast<std::size_t>(mismatch.first - original.begin());
    std::size_t from = at > kContext ? at - kContext : 0;
    auto snippet = [&](std::string_view s) {
      std::string prefix = from > 0 ? "\xE2\x80\xA6" : "";
      return prefix + truncate_for_display(s.substr(std::min(from, s.size())), kSnippet);
    };
    std::string kind = at == std::min(original.size(), replay.size()) ? "length" : "changed";
    return {{"body", kind, snippet(original) + " [" + std::to_string(original.size()) + " bytes]",
             snippet(replay) + " [" + std::to_string(replay.size()) + " bytes, first difference at byte " +
                 std::to_string(at) + "]"}};
  }

 private:
  std::string_view body(const MessagePtr& m) const {
    if (!m) return {};
    return decoded_ ? std::string_view(m->body().bytes) : m->http().raw_body();
  }
  bool decoded_;
};

PluginDefinition exact_comparator_definition() {
  PluginDefinition def;
  def.name = "exact";
  def.role = Role::comparator;
  def.description = "The replay's body equals the original's byte for byte (difference path `body`)";
  def.options = {
      option("decoded", OptionType::boolean,
             "Compare bodies after undoing chunked framing and gzip/deflate (false: the bytes as on the wire)")
          .default_value(true),
  };
  def.create_comparator = [](const Options& options) -> std::unique_ptr<Comparator> {
    return std::make_unique<ExactComparator>(options.boolean("decoded"));
  };
  return def;
}

}  // namespace
}  // namespace doppel::plugins

DOPPEL_PLUGIN(doppel::plugins::exact_comparator_definition);
