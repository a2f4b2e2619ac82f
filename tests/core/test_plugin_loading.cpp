#include "core_test_support.hpp"

using namespace doppel::core;
using doppel::Role;

TEST_CASE("refused libraries get one line naming the path and why; the rest load") {
  PluginRegistry registry;
  registry.load_directory(REFUSED_PLUGIN_DIR);
  registry.load_directory(TEST_PLUGIN_DIR);
  CHECK(registry.plugins().size() == 8);
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

TEST_CASE("an indexed directory loads a library when a plugin named for it is looked up") {
  PluginRegistry registry;
  registry.index_directory(BUILTIN_PLUGIN_DIR);
  registry.load_directory(BUILTIN_PLUGIN_DIR);  // indexed already: stays lazy
  CHECK(registry.loaded_libraries().empty());
  const LoadedPlugin* raw = registry.find(Role::input, "raw");
  REQUIRE(raw != nullptr);
  CHECK(raw->library.filename() == "libdoppel-input-raw.so");
  const LoadedPlugin* json_field = registry.find(Role::filter, "json_field");  // '_' in the name, '-' in the file
  REQUIRE(json_field != nullptr);
  CHECK(json_field->library.filename() == "libdoppel-filter-json-field.so");
  CHECK(registry.loaded_libraries().size() == 2);
  // A name no library is named for loads the rest, then answers.
  CHECK(registry.find(Role::output, "no_such_output") == nullptr);
  std::size_t all = registry.loaded_libraries().size();
  CHECK(all > 2);
  CHECK(registry.names(Role::comparator).size() >= 6);
  CHECK(registry.loaded_libraries().size() == all);
  // What was handed out before the others loaded still holds.
  CHECK(raw->definition->name == "raw");
  CHECK(json_field->definition->role == Role::filter);
  CHECK(registry.problems().empty());
}

TEST_CASE("listing every plugin loads every indexed library") {
  PluginRegistry registry;
  registry.index_directory(BUILTIN_PLUGIN_DIR);
  std::size_t listed = registry.plugins().size();
  CHECK(listed >= 20);
  PluginRegistry eager;
  eager.load_directory(BUILTIN_PLUGIN_DIR);
  CHECK(eager.plugins().size() == listed);
}

TEST_CASE("problems of libraries loaded late reach the sink as they are found") {
  PluginRegistry registry;
  std::vector<std::string> seen;
  registry.on_problem([&](const std::string& p) { seen.push_back(p); });
  registry.index_directory(REFUSED_PLUGIN_DIR);
  CHECK(seen.empty());
  CHECK(registry.find(Role::input, "anything") == nullptr);
  CHECK(seen.size() == 3);
  CHECK(seen == registry.problems());
}
