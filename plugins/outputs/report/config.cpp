// Plugin `report`: options, their parsing into ReportConfig, and registration.
#include "doppel/listen_address.hpp"
#include "doppel/output_file.hpp"
#include "doppel/plugin.hpp"
#include "report_output.hpp"

namespace doppel::plugins {
namespace {

std::size_t at_least(const Options& o, std::string_view name, std::int64_t min) {
  auto v = o.integer(name);
  if (v < min) o.fail(name, "\"" + std::string(name) + "\" must be at least " + std::to_string(min));
  return static_cast<std::size_t>(v);
}

PluginDefinition report_definition() {
  PluginDefinition def;
  def.name = "report";
  def.role = Role::output;
  def.description =
      "Writes verdicts as JSONL and a self-contained HTML report, prints a summary table at exit, and "
      "fails the run when a fail_if goal is missed";
  def.accepts = KindSet{Kind::verdict};
  def.options = {
      option("jsonl", OptionType::string,
             "File receiving one verdict per line (JSON); empty: none. An existing file is an error unless "
             "append or overwrite is set")
          .default_value(""),
      option("html", OptionType::string,
             "Self-contained HTML report (no network needed to open it), rewritten at every flush: written to a "
             "new file in the same directory, then renamed over this name (replacing an earlier report, never "
             "writing through a link); empty: none")
          .default_value(""),
      option("html_interval", OptionType::duration,
             "How often the HTML report is rewritten while verdicts come, so that a run stopped by force still "
             "leaves a recent one; \"0s\": at the end only")
          .default_value("60s"),
      option("jsonl_max_size", OptionType::size,
             "Rotate the jsonl file before a line would take it past this size: FILE becomes FILE.1, FILE.1 "
             "FILE.2, ..., and a new FILE is started; 0: never by size")
          .default_value("0"),
      option("jsonl_rotate_interval", OptionType::duration,
             "Rotate the jsonl file (as jsonl_max_size does) once it is this old; \"0s\": never by age")
          .default_value("0s"),
      option("jsonl_keep", OptionType::integer,
             "Rotated jsonl files kept (FILE.1 to FILE.<jsonl_keep>); the oldest is removed").default_value(10),
      option("append", OptionType::boolean, "Add verdict lines to an existing jsonl file").default_value(false),
      option("overwrite", OptionType::boolean, "Replace (truncate) an existing jsonl file").default_value(false),
      option("mode", OptionType::string,
             "Permission bits, in octal, of the files this output creates (the umask still applies); reports "
             "quote captured traffic: keep them private")
          .default_value("0600"),
      option("summary", OptionType::boolean, "Print a per-endpoint summary table to stderr at exit")
          .default_value(true),
      option("title", OptionType::string, "Title of the HTML report and the summary").default_value("doppel report"),
      option("fail_if", OptionType::string_list,
             "Conditions that fail the run (exit code 3), e.g. \"mismatch_rate > 1%\", \"p95_latency_ratio > 1.5\"; "
             "metrics: " + std::string(kGoalMetrics))
          .default_value(Value::array({})),
      option("samples_per_path", OptionType::integer, "Sample exchanges kept per endpoint x difference path")
          .default_value(5),
      option("top_paths", OptionType::integer, "Differing paths listed in the HTML report, most frequent first")
          .default_value(50),
      option("max_endpoints", OptionType::integer, "Endpoints tracked; more are counted as \"(other endpoints)\"")
          .default_value(1000),
      option("max_paths", OptionType::integer, "Endpoint x path aggregates tracked in all").default_value(10000),
      option("latency_samples", OptionType::integer,
             "Latencies kept per endpoint and side for percentiles (reservoir sampling; 5x that overall)")
          .default_value(20000),
      option("sample_limit", OptionType::size, "Bytes of each sample exchange text kept").default_value("16KiB"),
      option("listen", OptionType::string,
             "Serve the report while the run goes on (the live view), e.g. \"127.0.0.1:8088\": the HTML page at /, "
             "refreshed in place every live_refresh, and its data as JSON at /api/summary, /api/paths?endpoint=E "
             "and /api/samples?endpoint=E&path=P. HOST:PORT, [IPv6]:PORT or :PORT (every interface); port 0 picks "
             "a free one (logged). No authentication, and samples quote captured traffic: keep it on loopback or "
             "behind a reverse proxy. Empty: off")
          .default_value(""),
      option("live_refresh", OptionType::duration,
             "How often the live view's page fetches the report again and redraws it in place (at least 1s)")
          .default_value("5s"),
  };
  def.metrics = {
      {"dropped.not_a_verdict", "messages that are not verdicts"},
      {"failed.invalid_verdict", "verdict payloads that are not valid verdict JSON"},
      {"failed.html_unwritable", "the HTML report could not be written"},
      {"dropped.write_failed",
       "verdict lines lost because writing the jsonl file failed (disk full, I/O error); the file is truncated "
       "back to its last complete line and the next write tries again. The verdicts still count in the HTML "
       "report and the summary"},
      {"jsonl_written", "verdict lines the jsonl file accepted"},
      {"jsonl_rotated", "times the jsonl file was rotated (jsonl_max_size, jsonl_rotate_interval)"},
  };
  def.create_stage = [](const Options& options) -> std::unique_ptr<Stage> {
    ReportConfig config;
    config.jsonl = options.string("jsonl");
    config.html = options.string("html");
    config.files = output_file_policy(options);
    config.html_interval = options.duration("html_interval");
    if (config.html_interval.count() < 0) options.fail("html_interval", "html_interval must not be negative");
    if (config.html_interval.count() > 0 && config.html_interval < std::chrono::milliseconds(100))
      options.fail("html_interval", "html_interval is at least 100ms (each rewrite renders the whole report)");
    config.jsonl_max_size = options.size("jsonl_max_size");
    config.jsonl_rotate_interval = options.duration("jsonl_rotate_interval");
    if (config.jsonl_rotate_interval.count() < 0)
      options.fail("jsonl_rotate_interval", "jsonl_rotate_interval must not be negative");
    config.jsonl_keep = at_least(options, "jsonl_keep", 1);
    bool rotating = config.jsonl_max_size > 0 || config.jsonl_rotate_interval.count() > 0;
    if (rotating && options.string("jsonl").empty())
      options.fail(config.jsonl_max_size > 0 ? "jsonl_max_size" : "jsonl_rotate_interval",
                   "rotation applies to the jsonl file: set `jsonl`");
    config.summary = options.boolean("summary");
    config.title = options.string("title");
    for (const auto& text : options.strings("fail_if")) {
      std::string error;
      auto goal = parse_goal(text, error);
      if (!goal) options.fail("fail_if", error);
      config.fail_if.push_back(std::move(*goal));
    }
    config.limits.samples_per_path = at_least(options, "samples_per_path", 0);
    config.top_paths = at_least(options, "top_paths", 1);
    config.limits.max_endpoints = at_least(options, "max_endpoints", 1);
    config.limits.max_paths = at_least(options, "max_paths", 1);
    config.limits.latency_samples = at_least(options, "latency_samples", 1);
    config.limits.sample_limit = options.size("sample_limit");
    if (std::string listen = options.string("listen"); !listen.empty()) {
      try {
        config.listen = parse_listen_address(listen, true);
      } catch (const std::invalid_argument& e) {
        options.fail("listen", "option \"listen\": " + std::string(e.what()));
      }
    }
    config.live_refresh = options.duration("live_refresh");
    if (config.live_refresh < std::chrono::seconds(1))
      options.fail("live_refresh", "live_refresh is at least 1s (each refresh renders the whole report)");
    return std::make_unique<ReportOutput>(std::move(config));
  };
  return def;
}

}  // namespace
}  // namespace doppel::plugins

DOPPEL_PLUGIN(doppel::plugins::report_definition);
