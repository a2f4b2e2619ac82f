// The `doppel` command line: run, validate, graph, plugins, inspect, test, docs.
#include <CLI/CLI.hpp>
#include <spdlog/sinks/stdout_color_sinks.h>
#include <spdlog/spdlog.h>

#include <condition_variable>
#include <csignal>
#include <cstdio>
#include <fstream>
#include <iostream>
#include <pthread.h>
#include <unistd.h>

#include "cli_docs.hpp"
#include "doppel/version.hpp"
#include "exit_codes.hpp"
#include "gor_command.hpp"
#include "pipeline_graph.hpp"
#include "pipeline_test.hpp"
#include "replay_safety.hpp"
#include "plugin_docs.hpp"
#include "runtime.hpp"

namespace fs = std::filesystem;
using namespace doppel;
using namespace doppel::core;

namespace {

struct PluginOptions {
  std::vector<std::string> dirs;
  bool quiet = false;
};

PluginRegistry load_registry(const PluginOptions& opts, const std::vector<fs::path>& pipeline_dirs = {}) {
  PluginRegistry registry;
  if (!opts.quiet) registry.on_problem([](const std::string& p) { spdlog::warn("{}", p); });
  // Later directories override earlier ones: built-ins, then DOPPEL_PLUGIN_PATH, --plugin-dir, plugin_dirs.
  // The built-in libraries load as the pipeline names them; the user's load now.
  for (const auto& d : builtin_plugin_dirs()) registry.index_directory(d);
  for (const auto& d : env_plugin_dirs()) registry.load_directory(d);
  for (const auto& d : opts.dirs) registry.load_directory(d);
  for (const auto& d : pipeline_dirs) registry.load_directory(d);
  return registry;
}

void print_errors(const std::vector<ConfigError>& errors) {
  for (const auto& e : errors) {
    std::string at = e.position().to_string();
    std::fprintf(stderr, "%s%s%s\n", at.c_str(), at.empty() ? "" : ": ", e.what());
  }
  if (!errors.empty())
    std::fprintf(stderr, "%zu error%s\n", errors.size(), errors.size() == 1 ? "" : "s");
}

struct Loaded {
  std::optional<PipelineSpec> spec;
  PluginRegistry registry;
  std::unique_ptr<PipelineGraph> graph;
};

// Resolves and checks a parsed pipeline; prints every error. graph is null when invalid.
Loaded build_pipeline(std::optional<PipelineSpec> spec, std::vector<ConfigError> errors, const PluginOptions& opts,
                      BuildMode mode) {
  Loaded out;
  out.spec = std::move(spec);
  out.registry = load_registry(opts, out.spec ? out.spec->settings.plugin_dirs : std::vector<fs::path>{});
  if (out.spec) {
    auto graph = build_graph(*out.spec, out.registry, errors, mode);
    if (errors.empty()) out.graph = std::move(graph);
  }
  sort_errors(errors);
  print_errors(errors);
  return out;
}

Loaded load_pipeline(const std::string& file, const PluginOptions& opts, BuildMode mode) {
  std::vector<ConfigError> errors;
  auto spec = load_pipeline_file(file, errors);
  return build_pipeline(std::move(spec), std::move(errors), opts, mode);
}

// SIGINT/SIGTERM: the first drains, the second exits at once.
class SignalWatcher {
 public:
  explicit SignalWatcher(std::function<void()> on_first) : on_first_(std::move(on_first)) {
    thread_ = std::thread([this] {
      sigset_t set;
      sigemptyset(&set);
      sigaddset(&set, SIGINT);
      sigaddset(&set, SIGTERM);
      sigaddset(&set, SIGUSR2);  // the destructor's wake-up call
      timespec tick{1, 0};
      int seen = 0;
      while (!done_) {
        int sig = sigtimedwait(&set, nullptr, &tick);
        if (sig <= 0 || sig == SIGUSR2) continue;
        if (++seen == 1) {
          spdlog::warn("{} received: draining (send it again to exit at once)", sig == SIGINT ? "SIGINT" : "SIGTERM");
          on_first_();
        } else {
          static const char msg[] = "second signal: exiting now\n";
          (void)!write(STDERR_FILENO, msg, sizeof msg - 1);
          _exit(exit_code::interrupted);
        }
      }
    });
  }
  ~SignalWatcher() {
    done_ = true;
    pthread_kill(thread_.native_handle(), SIGUSR2);  // exit now, not at the next tick
    thread_.join();
  }

