// Plugin `redact`: options, their parsing into RedactFilterConfig, and registration.
#include "doppel/plugin.hpp"
#include "redact_filter.hpp"

namespace doppel::plugins {
namespace {

RedactFilterConfig make_config(const Options& options) {
  RedactFilterConfig config;
  config.headers = options.strings("headers");
  try {
    config.fields = json::JsonPathSet::parse(options.strings("fields"));
  } catch (const json::JsonPathError& e) {
    options.fail("fields", e.what());
  }
  for (const auto& p : config.fields.paths())
    if (p.is_root()) options.fail("fields", "\"$\" would redact the whole body; name the fields to redact");
  if (config.headers.empty() && config.fields.empty())
    options.fail("headers", "redact needs at least one entry in \"headers\" or \"fields\"");
  config.drop_unreadable = options.string("on_unreadable") == "drop";
  return config;
}

PluginDefinition redact_filter_definition() {
  PluginDefinition def;
  def.name = "redact";
  def.role = Role::filter;
  def.description =
      "Replaces header values and JSON/form/query fields by REDACTED-<sha256 prefix>, keeping every other byte";
  def.accepts = KindSet::http();
  def.produces = KindSet::http();
  def.passes_through = true;
  def.requests_only = false;  // responses carry secrets too
  def.options = {
      option("headers", OptionType::string_list, "Header names whose values are redacted (case-insensitive)")
          .default_value(Value::array({})),
      option("fields", OptionType::string_list,
             "Exact JSON paths redacted in JSON bodies (every duplicate too); single-key paths also redact "
             "form-urlencoded bodies and query parameters")
          .default_value(Value::array({})),
      option("on_unreadable", OptionType::string,
             "A JSON/form body that cannot be read (invalid JSON, broken gzip): \"drop\" it (counted), or "
             "\"pass\" it unredacted (counted)")
          .default_value("drop")
          .choices({"drop", "pass"}),
  };
  def.metrics = {
      {"redacted_values", "header values and fields replaced"},
      {"unredacted_bodies", "unreadable bodies passed on unredacted (on_unreadable = \"pass\")"},
      {"dropped.invalid_json", "messages whose JSON body does not parse, so could not be redacted"},
      {"dropped.undecodable_body", "messages whose chunked/gzip/deflate body could not be decoded"},
      {"dropped.unparseable_message", "messages that are not parseable HTTP"},
  };
  def.create_stage = [](const Options& options) -> std::unique_ptr<Stage> {
    return std::make_unique<RedactFilter>(make_config(options));
  };
  return def;
}

}  // namespace
}  // namespace doppel::plugins

DOPPEL_PLUGIN(doppel::plugins::redact_filter_definition);
