// Plugin `rewrite`: options, their parsing into RewriteFilterConfig, and registration.
#include "doppel/plugin.hpp"
#include "doppel/regex_options.hpp"
#include "rewrite_filter.hpp"

namespace doppel::plugins {
namespace {

std::string trim(std::string s) {
  auto b = s.find_first_not_of(" \t");
  auto e = s.find_last_not_of(" \t");
  return b == std::string::npos ? "" : s.substr(b, e - b + 1);
}

// GoReplay splits "pattern:replacement" at the first ':'; a ':' of "(?:" is part of the pattern.
std::size_t separator(const std::string& s) {
  for (std::size_t i = 0; i < s.size(); ++i)
    if (s[i] == ':' && !(i > 0 && s[i - 1] == '?')) return i;
  return std::string::npos;
}

PluginDefinition rewrite_filter_definition() {
  PluginDefinition def;
  def.name = "rewrite";
  def.role = Role::filter;
  def.description = "Edits requests before replay: rewrite the URL with RE2 groups, set query parameters, "
                    "rewrite, set or remove headers";
  def.accepts = KindSet::http();
  def.passes_through = true;
  def.requests_only = true;
  def.options = {
      option("rewrite_url", OptionType::string_list,
             "\"pattern:replacement\" on the request target (path and query); RE2, `$1` for groups; split at "
             "the first ':' outside \"(?:\". GoReplay: --http-rewrite-url \"/v1/user/([^\\/]+)/ping:/v2/user/$1/ping\"")
          .default_value(Value::array({})),
      option("set_param", OptionType::string_list,
             "\"name=value\": sets a query parameter, replacing its values or adding it. GoReplay: --http-set-param")
          .default_value(Value::array({})),
      option("rewrite_header", OptionType::string_list,
             "\"Name: pattern,replacement\" on a header's value; `$1` for groups. GoReplay: --http-rewrite-header "
             "\"Host: (.*).example.com,$1.beta.example.com\"")
          .default_value(Value::array({})),
      option("set_header", OptionType::string_list,
             "\"Name: value\": sets a header, replacing the first one of that name or adding it. GoReplay: "
             "--http-set-header")
          .default_value(Value::array({})),
      option("remove_header", OptionType::string_list, "Headers to remove (every occurrence)")
          .default_value(Value::array({})),
  };
  def.metrics = {
      {"rewritten", "requests changed by at least one edit"},
      {"dropped.unparseable_request", "messages that are not a parseable HTTP request"},
  };
  def.create_stage = [](const Options& options) -> std::unique_ptr<Stage> {
    RewriteFilterConfig config;
    for (const auto& s : options.strings("rewrite_url")) {
      auto at = separator(s);
      if (at == std::string::npos) options.fail("rewrite_url", "\"" + s + "\" must be \"pattern:replacement\"");
      config.rewrite_url.push_back(
          {compile_pattern(options, "rewrite_url", s.substr(0, at)), dollar_to_re2(s.substr(at + 1))});
    }
    for (const auto& s : options.strings("set_param")) {
      auto at = s.find('=');
      if (at == std::string::npos || at == 0) options.fail("set_param", "\"" + s + "\" must be \"name=value\"");
      config.set_param.emplace_back(s.substr(0, at), s.substr(at + 1));
    }
    for (const auto& s : options.strings("rewrite_header")) {
      auto colon = s.find(':');
      auto comma = s.rfind(',');
      if (colon == std::string::npos || comma == std::string::npos || comma < colon || trim(s.substr(0, colon)).empty())
        options.fail("rewrite_header", "\"" + s + "\" must be \"Name: pattern,replacement\"");
      config.rewrite_header.push_back(
          {trim(s.substr(0, colon)),
           {compile_pattern(options, "rewrite_header", trim(s.substr(colon + 1, comma - colon - 1))),
            dollar_to_re2(s.substr(comma + 1))}});
    }
    for (const auto& s : options.strings("set_header")) {
      auto colon = s.find(':');
      if (colon == std::string::npos || trim(s.substr(0, colon)).empty())
        options.fail("set_header", "\"" + s + "\" must be \"Name: value\"");
      config.set_header.emplace_back(trim(s.substr(0, colon)), trim(s.substr(colon + 1)));
    }
    config.remove_header = options.strings("remove_header");
    return std::make_unique<RewriteFilter>(std::move(config));
  };
  return def;
}

}  // namespace
}  // namespace doppel::plugins

DOPPEL_PLUGIN(doppel::plugins::rewrite_filter_definition);