 private:
  std::function<void()> on_first_;
  std::atomic<bool> done_{false};
  std::thread thread_;
};

int cmd_validate(const std::string& file, const PluginOptions& opts) {
  auto loaded = load_pipeline(file, opts, BuildMode::run);
  if (!loaded.graph) return exit_code::config_invalid;
  std::printf("%s: valid (%zu stages, %zu comparators)\n", file.c_str(), loaded.graph->stages.size(),
              loaded.graph->comparators.size());
  std::vector<std::string> warnings;
  std::printf("%s", describe_overflow(*loaded.graph, warnings).c_str());
  for (auto& w : replay_write_warnings(*loaded.graph)) warnings.push_back(std::move(w));
  for (const auto& w : warnings) std::fprintf(stderr, "%s\n", w.c_str());
  return exit_code::ok;
}

int run_graph(PipelineGraph& graph, bool dry_run, const std::string& stats_interval) {
  if (!stats_interval.empty()) {
    try {
      graph.spec.settings.stats_interval = parse_duration(stats_interval);
    } catch (const std::invalid_argument& e) {
      std::fprintf(stderr, "--stats-interval: %s\n", e.what());
      return exit_code::usage;
    }
  }
  if (dry_run) {
    for (auto& node : graph.stages) {
      if (node.spec->role != Role::input) continue;
      std::printf("input %s (%s):\n", node.spec->name.c_str(), node.definition->name.c_str());
      if (!node.stage->dry_run(std::cout)) std::printf("  dry run not supported by this input\n");
      std::cout.flush();
    }
    return exit_code::ok;
  }
  RuntimeOptions options;
  std::string user_error;
  options.run_as = lookup_user(graph.spec.settings.user, user_error);
  if (!options.run_as) {  // checked when the file was read; the user database may have changed since
    std::fprintf(stderr, "[pipeline] user: %s\n", user_error.c_str());
    return exit_code::config_invalid;
  }
  bool privileged = std::any_of(graph.stages.begin(), graph.stages.end(),
                                [](const auto& node) { return node.stage && node.stage->needs_privileges(); });
  if (privileged && PrivilegeDrop::applies(geteuid(), *options.run_as)) {
    try {
      PrivilegeDrop::empty_bounding_set();  // before the first thread: see privileges.hpp
    } catch (const std::exception& e) {
      spdlog::error("{}", e.what());
      return exit_code::runtime_error;
    }
  }
  Runtime runtime(graph, std::move(options));
  SignalWatcher signals([&] { runtime.request_stop(); });
  try {
    runtime.start();
  } catch (const std::exception& e) {
    spdlog::error("pipeline failed to start: {}", e.what());
    return exit_code::runtime_error;
  }
  // --exit-after / exit_after: stop the inputs after a while, then drain as on SIGINT.
  std::mutex exit_mutex;
  std::condition_variable exit_wake;
  bool inputs_ended = false;
  std::thread exit_timer;
  if (graph.spec.settings.exit_after.count() > 0)
    exit_timer = std::thread([&] {
      std::unique_lock lock(exit_mutex);
      if (!exit_wake.wait_for(lock, graph.spec.settings.exit_after, [&] { return inputs_ended; })) {
        spdlog::info("exit_after ({}) reached: draining", format_duration(graph.spec.settings.exit_after));
        runtime.request_stop();
      }
    });
  runtime.wait_for_inputs();
  {
    std::lock_guard lock(exit_mutex);
    inputs_ended = true;
  }
  exit_wake.notify_all();
  if (exit_timer.joinable()) exit_timer.join();
  runtime.drain_and_stop();
  std::fflush(stdout);
  std::fprintf(stderr, "%s", runtime.summary().c_str());
  std::fprintf(stderr, "%s", runtime.loss_warnings().c_str());
  // The worst outcome decides the exit code: an input that could not read its source, then
  // a missed goal, then messages lost on the way (docs/user-guide.md "Exit codes").
  auto input_errors = runtime.input_errors();
  for (const auto& e : input_errors) std::fprintf(stderr, "error: input %s\n", e.c_str());
  for (const auto& g : runtime.goals_missed()) std::fprintf(stderr, "goal missed: %s\n", g.c_str());
  if (!input_errors.empty()) return exit_code::input_failed;
  if (!runtime.goals_missed().empty()) return exit_code::goal_missed;
  if (runtime.lost_messages() > 0) return exit_code::messages_lost;
  return exit_code::ok;
}

int cmd_run(const std::string& file, const PluginOptions& opts, bool dry_run, const std::string& stats_interval) {
  auto loaded = load_pipeline(file, opts, BuildMode::run);
  if (!loaded.graph) return exit_code::config_invalid;
  return run_graph(*loaded.graph, dry_run, stats_interval);
}

// `doppel gor` takes everything after it as GoReplay flags; doppel's global options may sit
// among them (GoReplay has none of these names) and are taken out first.
std::vector<std::string> take_global_options(const std::vector<std::string>& args, PluginOptions& opts) {
  std::vector<std::string> rest;
  for (std::size_t i = 0; i < args.size(); ++i) {
    const std::string& a = args[i];
    auto value_of = [&](const std::string& flag) -> std::optional<std::string> {
      if (a == flag && i + 1 < args.size()) return args[++i];
      if (a.starts_with(flag + "=")) return a.substr(flag.size() + 1);
      return std::nullopt;
    };
    if (auto dir = value_of("--plugin-dir")) opts.dirs.push_back(*dir);
    else if (auto level = value_of("--log-level")) {
      static const std::vector<std::string> levels = {"trace", "debug", "info", "warn", "error", "off"};
      if (std::find(levels.begin(), levels.end(), *level) == levels.end())
        throw GorUsageError("--log-level: " + *level + " not in {trace,debug,info,warn,error,off}");
      spdlog::set_level(spdlog::level::from_str(*level));
    } else rest.push_back(a);
  }
  return rest;
}

int cmd_gor(std::vector<std::string> args, PluginOptions opts) {
  try {
    args = take_global_options(args, opts);
  } catch (const GorUsageError& e) {
    std::fprintf(stderr, "doppel gor: %s\n", e.what());
    return exit_code::usage;
  }
  if (std::find(args.begin(), args.end(), "--help") != args.end() || std::find(args.begin(), args.end(), "-h") != args.end() ||
      args.empty()) {
    std::printf("%s", gor_flags_help().c_str());
    return args.empty() ? exit_code::usage : exit_code::ok;
  }
  GorTranslation translation;
  try {
    translation = translate_gor_command_line(args);
  } catch (const GorUsageError& e) {
    std::fprintf(stderr, "doppel gor: %s\n", e.what());
    return exit_code::usage;
  }
  if (translation.print_pipeline) {
    std::printf("%s", translation.pipeline_toml.c_str());
    return exit_code::ok;
  }
  if (!translation.log_level.empty()) spdlog::set_level(spdlog::level::from_str(translation.log_level));
  for (const auto& note : translation.notes) spdlog::info("{}", note);
  std::vector<ConfigError> errors;
  auto spec = load_pipeline_text(translation.pipeline_toml, "<doppel gor>", errors);
  auto loaded = build_pipeline(std::move(spec), std::move(errors), opts, BuildMode::run);
  if (!loaded.graph) {
    std::fprintf(stderr, "doppel gor: the translated pipeline is invalid; see it with --print-pipeline\n");
    return exit_code::config_invalid;
  }
  return run_graph(*loaded.graph, translation.dry_run, "");
}

int cmd_graph(const std::string& file, const PluginOptions& opts) {
  auto loaded = load_pipeline(file, opts, BuildMode::run);
  if (!loaded.graph) return exit_code::config_invalid;
  const auto& graph = *loaded.graph;
  std::string name = graph.spec.settings.name.empty() ? "pipeline" : graph.spec.settings.name;
  std::printf("digraph \"%s\" {\n  rankdir=LR;\n  node [fontname=\"Helvetica\"];\n", name.c_str());
  for (const auto& n : graph.stages) {
    const char* shape = n.spec->role == Role::input    ? "invhouse"
                        : n.spec->role == Role::output ? "house"
                        : n.spec->role == Role::filter ? "box"
                                                       : "box3d";
    std::printf("  \"%s\" [shape=%s, label=\"%s\\n(%s %s)\"];\n", n.spec->name.c_str(), shape, n.spec->name.c_str(),
                std::string(role_name(n.spec->role)).c_str(), n.definition->name.c_str());
  }
  for (const auto& n : graph.stages)
    for (const auto& e : n.downstream) {
      std::string label = e.kinds.to_string();
      label = label.substr(1, label.size() - 2);
      std::printf("  \"%s\" -> \"%s\" [label=\"%s\"%s];\n", n.spec->name.c_str(),
                  graph.stages[e.to].spec->name.c_str(), label.c_str(), e.closes_loop ? ", style=dashed" : "");
    }
  std::printf("}\n");
  return exit_code::ok;
}

int cmd_inspect(const std::string& name, const PluginOptions& opts) {
  auto registry = load_registry(opts);
  std::string plugin = name;
  std::optional<Role> role;
  if (auto dot = name.find('.'); dot != std::string::npos) {
    std::string section = name.substr(0, dot);
    for (Role r : {Role::input, Role::filter, Role::middleware, Role::output, Role::comparator})
      if (section == role_section(r) || section == role_name(r)) role = r;
    plugin = name.substr(dot + 1);
  }
  auto found = registry.find_all(plugin);
  std::erase_if(found, [&](auto* p) { return role && p->definition->role != *role; });
  if (found.empty()) {
    std::vector<std::string> names;
    for (const auto& p : registry.plugins()) names.push_back(p.definition->name);
    auto close = closest_names(plugin, names);
    std::fprintf(stderr, "no plugin named \"%s\"%s%s\n", plugin.c_str(), close.empty() ? "" : "; did you mean ",
                 close.empty() ? "" : ("\"" + close.front() + "\"?").c_str());
    return exit_code::usage;
  }
  for (std::size_t i = 0; i < found.size(); ++i) std::printf("%s%s", i ? "\n" : "", describe_plugin(*found[i]).c_str());
  return exit_code::ok;
}

int cmd_test(const std::string& file, const PluginOptions& opts, const std::string& junit) {
  std::vector<ConfigError> errors;
  auto spec = load_pipeline_file(file, errors);
  auto registry = load_registry(opts, spec ? spec->settings.plugin_dirs : std::vector<fs::path>{});
  if (spec) {
    // The whole pipeline must be valid before its tests mean anything.
    build_graph(*spec, registry, errors, BuildMode::run);
  }
  if (!errors.empty()) {
    print_errors(errors);
    return exit_code::config_invalid;
  }
  auto outcomes = run_pipeline_tests(*spec, registry, errors);
  if (!errors.empty()) {
    sort_errors(errors);
    print_errors(errors);
    return exit_code::config_invalid;
  }
  std::size_t passed = 0, failed = 0;
  for (const auto& o : outcomes) {
    std::printf("test %s ... %s\n", o.name.c_str(), o.passed ? "passed" : "FAILED");
    for (const auto& f : o.failures) std::printf("    %s\n", f.c_str());
    (o.passed ? passed : failed)++;
  }
  std::printf("%zu passed, %zu failed\n", passed, failed);
  if (!junit.empty()) {
    std::ofstream out(junit);
    out << junit_xml(spec->settings.name.empty() ? file : spec->settings.name, outcomes);
    if (!out) {
      std::fprintf(stderr, "cannot write %s\n", junit.c_str());
      return exit_code::runtime_error;
    }
  }
  if (outcomes.empty()) {
    std::fprintf(stderr, "%s has no [[tests]] blocks\n", file.c_str());
    return exit_code::tests_failed;
  }
  return failed ? exit_code::tests_failed : exit_code::ok;
}

int cmd_docs(const std::string& output, bool check, const PluginOptions& opts) {
  auto registry = load_registry(opts);
  int stale = 0;
  for (const auto& [name, content] : reference_documents(registry)) {
    fs::path path = fs::path(output) / name;
    if (check) {
      std::ifstream in(path);
      std::string existing((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
      if (existing != content) {
        std::fprintf(stderr, "%s is out of date: run `cmake --build build --target docs-reference`\n",
                     path.string().c_str());
        ++stale;
      }
      continue;
    }
    fs::create_directories(path.parent_path());
    std::ofstream out(path);
    out << content;
    std::printf("wrote %s\n", path.string().c_str());
  }
  return stale ? exit_code::tests_failed : exit_code::ok;
}

}  // namespace

int main(int argc, char** argv) {
  // Signals are taken by the watcher thread only; every other thread inherits this mask.
  sigset_t set;
  sigemptyset(&set);
  sigaddset(&set, SIGINT);
  sigaddset(&set, SIGTERM);
  sigaddset(&set, SIGUSR2);
  pthread_sigmask(SIG_BLOCK, &set, nullptr);
  std::signal(SIGPIPE, SIG_IGN);

  auto logger = spdlog::stderr_color_mt("doppel");
  logger->set_pattern("%Y-%m-%dT%H:%M:%S.%e %^%l%$ [%n] %v");
  spdlog::set_default_logger(logger);

  CLI::App app{"doppel: shadow production HTTP traffic to a new environment and report every difference"};
  app.set_version_flag("--version", std::string("doppel ") + kSdkVersion + " (plugin ABI " +
                                        std::to_string(kAbiVersion) + ")");
  app.require_subcommand(1);
  // Global options are taken before or after the subcommand (`doppel plugins --plugin-dir D`):
  // what a subcommand does not know falls through to here. Set before the subcommands are
  // added, which inherit it.
  app.fallthrough();
  PluginOptions plugins;
  std::string log_level = "info";
  app.add_option("--plugin-dir", plugins.dirs, "Load plugin libraries from DIR too (repeatable)")->type_name("DIR");
  // Applied as soon as it is parsed: the subcommand runs inside parse().
  app.add_option("--log-level", log_level, "trace, debug, info, warn, error, off")
      ->check(CLI::IsMember({"trace", "debug", "info", "warn", "error", "off"}))
      ->each([](const std::string& level) { spdlog::set_level(spdlog::level::from_str(level)); });
  app.footer(
      "Exit codes: 0 ok, 1 runtime error, 2 usage, 3 a goal (fail_if) was missed, 4 tests failed, "
      "5 messages lost (an output could not deliver, a queue overflowed), 65 an input could not read its source, "
      "78 invalid configuration, 130 interrupted twice.");

  std::string file, name, junit, output = "docs/reference", stats_interval;
  bool dry_run = false, check = false;
  int code = 0;

  auto* run = app.add_subcommand("run", "Run a pipeline until its inputs are exhausted or it is interrupted");
  run->add_option("FILE", file, "Pipeline TOML file")->required()->check(CLI::ExistingFile);
  run->add_flag("--dry-run", dry_run, "Describe what the inputs would produce (count, time span, duration) and exit");
  run->add_option("--stats-interval", stats_interval, "Override [pipeline] stats_interval (\"0s\" disables)");
  run->callback([&] { code = cmd_run(file, plugins, dry_run, stats_interval); });

  auto* validate = app.add_subcommand("validate", "Check a pipeline without running it (exit 0 valid, 78 invalid)");
  validate->add_option("FILE", file, "Pipeline TOML file")->required();
  validate->callback([&] { code = cmd_validate(file, plugins); });

  auto* graph = app.add_subcommand("graph", "Print the pipeline graph in DOT (edges labelled with message kinds)");
  graph->add_option("FILE", file, "Pipeline TOML file")->required();
  graph->callback([&] { code = cmd_graph(file, plugins); });

  bool names_only = false;
  auto* list = app.add_subcommand("plugins", "List loaded plugins with the kinds they accept and produce");
  list->add_flag("--names", names_only, "Only the names, one per line (what shell completion offers)");
  list->callback([&] {
    auto registry = load_registry(plugins);
    if (names_only) {
      for (const auto& p : registry.plugins()) std::printf("%s\n", p.definition->name.c_str());
    } else {
      std::printf("%s", plugin_table(registry).c_str());
    }
    code = exit_code::ok;
  });

  auto* inspect = app.add_subcommand("inspect", "Show a plugin's options (types, defaults, descriptions) and metrics");
  inspect->add_option("NAME", name, "Plugin name, or SECTION.NAME (e.g. outputs.file)")->required();
  inspect->callback([&] { code = cmd_inspect(name, plugins); });

  auto* test = app.add_subcommand("test", "Run the [[tests]] blocks of a pipeline");
  test->add_option("FILE", file, "Pipeline TOML file")->required();
  test->add_option("--junit", junit, "Also write the results as JUnit XML to PATH")->type_name("PATH");
  test->callback([&] { code = cmd_test(file, plugins, junit); });

  auto* docs = app.add_subcommand("docs", "Generate the options reference (Markdown) from the plugins' schemas");
  docs->add_option("--output", output, "Directory to write to")->capture_default_str();
  docs->add_flag("--check", check, "Only check that the files in --output are up to date");
  docs->callback([&] { code = cmd_docs(output, check, plugins); });

  auto* gor = app.add_subcommand("gor", "Run a GoReplay command line (doppel gor --help lists the flags)");
  gor->prefix_command();
  gor->fallthrough(false);  // everything after `gor` is its own; cmd_gor takes out doppel's global options
  gor->set_help_flag();  // --help belongs to the GoReplay flags: they are listed by cmd_gor
  gor->callback([&] { code = cmd_gor(gor->remaining(), plugins); });

  // Generated from the definitions above, so they say what the command line does.
  auto* man = app.add_subcommand("man", "Write the man pages (doppel.1, doppel-COMMAND.1) generated from the command line");
  man->add_option("--output", output, "Directory to write to")->required()->type_name("DIR");
  man->callback([&] {
    std::error_code ec;
    std::filesystem::create_directories(output, ec);
    for (const auto& page : man_pages(app, kSdkVersion, gor_flags())) {
      std::ofstream file(std::filesystem::path(output) / page.file_name);
      file << page.text;
      if (!file.flush()) {
        spdlog::error("cannot write {}/{}", output, page.file_name);
        code = exit_code::runtime_error;
        return;
      }
    }
    code = exit_code::ok;
  });
  std::string shell;
  auto* completion = app.add_subcommand("completion", "Print the shell completion script for bash or zsh");
  completion->add_option("SHELL", shell, "bash or zsh")->required()->check(CLI::IsMember({"bash", "zsh"}));
  completion->callback([&] {
    const CompletionHints hints = {
        {"--log-level", "choices:trace debug info warn error off"},
        {"--plugin-dir", "directory"},
        {"--output", "directory"},
        {"--junit", "file"},
        {"SHELL", "choices:bash zsh"},
        {"NAME", "plugins"},
        {"FILE", "file:*.toml"},
    };
    std::string script = shell == "bash" ? bash_completion(app, hints, gor_flags()) : zsh_completion(app, hints, gor_flags());
    std::fwrite(script.data(), 1, script.size(), stdout);
    code = exit_code::ok;
  });

  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    int rc = app.exit(e);
    return rc == 0 ? 0 : exit_code::usage;
  }
  return code;
}
