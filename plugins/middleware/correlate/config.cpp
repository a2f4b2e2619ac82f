// Plugin `correlate` (middleware): options, their parsing into CorrelateConfig, and registration.
#include <set>

#include "correlate_stage.hpp"
#include "doppel/plugin.hpp"
#include "doppel/regex_options.hpp"

namespace doppel::plugins {
namespace {

std::vector<OptionSpec> rule_fields() {
  return {
      option("name", OptionType::string,
             "Names the rule in metrics (substituted.NAME, missed.NAME, ...): letters, digits, `_`, `-`; "
             "default rule1, rule2, ...")
          .default_value(""),
      option("from", OptionType::string,
             "Where the value appears in responses: \"json:PATH\" (a JSON path, wildcards allowed), "
             "\"header:NAME\", \"cookie:NAME\" (a Set-Cookie cookie) or \"regex:PATTERN\" (RE2 over the decoded "
             "body, one capture group)")
          .required(),
      option("in", OptionType::string_list,
             "Where it is used in requests: \"header:NAME\", \"cookie:NAME\", \"param:NAME\" (query or form "
             "body), \"json:PATH\" (JSON body), \"path\" (any path segment) or \"path:N\" (the Nth segment); "
             "empty: anywhere it appears as a whole token in the request target, header values or body")
          .default_value(Value::array({})),
      option("scope", OptionType::string,
             "session: a value learned in one session is replaced only in that session's requests; global: in "
             "every request (the latest value learned wins)")
          .default_value("session")
          .choices({"session", "global"}),
      option("path", OptionType::string,
             "RE2 matched anywhere in the request path of the exchanges the value is learned from (e.g. "
             "\"^/login$\"); only those wait for their replay. Empty: every exchange")
          .default_value(""),
  };
}

bool simple_name(const std::string& name) {
  return !name.empty() && std::all_of(name.begin(), name.end(), [](char c) { return is_word_char(c); });
}

std::size_t positive(const Options& o, std::string_view name) {
  auto v = o.integer(name);
  if (v < 1) o.fail(name, "\"" + std::string(name) + "\" must be at least 1, not " + std::to_string(v));
  return static_cast<std::size_t>(v);
}

PluginDefinition correlate_definition() {
  PluginDefinition def;
  def.name = "correlate";
  def.role = Role::middleware;
  def.description =
      "Learns dynamic values (tokens, ids) from original vs replayed responses and substitutes the replay "
      "target's values in later requests of the same session; holds a session's requests until the replay "
      "defining their values came back";
  def.accepts = KindSet::http();
  def.produces = {};
  def.passes_through = true;
  def.options = {
      option("rule", OptionType::table_list,
             "[[middleware.NAME.rule]] blocks: a value, where it appears in responses (`from`) and where it is "
             "used in requests (`in`)")
          .fields(rule_fields())
          .required(),
      option("session", OptionType::string,
             "How requests are grouped into sessions: \"connection\" (the captured TCP connection), "
             "\"header:NAME\", \"cookie:NAME\" or \"param:NAME\". Requests without a key (e.g. from a .gor file "
             "with session = \"connection\") form one session")
          .default_value("connection"),
      option("hold_timeout", OptionType::duration,
             "Longest wait for the replay of an exchange that may define a value; then the session's next "
             "request goes on with the values known by then (hold_timeouts)")
          .default_value("10s"),
      option("max_held", OptionType::integer,
             "Requests held at most, over all sessions; beyond it a session's oldest held request goes on "
             "without waiting (held_overflow)")
          .default_value(10000),
      option("max_values", OptionType::integer,
             "Values each rule remembers at most; the least recently used is forgotten first (evicted.NAME)")
          .default_value(100000),
      option("value_ttl", OptionType::duration,
             "A value neither learned again nor used for this long is forgotten (expired.NAME)")
          .default_value("30m"),
      option("max_exchanges", OptionType::integer,
             "Exchanges waiting for their original or replayed response at most; beyond it the oldest is given "
             "up (exchanges_evicted)")
          .default_value(100000),
      option("values_per_response", OptionType::integer,
             "Values one rule takes from one response at most (a wildcard path over a long list)")
          .default_value(64),
  };
  def.metrics = {
      {"substituted.RULE", "values replaced in requests, per rule"},
      {"learned.RULE", "original -> replay value pairs learned, per rule"},
      {"missed.RULE", "values learned that no request used before they were forgotten or the run ended, per rule"},
      {"evicted.RULE", "values forgotten because max_values was reached, per rule"},
      {"expired.RULE", "values forgotten after value_ttl, per rule"},
      {"unpaired.RULE", "values found in only one of the original and replayed responses, per rule"},
      {"held", "requests that waited for an earlier exchange of their session"},
      {"hold_timeouts", "replays not back within hold_timeout (the session went on without them)"},
      {"held_overflow", "requests that went on without waiting because max_held requests were held"},
      {"exchanges_evicted", "exchanges given up because max_exchanges were open"},
      {"held_requests", "requests held now (gauge); bound: max_held (held_overflow), expiry: hold_timeout"},
      {"awaiting_replays", "sessions waiting for a replay now (gauge)"},
      {"table.values.RULE",
       "original -> replay values a rule remembers now (gauge); bound: max_values (the least recently used "
       "forgotten: evicted.RULE), expiry: value_ttl (expired.RULE)"},
      {"table.exchanges",
       "exchanges awaiting their original or replayed response now (gauge); bound: max_exchanges (the oldest "
       "given up: exchanges_evicted), expiry: hold_timeout (hold_timeouts)"},
      {"table.sessions",
       "sessions holding requests or awaiting a replay now (gauge); bound: max_held and max_exchanges, expiry: "
       "hold_timeout (a session is forgotten once it neither holds nor awaits)"},
      {"dropped.shutdown", "requests still held when the stage stopped"},
  };
  def.create_stage = [](const Options& options) -> std::unique_ptr<Stage> {
    CorrelateConfig config;
    auto rules = options.tables("rule");
    if (rules.empty()) options.fail("rule", "correlate needs at least one [[...rule]] block");
    std::set<std::string> names;
    for (std::size_t i = 0; i < rules.size(); ++i) {
      const Options& o = rules[i];
      CorrelateRule rule;
      rule.name = o.string("name").empty() ? "rule" + std::to_string(i + 1) : o.string("name");
      if (!simple_name(rule.name)) o.fail("name", "rule names may use letters, digits, `_` and `-` only");
      if (!names.insert(rule.name).second) o.fail("name", "two rules are named \"" + rule.name + "\"");
      std::string error;
      auto from = parse_value_source(o.string("from"), &error);
      if (!from) o.fail("from", error);
      rule.from = std::move(*from);
      for (const auto& text : o.strings("in")) {
        auto site = parse_request_site(text, &error);
        if (!site) o.fail("in", error);
        if (site->type != RequestSite::Type::anywhere) rule.in.push_back(std::move(*site));
      }
      rule.global = o.string("scope") == "global";
      if (auto path = o.string("path"); !path.empty()) rule.path = compile_pattern(o, "path", path);
      config.rules.push_back(std::move(rule));
    }
    std::string error;
    auto session = parse_session_key(options.string("session"), &error);
    if (!session) options.fail("session", error);
    config.session = std::move(*session);
    config.hold_timeout = options.duration("hold_timeout");
    if (config.hold_timeout.count() <= 0) options.fail("hold_timeout", "\"hold_timeout\" must be positive");
    config.max_held = positive(options, "max_held");
    config.max_values = positive(options, "max_values");
    config.value_ttl = options.duration("value_ttl");
    if (config.value_ttl.count() <= 0) options.fail("value_ttl", "\"value_ttl\" must be positive");
    config.max_exchanges = positive(options, "max_exchanges");
    config.values_per_response = positive(options, "values_per_response");
    return std::make_unique<CorrelateStage>(std::move(config));
  };
  return def;
}

}  // namespace
}  // namespace doppel::plugins

DOPPEL_PLUGIN(doppel::plugins::correlate_definition);
