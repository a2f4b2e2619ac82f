// Comparator `status`: the replay answered with the same HTTP status as the original.
#include <string>

#include "doppel/plugin.hpp"

namespace doppel::plugins {
namespace {

class StatusComparator : public Comparator {
 public:
  explicit StatusComparator(bool by_class) : by_class_(by_class) {}

  std::vector<Difference> compare(const Exchange& e) const override {
    int original = e.original ? e.original->http().status() : 0;
    int replay = e.replay ? e.replay->http().status() : 0;
    auto text = [](const MessagePtr& m, int status) {
      if (!m) return std::string("(none)");
      return status ? std::to_string(status) : std::string("(not an HTTP response)");
    };
    if (original == 0 || replay == 0) {
      if (original == replay) return {};  // neither side parses: nothing to tell apart by status
      return {{"status", "invalid", text(e.original, original), text(e.replay, replay)}};
    }
    bool same = by_class_ ? original / 100 == replay / 100 : original == replay;
    if (same) return {};
    return {{"status", "changed", std::to_string(original), std::to_string(replay)}};
  }

 private:
  bool by_class_;
};

PluginDefinition status_comparator_definition() {
  PluginDefinition def;
  def.name = "status";
  def.role = Role::comparator;
  def.description = "The replay's HTTP status equals the original's (difference path `status`)";
  def.options = {
      option("by_class", OptionType::boolean, "Compare the status class only (2xx, 4xx, ...), not the exact code")
          .default_value(false),
  };
  def.create_comparator = [](const Options& options) -> std::unique_ptr<Comparator> {
    return std::make_unique<StatusComparator>(options.boolean("by_class"));
  };
  return def;
}

}  // namespace
}  // namespace doppel::plugins

DOPPEL_PLUGIN(doppel::plugins::status_comparator_definition);
