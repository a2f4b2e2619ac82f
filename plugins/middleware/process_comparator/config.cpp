// Plugin `process` (comparator): options, their parsing into ProcessComparatorConfig, and registration.
#include <filesystem>

#include "doppel/plugin.hpp"
#include "process_comparator.hpp"

namespace doppel::plugins {
namespace {

// `python3 checks.py` with no checks.py would start, die and be restarted forever; say so at
// validation instead. Only for interpreters whose first argument is the script.
void check_script(const Options& options, const std::vector<std::string>& argv) {
  std::string program = std::filesystem::path(argv[0]).filename().string();
  bool interpreter = program.rfind("python", 0) == 0 || program == "node" || program == "nodejs" ||
                     program == "ruby" || program == "perl" || program == "bash" || program == "sh";
  if (!interpreter || argv.size() < 2 || argv[1].empty() || argv[1][0] == '-') return;
  std::error_code ec;
  if (!std::filesystem::is_regular_file(argv[1], ec))
    options.fail("command", "the script \"" + argv[1] + "\" does not exist (relative paths are relative to the "
                            "directory doppel runs in: " + std::filesystem::current_path(ec).string() + ")");
}

PluginDefinition process_comparator_definition() {
  PluginDefinition def;
  def.name = "process";
  def.role = Role::comparator;
  def.description =
      "Judges exchanges with a program you write in any language (JSON lines on its stdin/stdout; helpers for "
      "Python and Node.js ship with doppel): see docs/guide/compare.md \"Checks in any language\"";
  def.options = {
      option("command", OptionType::string_list,
             "The program: a string is split on spaces (\"python3 checks.py\"); an array is the argument list as is")
          .required(),
      option("processes", OptionType::integer, "Copies of the program to run; judgements are shared out among them")
          .default_value(1),
      option("concurrency", OptionType::integer,
             "Judgements in flight per copy; when all are taken, the compare stage waits (back-pressure)")
          .default_value(256),
      option("timeout", OptionType::duration,
             "Longest wait for one answer; then the judgement is an error (timeouts), and a program silent that long "
             "is killed and started again")
          .default_value("10s"),
      option("body_limit", OptionType::size,
             "Bodies larger than this are written to a temporary file (0600, removed after the answer) and sent as "
             "body_file instead of inline")
          .default_value("8MiB"),
      option("max_line", OptionType::size, "Longest answer line read; longer ones are skipped (garbage_lines)")
          .default_value("64MiB"),
      option("restart_backoff", OptionType::duration,
             "First wait before starting the program again after it exited; doubles after each quick exit")
          .default_value("100ms"),
      option("restart_backoff_max", OptionType::duration, "Longest wait before a restart").default_value("10s"),
  };
  def.metrics = {
      {"judgements", "judgements sent to the program"},
      {"answers", "answers received (ok, differences or a check's error)"},
      {"timeouts", "judgements not answered within timeout (reported as errors)"},
      {"restarts", "times the program was started again after it exited or was killed"},
      {"owed_on_exit", "judgements the program owed when it exited (reported as errors)"},
      {"garbage_lines", "lines the program wrote that are not answers (or longer than max_line)"},
      {"bad_answers", "answers that are malformed (reported as errors of their judgement)"},
      {"unknown_ids", "answers for an id not waiting for one: never asked, answered twice, or after its timeout"},
      {"bodies_spilled", "bodies sent by file (larger than body_limit)"},
      {"encode_errors", "judgements that could not be written (a body file could not be created)"},
  };
  def.create_comparator = [](const Options& options) -> std::unique_ptr<Comparator> {
    ProcessComparatorConfig config;
    config.argv = split_command(options.strings("command"));
    if (config.argv.empty() || config.argv[0].empty()) options.fail("command", "command must name a program");
    if (auto problem = program_problem(config.argv[0]); !problem.empty())
      options.fail("command", "cannot start the program: " + problem);
    check_script(options, config.argv);
    auto processes = options.integer("processes");
    if (processes < 1 || processes > 64) options.fail("processes", "processes must be between 1 and 64");
    config.processes = static_cast<std::size_t>(processes);
    auto concurrency = options.integer("concurrency");
    if (concurrency < 1 || concurrency > 65536) options.fail("concurrency", "concurrency must be between 1 and 65536");
    config.concurrency = static_cast<std::size_t>(concurrency);
    config.timeout = options.duration("timeout");
    if (config.timeout.count() <= 0) options.fail("timeout", "timeout must be positive");
    config.body_limit = options.size("body_limit");
    config.max_line = options.size("max_line");
    if (config.max_line < 1024) options.fail("max_line", "max_line must be at least 1KiB");
    config.backoff = options.duration("restart_backoff");
    config.backoff_max = options.duration("restart_backoff_max");
    if (config.backoff.count() <= 0) options.fail("restart_backoff", "restart_backoff must be positive");
    if (config.backoff_max < config.backoff)
      options.fail("restart_backoff_max", "restart_backoff_max must not be shorter than restart_backoff");
    return std::make_unique<ProcessComparator>(std::move(config));
  };
  return def;
}

}  // namespace
}  // namespace doppel::plugins

DOPPEL_PLUGIN(doppel::plugins::process_comparator_definition);
