#pragma once
// Builds pipelines from TOML text against the test-only plugin library.
#include <doctest/doctest.h>

#include <filesystem>
#include <fstream>
#include <sstream>
#include <string>

#include "pipeline_graph.hpp"
#include "plugin_registry.hpp"

namespace doppel::core::testing {

inline const PluginRegistry& test_registry() {
  static PluginRegistry registry = [] {
    PluginRegistry r;
    r.load_directory(TEST_PLUGIN_DIR);
    return r;
  }();
  return registry;
}

struct Built {
  std::unique_ptr<PipelineGraph> graph;
  std::vector<ConfigError> errors;
  std::string error_text() const {
    std::string out;
    for (const auto& e : errors) out += e.position().to_string() + ": " + e.what() + "\n";
    return out;
  }
};

inline Built build(const std::string& toml, BuildMode mode = BuildMode::run) {
  Built b;
  auto spec = load_pipeline_text(toml, "p.toml", b.errors);
  if (spec) b.graph = build_graph(*spec, test_registry(), b.errors, mode);
  return b;
}

inline std::filesystem::path temp_dir() {
  auto dir = std::filesystem::temp_directory_path() / ("doppel-core-test-" + std::to_string(::getpid()));
  std::filesystem::create_directories(dir);
  return dir;
}

inline std::vector<std::string> read_lines(const std::filesystem::path& p) {
  std::ifstream in(p);
  std::vector<std::string> lines;
  for (std::string line; std::getline(in, line);) lines.push_back(line);
  return lines;
}

}  // namespace doppel::core::testing
