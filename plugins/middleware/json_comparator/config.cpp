// Plugin `json` (a comparator): options (read by json::json_diff_config) and registration.
#include "doppel/plugin.hpp"
#include "json_comparator.hpp"

namespace doppel::plugins {
namespace {

PluginDefinition json_comparator_definition() {
  PluginDefinition def;
  def.name = "json";
  def.role = Role::comparator;
  def.description =
      "Structural diff of the JSON bodies: changed value, type, missing/extra field, array length and order";
  def.options = {
      option("ignore", OptionType::string_list,
             "Exact paths whose subtrees are not compared: results.trace_id, items[*].ts, meta.*; never a "
             "substring match (items.id does not ignore items.idempotency_key)")
          .default_value(Value::array({})),
      option("unordered", OptionType::string_list,
             "Paths of arrays compared as multisets (order ignored): results.hint_list, groups[*].members")
          .default_value(Value::array({})),
      option("tolerance", OptionType::number, "Numbers within this absolute distance are equal (0: exact)")
          .default_value(0.0),
      option("max_differences", OptionType::integer,
             "Differences reported per exchange; beyond it one \"truncated\" entry says there were more")
          .default_value(100),
      option("max_value_length", OptionType::integer, "Bytes of each original/replay value shown in a difference")
          .default_value(200),
  };
  def.create_comparator = [](const Options& options) -> std::unique_ptr<Comparator> {
    return std::make_unique<JsonComparator>(json::json_diff_config(options));
  };
  return def;
}

}  // namespace
}  // namespace doppel::plugins

DOPPEL_PLUGIN(doppel::plugins::json_comparator_definition);
