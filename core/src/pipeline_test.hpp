#pragma once
// `doppel test`: runs the [[tests]] blocks of a pipeline. Each test builds the pipeline's
// filters and middleware afresh (inputs and outputs are left out), injects its messages in
// front of the named stages, drains, and checks what the named stages emitted.
#include <string>
#include <vector>

#include "pipeline_file.hpp"
#include "plugin_registry.hpp"

namespace doppel::core {

struct TestOutcome {
  std::string name;
  bool passed = false;
  std::vector<std::string> failures;
  double seconds = 0;
};

const std::vector<OptionSpec>& test_block_schema();

// Runs every test; configuration errors in the [[tests]] blocks are appended to `errors`.
std::vector<TestOutcome> run_pipeline_tests(const PipelineSpec& spec, const PluginRegistry& registry,
                                            std::vector<ConfigError>& errors);
std::string junit_xml(const std::string& suite, const std::vector<TestOutcome>& outcomes);

}  // namespace doppel::core
