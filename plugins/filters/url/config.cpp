// Plugin `url`: options, their parsing into UrlFilterConfig, and registration.
#include "doppel/plugin.hpp"
#include "doppel/regex_options.hpp"
#include "url_filter.hpp"

namespace doppel::plugins {
namespace {

PluginDefinition url_filter_definition() {
  PluginDefinition def;
  def.name = "url";
  def.role = Role::filter;
  def.description = "Keeps requests whose target matches an allow pattern and no deny pattern (RE2)";
  def.accepts = KindSet::http();
  def.passes_through = true;
  def.requests_only = true;
  def.options = {
      option("allow", OptionType::string_list,
             "RE2 patterns matched anywhere in the request target (path and query); a request must match "
             "one. Empty allows every target. GoReplay: --http-allow-url")
          .default_value(Value::array({})),
      option("deny", OptionType::string_list,
             "RE2 patterns; a request whose target matches one is dropped. GoReplay: --http-disallow-url")
          .default_value(Value::array({})),
  };
  def.metrics = {
      {"dropped.url_not_allowed", "requests whose target matched no allow pattern"},
      {"dropped.url_denied", "requests whose target matched a deny pattern"},
      {"dropped.unparseable_request", "messages that are not a parseable HTTP request"},
  };
  def.create_stage = [](const Options& options) -> std::unique_ptr<Stage> {
    UrlFilterConfig config;
    config.allow = compile_patterns(options, "allow");
    config.deny = compile_patterns(options, "deny");
    return std::make_unique<UrlFilter>(std::move(config));
  };
  return def;
}

}  // namespace
}  // namespace doppel::plugins

DOPPEL_PLUGIN(doppel::plugins::url_filter_definition);
