#include "core_test_support.hpp"

using namespace doppel::core;

TEST_CASE("refused libraries get one line naming the path and why; the rest load") {
  PluginRegistry registry;
  registry.load_directory(REFUSED_PLUGIN_DIR);
  registry.load_directory(TEST_PLUGIN_DIR);
  CHECK(registry.plugins().size() == 7);
  const auto& problems = registry.problems();
  REQUIRE(problems.size() == 3);
  std::string all;
  for (const auto& p : problems) all += p + "\n";
  CHECK(all.find(std::string(REFUSED_PLUGIN_DIR) +
                 "/libdoppel-test-other_abi.so: plugin ABI mismatch: expected " + std::to_string(doppel::kAbiVersion) +
                 " (SDK 0.1.0), got 999 (SDK 9.9.9); "
                 "not loaded") != std::string::npos);
  CHECK(all.find(std::string(REFUSED_PLUGIN_DIR) +
                 "/libdoppel-test-no_descriptor.so: not a doppel plugin (no doppel_plugin_descriptor_v descriptor); "
                 "not loaded") != std::string::npos);
  CHECK(all.find(std::string(REFUSED_PLUGIN_DIR) + "/libnot-a-library.so: not a loadable library (") !=
        std::string::npos);
  for (const auto& p : problems) CHECK(p.find('\n') == std::string::npos);
}

TEST_CASE("a missing plugin directory is reported, not fatal") {
  PluginRegistry registry;
  registry.load_directory("/nonexistent/doppel/plugins");
  REQUIRE(registry.problems().size() == 1);
  CHECK(registry.problems()[0] == "/nonexistent/doppel/plugins: plugin directory does not exist");
}
