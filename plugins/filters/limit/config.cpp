// Plugin `limit`: options, their parsing into LimitFilterConfig, and registration.
#include <cmath>

#include "doppel/plugin.hpp"
#include "limit_filter.hpp"

namespace doppel::plugins {
namespace {

PluginDefinition limit_filter_definition() {
  PluginDefinition def;
  def.name = "limit";
  def.role = Role::filter;
  def.description =
      "Rate control: token bucket (`rate = \"1000/s\"`, wait or drop) after random or consistent (by key hash) "
      "sampling";
  def.accepts = KindSet::http();
  def.passes_through = true;
  def.requests_only = true;
  def.options = {
      option("rate", OptionType::rate,
             "Most requests per unit of time passed on, e.g. \"1000/s\", \"50/m\" (token bucket). Absent: no rate "
             "limit. GoReplay: --output-http \"URL|1000\"")
      ,
      option("burst", OptionType::integer,
             "Token bucket capacity: requests that may pass at once after a quiet spell. 0: a tenth of a second's "
             "worth (at least 1)")
          .default_value(0),
      option("mode", OptionType::string,
             "Over the rate: drop the request (counted as rate_limited) or wait for a token (back-pressure; for file "
             "replay)")
          .default_value("drop")
          .choices({"drop", "wait"}),
      option("percent", OptionType::number,
             "Share of requests kept, 0-100: at random, or by the hash of `key` when set. GoReplay: "
             "--output-http \"URL|10%\", --http-header-limiter")
          .default_value(100),
      option("key", OptionType::string,
             "Consistent sampling: \"header:X-User\", \"param:user\" or \"json:user.id\"; a request is kept when "
             "fnv1a32(value) % 100 < percent, so one user is always kept or always dropped. GoReplay: "
             "--http-header-limiter, --http-param-limiter"),
      option("missing_key", OptionType::string,
             "A request without the key's value: pass it (GoReplay) or drop it (missing_key)")
          .default_value("pass")
          .choices({"pass", "drop"}),
      option("seed", OptionType::integer, "Seed of random sampling (repeatable runs); 0 seeds from the clock")
          .default_value(0),
  };
  def.metrics = {
      {"dropped.rate_limited", "requests over the rate (mode = \"drop\")"},
      {"dropped.sampled_out", "requests not picked by random sampling"},
      {"dropped.sampled_out_by_key", "requests whose key hashes outside the kept share"},
      {"dropped.missing_key", "requests without the key (missing_key = \"drop\")"},
      {"dropped.unparseable_request", "messages that are not a parseable HTTP request"},
  };
  def.create_stage = [](const Options& options) -> std::unique_ptr<Stage> {
    LimitFilterConfig config;
    if (options.has("rate")) {
      Rate rate = options.rate("rate");
      if (rate.unit != Rate::Unit::per_second)
        options.fail("rate", "rate must be events per time (\"1000/s\"); for a share of the traffic use percent");
      if (rate.value <= 0) options.fail("rate", "rate must be positive");
      config.per_second = rate.value;
    }
    auto burst = options.integer("burst");
    if (burst < 0) options.fail("burst", "burst must not be negative");
    config.burst = burst > 0 ? static_cast<double>(burst)
                             : std::max(1.0, std::ceil(config.per_second.value_or(10.0) / 10.0));
    config.wait = options.string("mode") == "wait";
    config.percent = options.number("percent");
    if (config.percent < 0 || config.percent > 100) options.fail("percent", "percent must be between 0 and 100");
    if (options.has("key")) {
      std::string error;
      config.key = parse_sampling_key(options.string("key"), error);
      if (!config.key) options.fail("key", error);
      if (!options.has("percent")) options.fail("key", "key needs percent: the share of keys to keep");
    }
    config.keep_missing_key = options.string("missing_key") == "pass";
    config.seed = static_cast<std::uint64_t>(options.integer("seed"));
    if (!config.per_second && config.percent >= 100)
      options.fail("rate", "limit needs rate or percent (otherwise it passes everything)");
    return std::make_unique<LimitFilter>(std::move(config));
  };
  return def;
}

}  // namespace
}  // namespace doppel::plugins

DOPPEL_PLUGIN(doppel::plugins::limit_filter_definition);
