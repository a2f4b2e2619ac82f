// Plugin `split`: options, their parsing into SplitFilterConfig, and registration.
#include "doppel/plugin.hpp"
#include "split_filter.hpp"

namespace doppel::plugins {
namespace {

PluginDefinition split_filter_definition() {
  PluginDefinition def;
  def.name = "split";
  def.role = Role::filter;
  def.description = "Keeps one of N disjoint shares of the requests (by id hash), to split traffic between branches";
  def.accepts = KindSet::http();
  def.passes_through = true;
  def.requests_only = true;
  def.options = {
      option("ways", OptionType::integer, "Into how many shares the traffic is split").required(),
      option("index", OptionType::integer, "Which share this stage keeps, from 0 to ways - 1").required(),
  };
  def.metrics = {{"dropped.other_branch", "requests that belong to another share"}};
  def.create_stage = [](const Options& options) -> std::unique_ptr<Stage> {
    if (options.integer("ways") < 1) options.fail("ways", "ways must be at least 1");
    if (options.integer("index") < 0 || options.integer("index") >= options.integer("ways"))
      options.fail("index", "index must be between 0 and ways - 1 (" + std::to_string(options.integer("ways") - 1) + ")");
    return std::make_unique<SplitFilter>(SplitFilterConfig{static_cast<std::uint64_t>(options.integer("ways")),
                                                           static_cast<std::uint64_t>(options.integer("index"))});
  };
  return def;
}

}  // namespace
}  // namespace doppel::plugins

DOPPEL_PLUGIN(doppel::plugins::split_filter_definition);
