// Plugin `method`: keeps requests whose method is allowed and not denied.
// GoReplay: --http-allow-method. Methods compare case-insensitively ("get" in a pipeline file
// means GET).
#include <algorithm>

#include "doppel/plugin.hpp"

namespace doppel::plugins {
namespace {

struct MethodFilterConfig {
  std::vector<std::string> allow;  // empty: every method
  std::vector<std::string> deny;
};

bool listed(const std::vector<std::string>& methods, std::string_view method) {
  return std::any_of(methods.begin(), methods.end(), [&](const std::string& m) { return iequals(m, method); });
}

class MethodFilter : public Stage {
 public:
  explicit MethodFilter(MethodFilterConfig config) : config_(std::move(config)) {}

  void process(const MessagePtr& message) override {
    const HttpView& http = message->http();
    if (!http.is_request()) {
      context().drop("unparseable_request");
      return;
    }
    if (!config_.allow.empty() && !listed(config_.allow, http.method())) {
      context().drop("method_not_allowed");
      return;
    }
    if (listed(config_.deny, http.method())) {
      context().drop("method_denied");
      return;
    }
    context().emit(message);
  }

 private:
  MethodFilterConfig config_;
};

PluginDefinition method_filter_definition() {
  PluginDefinition def;
  def.name = "method";
  def.role = Role::filter;
  def.description = "Keeps requests whose method is in `allow` (when set) and not in `deny`";
  def.accepts = KindSet::http();
  def.passes_through = true;
  def.requests_only = true;
  def.options = {
      option("allow", OptionType::string_list,
             "Methods to keep (case-insensitive); empty keeps every method. GoReplay: --http-allow-method")
          .default_value(Value::array({})),
      option("deny", OptionType::string_list, "Methods to drop (case-insensitive)").default_value(Value::array({})),
  };
  def.metrics = {
      {"dropped.method_not_allowed", "requests whose method is not in `allow`"},
      {"dropped.method_denied", "requests whose method is in `deny`"},
      {"dropped.unparseable_request", "messages that are not a parseable HTTP request"},
  };
  def.create_stage = [](const Options& options) -> std::unique_ptr<Stage> {
    MethodFilterConfig config{options.strings("allow"), options.strings("deny")};
    for (const auto* list : {&config.allow, &config.deny})
      for (const auto& m : *list)
        if (m.empty() || m.find_first_of(" \t\r\n") != std::string::npos)
          options.fail(list == &config.allow ? "allow" : "deny", "\"" + m + "\" is not an HTTP method");
    return std::make_unique<MethodFilter>(std::move(config));
  };
  return def;
}

}  // namespace
}  // namespace doppel::plugins

DOPPEL_PLUGIN(doppel::plugins::method_filter_definition);
