// Plugin `compare`: options, their parsing into CompareConfig, and registration.
#include <algorithm>
#include <thread>

#include "compare_stage.hpp"
#include "doppel/plugin.hpp"
#include "doppel/regex_options.hpp"

namespace doppel::plugins {
namespace {

std::vector<OptionSpec> rule_fields() {
  return {
      option("name", OptionType::string,
             "Endpoint name used in verdicts and the report (groups every path the rule matches); "
             "without it the endpoint is \"METHOD /path\", and a gRPC request's is its method, \"/pkg.Service/Method\"")
          .default_value(""),
      option("method", OptionType::string, "RE2 pattern matched against the whole method, case-insensitive; "
                                           "empty matches every method")
          .default_value(""),
      option("path", OptionType::string,
             "RE2 pattern matched anywhere in the request path (without the query); anchor it with ^...$; "
             "empty matches every path")
          .default_value(""),
      option("fail", OptionType::string_list,
             "Comparators (a [comparators.NAME] or a stock comparator plugin) whose differences make the "
             "verdict `mismatch`")
          .default_value(Value::array({})),
      option("warn", OptionType::string_list, "Comparators whose differences make the verdict `warn`")
          .default_value(Value::array({})),
      option("info", OptionType::string_list,
             "Comparators whose differences are reported (severity info) without changing the verdict")
          .default_value(Value::array({})),
      option("escalate", OptionType::string_list,
             "Comparators consulted only when a warn or info comparator found a difference; if one fails the "
             "verdict is `mismatch` (e.g. a differing body is fine while results.hint_list is non-empty)")
          .default_value(Value::array({})),
      option("ignore", OptionType::string_list,
             "Difference paths left out of this rule's verdicts: exact paths with explicit wildcards "
             "(`results.trace_id`, `items[*].id`, `header:Date`), never substrings")
          .default_value(Value::array({})),
  };
}

CompareRule make_rule(const Options& o, std::string label) {
  CompareRule rule;
  rule.name = o.string("name");
  rule.label = rule.name.empty() ? std::move(label) : rule.name;
  if (auto m = o.string("method"); !m.empty()) rule.method = compile_pattern(o, "method", "(?i)(?:" + m + ")");
  if (auto p = o.string("path"); !p.empty()) rule.path = compile_pattern(o, "path", p);
  rule.fail = o.strings("fail");
  rule.warn = o.strings("warn");
  rule.fail_position = o.position("fail");
  rule.warn_position = o.position("warn");
  rule.info = o.strings("info");
  rule.escalate = o.strings("escalate");
  rule.info_position = o.position("info");
  rule.escalate_position = o.position("escalate");
  for (const auto& i : o.strings("ignore")) rule.ignore.emplace_back(i);
  return rule;
}

std::size_t positive(const Options& o, std::string_view name) {
  auto v = o.integer(name);
  if (v < 1) o.fail(name, "\"" + std::string(name) + "\" must be at least 1, not " + std::to_string(v));
  return static_cast<std::size_t>(v);
}

PluginDefinition compare_definition() {
  PluginDefinition def;
  def.name = "compare";
  def.role = Role::middleware;
  def.description =
      "Joins each request with its original and replayed responses and emits one verdict per request, "
      "judged by per-endpoint rules of comparators";
  def.accepts = KindSet::http();
  def.produces = KindSet{Kind::verdict};
  def.passes_through = false;
  def.options = {
      option("rule", OptionType::table_list,
             "[[middleware.NAME.rule]] blocks, in order; the first whose method and path match decides "
             "which comparators apply")
          .fields(rule_fields())
          .default_value(Value::array({})),
      option("fail", OptionType::string_list, "Comparators that make a mismatch when no rule matches")
          .default_value(Value::array({"status"})),
      option("warn", OptionType::string_list, "Comparators that make a warn when no rule matches")
          .default_value(Value::array({})),
      option("timeout", OptionType::duration,
             "How long a request waits for its original and replayed responses before its verdict is "
             "decided with what arrived (missing_original / missing_replay)")
          .default_value("10s"),
      option("max_pending", OptionType::integer,
             "Joins kept waiting at most; beyond it the oldest is decided early (counted as joins_evicted)")
          .default_value(100000),
      option("baseline", OptionType::string,
             "Name of a second HTTP output replaying to another copy of the old service; enables noise "
             "cancellation (Diffy). Empty disables it")
          .default_value(""),
      option("noise_relative_threshold", OptionType::number,
             "Percent: a path is a real difference only when |candidate - baseline| differences exceed this "
             "share of (candidate + baseline) differences (Diffy's relative threshold)")
          .default_value(20.0),
      option("noise_absolute_threshold", OptionType::number,
             "Percent: ... and exceed this share of the endpoint's exchanges (Diffy's absolute threshold)")
          .default_value(0.03),
      option("samples_per_path", OptionType::integer,
             "Verdicts per endpoint x difference path that carry the whole exchange as a sample for the report")
          .default_value(5),
      option("sample_body_limit", OptionType::size, "Bytes of each head and body kept in a sample")
          .default_value("16KiB"),
      option("value_limit", OptionType::size, "Bytes of the original and replay value shown per failed check")
          .default_value("512"),
      option("max_endpoints", OptionType::integer,
             "Distinct endpoints (METHOD /path, or /pkg.Service/Method for gRPC) tracked; more fold into "
             "\"METHOD (other)\" (\"gRPC (other)\"); name rules to group templated paths")
          .default_value(1000),
      option("max_paths", OptionType::integer,
             "Endpoint x difference path aggregates kept (which verdicts carry samples) and, with a baseline, "
             "endpoint x path noise counts; a path beyond it is not aggregated (paths_untracked) and its "
             "differences count as real, not noise (noise_untracked). Kept for the whole run")
          .default_value(100000),
      option("threads", OptionType::integer,
             "Threads judging exchanges (0: one per core, at most 64). Each owns the joins of part of the ids, "
             "so a request and its responses always meet in one; max_pending is shared out among them. "
             "Verdicts of different ids may leave in another order than with 1, which judges on the stage's "
             "own thread")
          .default_value(0),
  };
  def.metrics = {
      {"verdict.match", "exchanges where every check passed"},
      {"verdict.warn", "exchanges where only warn comparators found differences"},
      {"verdict.mismatch", "exchanges where a fail comparator found a difference"},
      {"verdict.replay_error", "replays that failed (refused, timeout, ...)"},
      {"verdict.missing_original", "requests whose original response never came"},
      {"verdict.missing_replay", "requests whose replayed response never came"},
      {"joins_expired", "joins decided at `timeout` with a side missing"},
      {"joins_evicted", "joins decided early because max_pending was reached"},
      {"baseline_missing", "exchanges judged without noise cancellation (no usable baseline response)"},
      {"endpoints_folded", "verdicts whose endpoint was folded into \"METHOD (other)\""},
      {"pending_joins", "joins waiting for a side (gauge); the same as table.joins, kept for existing dashboards"},
      {"paths_untracked", "differences at an endpoint x path not aggregated because max_paths were kept"},
      {"noise_untracked",
       "differences at an endpoint x path without noise counts because max_paths were kept: judged real"},
      {"table.joins",
       "joins waiting for a side now (gauge); bound: max_pending (the oldest decided early: joins_evicted), "
       "expiry: timeout (joins_expired)"},
      {"table.decided",
       "ids of recent verdicts now, remembered to count a side that comes after its verdict as dropped.late "
       "(gauge); bound: max_pending (the oldest forgotten), expiry: the same bound"},
      {"table.endpoints",
       "endpoints aggregated now (gauge); bound: max_endpoints (more fold into \"METHOD (other)\": "
       "endpoints_folded), expiry: none, kept for the run's report"},
      {"table.paths",
       "endpoint x difference path aggregates now (gauge); bound: max_paths (paths_untracked), expiry: none, kept "
       "for the run's report"},
      {"table.noise_paths",
       "endpoint x path noise counts now, with a baseline (gauge); bound: max_paths (noise_untracked), expiry: "
       "none, kept for the run"},
      {"dropped.late", "responses that arrived after their request's verdict"},
      {"dropped.duplicate", "a second message of the same kind for one id"},
      {"dropped.orphan_response", "responses whose request never arrived"},
      {"dropped.unexpected_kind", "messages of a kind compare does not join"},
      {"dropped.shutdown", "messages still queued for a judging thread when the stage stopped"},
      {"failed.exception", "a message whose handling failed on a judging thread (logged)"},
      {"failed.comparator_error", "a comparator threw; reported as a check of kind `error`"},
      {"failed.unknown_comparator", "a rule names a comparator the pipeline does not have"},
  };
  def.create_stage = [](const Options& options) -> std::unique_ptr<Stage> {
    CompareConfig config;
    auto rules = options.tables("rule");
    for (std::size_t i = 0; i < rules.size(); ++i) {
      config.rules.push_back(make_rule(rules[i], "#" + std::to_string(i + 1)));
      const CompareRule& r = config.rules.back();
      if (r.fail.empty() && r.warn.empty() && r.info.empty())
        rules[i].fail("fail", "a rule needs comparators in `fail`, `warn` or `info`");
      if (!r.escalate.empty() && r.warn.empty() && r.info.empty())
        rules[i].fail("escalate", "`escalate` is consulted when a `warn` or `info` comparator finds a difference; "
                                  "this rule has neither");
    }
    config.fallback.label = "default";
    config.fallback.fail = options.strings("fail");
    config.fallback.warn = options.strings("warn");
    config.fallback.fail_position = options.position("fail");
    config.fallback.warn_position = options.position("warn");
    config.timeout = options.duration("timeout");
    if (config.timeout.count() <= 0) options.fail("timeout", "\"timeout\" must be positive");
    config.max_pending = positive(options, "max_pending");
    config.baseline = options.string("baseline");
    config.noise.relative = options.number("noise_relative_threshold");
    config.noise.absolute = options.number("noise_absolute_threshold");
    if (config.noise.relative < 0 || config.noise.absolute < 0)
      options.fail(config.noise.relative < 0 ? "noise_relative_threshold" : "noise_absolute_threshold",
                   "noise thresholds are percentages and cannot be negative");
    config.samples_per_path = static_cast<std::size_t>(std::max<std::int64_t>(0, options.integer("samples_per_path")));
    config.sample_body_limit = options.size("sample_body_limit");
    config.value_limit = options.size("value_limit");
    config.max_endpoints = positive(options, "max_endpoints");
    config.max_paths = positive(options, "max_paths");
    auto threads = options.integer("threads");
    if (threads < 0 || threads > 64) options.fail("threads", "\"threads\" must be between 0 (one per core) and 64");
    config.threads = threads > 0 ? static_cast<std::size_t>(threads)
                                 : std::clamp<std::size_t>(std::thread::hardware_concurrency(), 1, 64);
    return std::make_unique<CompareStage>(std::move(config));
  };
  return def;
}

}  // namespace
}  // namespace doppel::plugins

DOPPEL_PLUGIN(doppel::plugins::compare_definition);
