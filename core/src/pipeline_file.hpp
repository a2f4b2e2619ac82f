#pragma once
// Reads a pipeline TOML file into a PipelineSpec: the [pipeline] settings, one StageSpec per
// [inputs|filters|middleware|outputs|comparators.NAME] table, and the [[tests]] blocks.
// Every value keeps its FILE:LINE:COL.
#include <chrono>
#include <cstdint>
#include <filesystem>
#include <optional>
#include <string>
#include <vector>

#include "doppel/listen_address.hpp"
#include "doppel/options.hpp"
#include "doppel/plugin.hpp"
#include "doppel/value.hpp"

namespace doppel::core {

struct FromEntry {
  std::string stage;
  SourcePosition position;
};

struct StageSpec {
  std::string name;
  Role role = Role::filter;
  std::string plugin;
  SourcePosition position;         // the [section.name] table
  SourcePosition plugin_position;  // the `plugin = ...` value
  std::vector<FromEntry> from;
  bool has_from = false;
  SourcePosition from_position;
  Value options;  // the whole table, reserved keys included
  std::size_t queue_capacity = 0;  // 0: the pipeline default
  std::uint64_t queue_bytes = 0;   // 0: the pipeline default
};

struct PipelineSettings {
  std::string name;
  std::vector<std::filesystem::path> plugin_dirs;  // resolved against the file's directory
  std::size_t queue_capacity = 1'000'000;
  std::uint64_t queue_bytes = std::uint64_t{64} << 20;
  std::chrono::nanoseconds stats_interval = std::chrono::seconds(5);
  std::chrono::nanoseconds drain_timeout = std::chrono::seconds(30);
  std::chrono::nanoseconds decision_ttl = std::chrono::minutes(2);
  std::size_t decision_capacity = 1'000'000;
  std::optional<ListenAddress> metrics;  // serves /metrics there; unset disables
  std::chrono::nanoseconds exit_after{0};  // 0: run until the inputs end or a signal
  std::string user = "nobody";  // `doppel run` started as root works as this user (privileges.hpp)
};

struct PipelineSpec {
  std::string file;
  PipelineSettings settings;
  std::vector<StageSpec> stages;       // inputs, filters, middleware, outputs in file order
  std::vector<StageSpec> comparators;  // [comparators.NAME]
  Value tests;                         // [[tests]] as written (array) or null
  SourcePosition tests_position;
};

// Keys of a stage table that belong to the runtime, not to the plugin.
const std::vector<std::string>& reserved_stage_keys();
// The options of [pipeline], as data (drives validation and `doppel docs`).
const std::vector<OptionSpec>& pipeline_settings_schema();

// Parses and checks the structure of a pipeline file. Errors (TOML syntax, unknown sections,
// missing `plugin`, ...) are appended; nullopt only when nothing could be read.
std::optional<PipelineSpec> load_pipeline_file(const std::filesystem::path& path, std::vector<ConfigError>& errors);
std::optional<PipelineSpec> load_pipeline_text(std::string_view text, const std::string& file_name,
                                               std::vector<ConfigError>& errors);

}  // namespace doppel::core
